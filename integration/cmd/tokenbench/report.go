package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// Report is the whole run.
type Report struct {
	Started   time.Time
	Elapsed   time.Duration
	Config    config
	GoVersion string
	CPUs      int
	Args      []string
	Backends  []*BackendResult
	Lambda    *LambdaResult
}

var legends = map[string]string{
	"memory": "R = 1 Read, C = 1 Create, U = 1 Update, Del = 1 Delete, RM(n) = 1 ReadMany (Backend calls)",
	"aws":    "R = 1 GetSecretValue, C = 1 CreateSecret, U = 2 (PutSecretValue + UpdateSecretVersionStage), Del = 1 DeleteSecret, RM(n) = ⌈n/20⌉ BatchGetSecretValue",
	"vault":  "R = 1 GET data, C = 2 (PUT data cas=0 + PUT metadata max_versions), U = 1 PUT data with cas, Del = 3 (GET data + PUT deletion marker with cas + DELETE metadata), RM(n) = n GET data",
	"gcp":    "R = 1 AccessSecretVersion, C = 3 (CreateSecret + AddSecretVersion + UpdateSecret), U = 4 (GetSecret + AddSecretVersion + UpdateSecret + DestroySecretVersion), Del = 1 DeleteSecret, RM(n) = n AccessSecretVersion",
}

// Render writes the report as markdown.
func (r *Report) Render(w io.Writer) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("# tokenbench\n\n")
	p("Run %s, %s, %d CPUs, %s in all. Command: `go run ./cmd/tokenbench %s`\n\n",
		r.Started.UTC().Format("2006-01-02 15:04 UTC"), r.GoVersion, r.CPUs, r.Elapsed.Round(time.Second), strings.Join(r.Args, " "))
	var live []*BackendResult
	for _, b := range r.Backends {
		if b.Fatal != "" && len(b.Small) == 0 {
			p("- **%s**: %s%s\n", b.Name, map[bool]string{true: "skipped: ", false: "failed: "}[b.Skipped], b.Fatal)
			continue
		}
		live = append(live, b)
		p("- **%s**: %s\n", b.Name, b.Server)
	}
	p("\n")
	if len(live) > 0 {
		r.renderRatios(w, live)
		r.renderBudgets(w, live)
		r.renderScale(w, live)
		r.renderTokensAt(w, live)
		r.renderThroughput(w, live)
	}
	for _, b := range live {
		if b.GCPCost != nil {
			renderGCPCost(w, b.GCPCost)
		}
	}
	if r.Lambda != nil {
		renderLambda(w, r.Lambda)
	}
	for _, b := range live {
		renderBackend(w, b)
	}
}

func header(w io.Writer, cols ...string) {
	fmt.Fprintf(w, "| %s |\n|", strings.Join(cols, " | "))
	for range cols {
		fmt.Fprint(w, "---|")
	}
	fmt.Fprintln(w)
}

func row(w io.Writer, cells ...string) {
	fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
}

func findOp(ops []*Op, name string) *Op {
	for _, o := range ops {
		if o.Name == name {
			return o
		}
	}
	return nil
}

// ratioRows are the operations of the headline ratio table, with the raw
// reference they are compared to.
var ratioRows = []struct{ op, ref string }{
	{"FindTokenByID", "Read"},
	{"FindToken by user, warm", "Read"},
	{"FindToken by refresh token, warm", "Read"},
	{"FindToken by grant token, warm", "Read"},
	{"FindToken by user, cold", "Read index + Read token"},
	{"SaveToken refresh (access token changes)", "Write (CAS)"},
	{"SaveToken refresh, token not read before", "Read + Write (CAS)"},
	{"SaveToken new", "Read + Create + Write (the same requests)"},
	{"SaveToken new", "Create"},
	{"DeleteToken", "Read + Delete + Write (the same requests)"},
	{"DeleteToken", "Delete"},
}

func refOf(o *Op, name string) *Ref {
	if o == nil {
		return nil
	}
	for _, r := range o.Refs {
		if r.Name == name {
			return r
		}
	}
	return nil
}

func (r *Report) renderRatios(w io.Writer, bs []*BackendResult) {
	fmt.Fprintf(w, "## Latency ratio to the raw SDK (p50 / p50, interleaved; small store, N=%d, 1 index shard)\n\n", r.Config.small)
	cols := []string{"Operation", "Raw sequence"}
	for _, b := range bs {
		cols = append(cols, b.Name)
	}
	header(w, cols...)
	for _, rr := range ratioRows {
		cells := []string{rr.op, rr.ref}
		for _, b := range bs {
			o := findOp(b.Small, rr.op)
			ref := refOf(o, rr.ref)
			if ref == nil {
				cells = append(cells, "-")
				continue
			}
			a, b := o.Samples.Percentile(50), ref.Samples.Percentile(50)
			cells = append(cells, ratio(a, b)+" ("+overhead(a, b)+")")
		}
		row(w, cells...)
	}
	fmt.Fprintln(w, "\nEach cell: p50 of the operation / p50 of the raw sequence, and in parentheses the difference of the two p50s. Raw sequences: the SDK calls the adapter's Backend method makes (see the per-backend tables for the requests of each); Write (CAS) is timed alone, given the version, as a caller that has just read the token would write it; the store's refresh is timed the same way, after an untimed FindTokenByID.")
	fmt.Fprintln(w)
}

func budgetCell(o *Op) string {
	if o == nil {
		return "-"
	}
	if len(o.Samples) == 0 {
		return "error"
	}
	lo, hi := o.Samples.CallRange()
	blo, bhi := o.BudgetRange()
	mark := "✓"
	over, byRetries := o.Over()
	if over > 0 {
		mark = fmt.Sprintf("✗ (%d/%d over)", over, len(o.Samples))
	}
	if byRetries > 0 {
		mark += fmt.Sprintf(" (%d/%d over only by SDK retries)", byRetries, len(o.Samples))
	}
	if o.WritesOnly != "" {
		if o.Strays == 0 {
			mark += ", writes " + o.WritesOnly + " only ✓"
		} else {
			mark += fmt.Sprintf(", ✗ %d/%d samples wrote more than %s", o.Strays, len(o.Samples), o.WritesOnly)
		}
	}
	return fmt.Sprintf("%s / %s %s", rangeStr(lo, hi), rangeStr(blo, bhi), mark)
}

func (r *Report) renderBudgets(w io.Writer, bs []*BackendResult) {
	fmt.Fprintf(w, "## Requests per operation / budget (small store, N=%d, 1 index shard)\n\n", r.Config.small)
	cols := []string{"Operation", "Budget"}
	for _, b := range bs {
		cols = append(cols, b.Name)
	}
	header(w, cols...)
	var names []string
	var exprs []string
	for _, b := range bs {
		for _, o := range b.Small {
			if !contains(names, o.Name) {
				names = append(names, o.Name)
				exprs = append(exprs, o.BudgetExpr)
			}
		}
		if b.SmallDelete != nil && !contains(names, b.SmallDelete.Name) {
			names = append(names, b.SmallDelete.Name)
			exprs = append(exprs, b.SmallDelete.BudgetExpr)
		}
	}
	for i, n := range names {
		cells := []string{n, exprs[i]}
		for _, b := range bs {
			o := findOp(b.Small, n)
			if o == nil && b.SmallDelete != nil && b.SmallDelete.Name == n {
				o = b.SmallDelete
			}
			cells = append(cells, budgetCell(o))
		}
		row(w, cells...)
	}
	fmt.Fprintln(w, "\nEach cell: requests measured at the transport (min–max over the samples) / budget, from the engine's cost table in Backend calls turned into requests:")
	fmt.Fprintln(w)
	for _, b := range bs {
		fmt.Fprintf(w, "- %s: %s\n", b.Name, legends[b.Name])
	}
	fmt.Fprintln(w, "- S = index shards, K = index shards the token's keys (ID, user, grant, refresh) route to, W = index writes of an insert (K, or K + 1 when the ID key shares the shard of the lookup key while other keys route elsewhere), S′ = shards holding any entry, N = tokens")
	fmt.Fprintln(w)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (r *Report) renderScale(w io.Writer, bs []*BackendResult) {
	fmt.Fprintln(w, "## Scale")
	fmt.Fprintln(w)
	header(w, "Backend", "Tokens", "Index shards", "Load time", "Tokens/s", "Smallest shard", "Largest shard", "Mean shard", "All < 64 KiB", "Index bytes per token", "Check", "Check time")
	for _, b := range bs {
		if b.N == 0 {
			continue
		}
		if b.LoadErr != "" {
			row(w, b.Name, fmt.Sprint(b.N), fmt.Sprint(b.Shards), "load failed: "+b.LoadErr, "", "", "", "", "", "", "", "")
			continue
		}
		minS, maxS, mean, ok, check, perTok := "-", "-", "-", "-", "-", "-"
		if b.Check != nil {
			mn, mx, sum := 0, 0, 0
			for i, s := range b.Check.ShardSizes {
				if i == 0 || s < mn {
					mn = s
				}
				mx = max(mx, s)
				sum += s
			}
			if n := len(b.Check.ShardSizes); n > 0 {
				minS, maxS, mean = fmtBytes(mn), fmtBytes(mx)+fmt.Sprintf(" (%.0f%%)", 100*float64(mx)/tokenstore.MaxDocumentSize), fmtBytes(sum/n)
				if b.Check.Tokens > 0 {
					perTok = fmt.Sprintf("%.0f B", float64(sum)/float64(b.Check.Tokens))
				}
				ok = map[bool]string{true: "yes", false: "**no**"}[mx < tokenstore.MaxDocumentSize]
			}
			check = fmt.Sprintf("%d tokens, OK=%v", b.Check.Tokens, b.Check.OK())
		} else if b.CheckErr != "" {
			check = "error: " + b.CheckErr
		}
		rate := "-"
		if b.LoadTime > 0 {
			rate = fmt.Sprintf("%.0f", float64(b.N)/b.LoadTime.Seconds())
		}
		row(w, b.Name, fmt.Sprint(b.N), fmt.Sprint(b.Shards), fmtDur(b.LoadTime), rate, minS, maxS, mean, ok, perTok, check, fmtDur(b.CheckTime))
	}
	fmt.Fprintf(w, "\nLoaded with SaveToken of new tokens, %d in flight, WithIndexShards(%d), WithIndexCache(true).\n\n", r.Config.workers, r.Config.shards)
}

func (r *Report) renderTokensAt(w io.Writer, bs []*BackendResult) {
	fmt.Fprintln(w, "## Tokens() and DeleteTokens at N (requests / budget, latency)")
	fmt.Fprintln(w)
	header(w, "Backend", "Operation", "Index shards", "Requests / budget", "p50", "Requests (worst sample)")
	for _, b := range bs {
		add := func(o *Op, shards int) {
			if o == nil {
				return
			}
			row(w, b.Name, o.Name, fmt.Sprint(shards), budgetCell(o), fmtDur(o.Samples.Percentile(50)), o.Samples.Worst().Calls.String()+errNote(o))
		}
		add(findOp(b.Small, fmt.Sprintf("Tokens (N=%d)", b.SmallN)), 1)
		add(b.SmallDelete, 1)
		add(b.Mid, b.Shards)
		add(findOp(b.Scale, fmt.Sprintf("Tokens (N=%d)", b.N)), b.Shards)
		add(b.ScaleDelete, b.Shards)
	}
	fmt.Fprintln(w)
}

func errNote(o *Op) string {
	if o.Errors == 0 {
		return ""
	}
	return fmt.Sprintf(" — %d errors, first: %s", o.Errors, o.FirstErr)
}

func (r *Report) renderThroughput(w io.Writer, bs []*BackendResult) {
	fmt.Fprintf(w, "## Throughput (%d goroutines, %s per side, scale store)\n\n", r.Config.goroutines, r.Config.duration)
	fmt.Fprintf(w, "Mix: of every %d operations, %d are FindToken by user (warm cache) and 1 is a refresh save of the token the previous operation found; the raw SDK side makes the same requests (a Read; a Write with the version that Read returned). Store and raw SDK alternate in %s slices.\n\n", r.Config.saveEvery, r.Config.saveEvery-1, r.Config.slice)
	header(w, "Backend", "Store ops/s", "Raw SDK ops/s", "Store / raw", "Store errors", "Raw errors", "Requests/op store", "Requests/op raw")
	for _, b := range bs {
		t := b.Throughput
		if t == nil {
			continue
		}
		frac, rawOps := "-", "n/a"
		if t.Raw.Elapsed > 0 {
			rawOps = fmt.Sprintf("%.0f", t.Raw.OpsPerSec())
		}
		if t.Raw.OpsPerSec() > 0 {
			frac = fmt.Sprintf("%.2f", t.Store.OpsPerSec()/t.Raw.OpsPerSec())
		}
		perOp := func(m MixResult) string {
			if m.Ops == 0 {
				return "-"
			}
			return fmt.Sprintf("%.2f", float64(m.Calls)/float64(m.Ops+m.Errors))
		}
		errs := func(m MixResult) string {
			if m.Errors == 0 {
				return "0"
			}
			return fmt.Sprintf("%d (%s)", m.Errors, m.FirstErr)
		}
		row(w, b.Name, fmt.Sprintf("%.0f", t.Store.OpsPerSec()), rawOps, frac, errs(t.Store), errs(t.Raw), perOp(t.Store), perOp(t.Raw))
	}
	fmt.Fprintln(w)
}

func renderGCPCost(w io.Writer, c *GCPCost) {
	fmt.Fprintln(w, "## GCP: billable versions")
	fmt.Fprintln(w)
	if c.Err != "" {
		fmt.Fprintf(w, "Error: %s\n\n", c.Err)
		return
	}
	header(w, "Refreshes of one new token", "Versions added to its secret", "Billable versions (ENABLED + DISABLED) of the token", "Billable versions of the index secret", "Requests per refresh save")
	row(w, fmt.Sprint(c.Refreshes), fmt.Sprint(c.VersionsAdded), fmt.Sprint(c.Billable), fmt.Sprint(c.IndexBillable), fmt.Sprintf("%.2f", c.CallsPerUpdate))
	fmt.Fprintln(w, "\nCounted with ListSecretVersions filtered on `state:ENABLED OR state:DISABLED`.")
	fmt.Fprintln(w)
}

func renderLambda(w io.Writer, l *LambdaResult) {
	fmt.Fprintln(w, "## Lambda binary size")
	fmt.Fprintln(w)
	if l.Err != "" {
		fmt.Fprintf(w, "Error: %s\n\n", l.Err)
		return
	}
	cols := []string{"Binary"}
	for i := range l.Variants {
		cols = append(cols, fmt.Sprintf("Size, build %d", i+1))
	}
	cols = append(cols, "Modules")
	header(w, cols...)
	// The last binary (aws-lambda-go + secretsmanager) is the baseline.
	var base *Binary
	if n := len(l.Binaries); n > 0 && l.Binaries[n-1].Err == "" {
		base = l.Binaries[n-1]
	}
	for _, b := range l.Binaries {
		if b.Err != "" {
			cells := []string{b.Name}
			for range l.Variants {
				cells = append(cells, "not built")
			}
			row(w, append(cells, strings.ReplaceAll(firstLine(b.Err), "|", "\\|"))...)
			continue
		}
		cells := []string{b.Name}
		for i, sz := range b.Sizes {
			c := fmt.Sprintf("%s (%d B)", fmtBytes(int(sz)), sz)
			if base != nil && b != base && i < len(base.Sizes) {
				c += fmt.Sprintf(", %+.1f%% vs baseline", 100*float64(sz-base.Sizes[i])/float64(base.Sizes[i]))
			}
			cells = append(cells, c)
		}
		row(w, append(cells, fmt.Sprint(len(b.Modules)))...)
	}
	fmt.Fprintln(w)
	for i, v := range l.Variants {
		fmt.Fprintf(w, "- build %d: `%s`\n", i+1, v.Name)
	}
	fmt.Fprintln(w, "- baseline: the aws-lambda-go + secretsmanager hello-world (cmd/tokenbench/testdata/hello-lambda), pinned to the example's module versions")
	fmt.Fprintln(w)
	if base != nil {
		for _, b := range l.Binaries {
			if b == base || b.Err != "" {
				continue
			}
			var extra []string
			for _, m := range b.Modules {
				found := false
				for _, bm := range base.Modules {
					found = found || bm.Path == m.Path
				}
				if !found {
					extra = append(extra, m.Path)
				}
			}
			if len(extra) > 0 {
				fmt.Fprintf(w, "Modules in %s that the baseline lacks: %s.\n\n", b.Name, strings.Join(extra, ", "))
			}
		}
	}
	for _, b := range l.Binaries {
		if b.Err != "" || len(b.Modules) == 0 {
			continue
		}
		fmt.Fprintf(w, "<details><summary>Modules in %s (go version -m, build 1)</summary>\n\n", b.Name)
		for _, m := range b.Modules {
			fmt.Fprintf(w, "- %s %s\n", m.Path, m.Version)
		}
		fmt.Fprintln(w, "\n</details>")
		fmt.Fprintln(w)
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

func renderBackend(w io.Writer, b *BackendResult) {
	fmt.Fprintf(w, "## %s: details\n\n%s. %s.\n\n", b.Name, b.Server, legends[b.Name])
	if b.Fatal != "" {
		fmt.Fprintf(w, "**Stopped early:** %s\n\n", b.Fatal)
	}
	renderOps(w, fmt.Sprintf("Small store (N=%d, 1 index shard)", b.SmallN), b.Small)
	if len(b.Scale) > 0 {
		renderOps(w, fmt.Sprintf("Scale store (N=%d, %d index shards)", b.N, b.Shards), b.Scale)
	}
	if b.Check != nil {
		fmt.Fprintf(w, "Check of the scale store: %d tokens, OK=%v; the encoded size in bytes of each index shard, shard 0 first: %v\n\n",
			b.Check.Tokens, b.Check.OK(), b.Check.ShardSizes)
	}
	fmt.Fprintf(w, "Phases (wall time; %d warnings logged):\n\n", b.Warnings)
	for _, ph := range b.Phases {
		fmt.Fprintf(w, "- %s: %s\n", ph.Name, fmtDur(ph.D))
	}
	fmt.Fprintf(w, "- total: %s\n\n", fmtDur(b.Elapsed))
}

func renderOps(w io.Writer, title string, ops []*Op) {
	fmt.Fprintf(w, "### %s\n\n", title)
	header(w, "Operation", "Samples", "Requests / budget", "Requests (worst sample)", "p50", "p99", "Raw sequence", "Raw requests", "Raw p50", "Raw p99", "Ratio p50", "Ratio p99", "p50 − raw p50")
	for _, o := range ops {
		if len(o.Refs) == 0 {
			row(w, o.Name, fmt.Sprint(len(o.Samples)), budgetCell(o)+" ("+o.BudgetExpr+")", o.Samples.Worst().Calls.String()+errNote(o),
				fmtDur(o.Samples.Percentile(50)), fmtDur(o.Samples.Percentile(99)), "", "", "", "", "", "", "")
			continue
		}
		for i, ref := range o.Refs {
			name, n, budget, worst, p50, p99 := "", "", "", "", "", ""
			if i == 0 {
				name, n, budget = o.Name, fmt.Sprint(len(o.Samples)), budgetCell(o)+" ("+o.BudgetExpr+")"
				worst = o.Samples.Worst().Calls.String() + errNote(o)
				p50, p99 = fmtDur(o.Samples.Percentile(50)), fmtDur(o.Samples.Percentile(99))
			} else {
				name = "″"
			}
			rawReq := ref.Samples.Worst().Calls.String()
			if ref.Errors > 0 {
				rawReq += fmt.Sprintf(" — %d errors", ref.Errors)
			}
			row(w, name, n, budget, worst, p50, p99, ref.Name, rawReq,
				fmtDur(ref.Samples.Percentile(50)), fmtDur(ref.Samples.Percentile(99)),
				ratio(o.Samples.Percentile(50), ref.Samples.Percentile(50)), ratio(o.Samples.Percentile(99), ref.Samples.Percentile(99)),
				overhead(o.Samples.Percentile(50), ref.Samples.Percentile(50)))
		}
	}
	fmt.Fprintln(w)
}
