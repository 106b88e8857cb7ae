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
	"memory": "R = 1 Read, C = 1 Create, U = 1 Update, Del = 1 Delete, RM(n) = 1 ReadMany (the requests are the Backend calls)",
	"aws":    "R = 1 GetSecretValue, C = 1 CreateSecret, U = 2 (PutSecretValue + UpdateSecretVersionStage), Del = 1 DeleteSecret, RM(n) = ⌈n/20⌉ BatchGetSecretValue, List = ⌈n/100⌉ ListSecrets",
	"vault":  "R = 1 GET data, C = 2 (PUT data cas=0 + PUT metadata max_versions), U = 1 PUT data with cas, Del = 3 (GET data + PUT deletion marker with cas + DELETE metadata), RM(n) = n GET data, List = 1 LIST metadata",
	"gcp":    "R = 1 AccessSecretVersion (2 for a missing document: the alias, then version 1), C = 3 (CreateSecret + AddSecretVersion + UpdateSecret), U = AddSecretVersion + UpdateSecret under the remembered etag + DestroySecretVersion of the version before the replaced one (+ GetSecret when the etag is not known; no destroy on the first write after the creation), Del = 1 DeleteSecret, RM(n) = n AccessSecretVersion, List = ListSecrets pages",
}

// Render writes the report as markdown.
func (r *Report) Render(w io.Writer) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("# tokenbench\n\n")
	p("Run %s, %s, %d CPUs, %s in all. Command: `go run ./cmd/tokenbench %s`\n\n",
		r.Started.UTC().Format("2006-01-02 15:04 UTC"), r.GoVersion, r.CPUs, r.Elapsed.Round(time.Second), strings.Join(r.Args, " "))
	var live []*BackendResult
	for _, b := range r.Backends {
		if b.Fatal != "" && len(b.Small) == 0 && b.Scale == nil {
			p("- **%s**: %s%s\n", b.Name, map[bool]string{true: "skipped: ", false: "failed: "}[b.Skipped], b.Fatal)
			continue
		}
		live = append(live, b)
		p("- **%s**: %s\n", b.Name, b.Server)
	}
	p("\nEvery store has the default options (no WithIndexShards: one index bucket at first, growing by itself); the warm stores add WithIndexCache(true).\n\n")
	if len(live) > 0 {
		r.renderRatios(w, live)
		r.renderBudgets(w, live)
		r.renderScale(w, live)
		r.renderScaleOps(w, live)
		r.renderLoadSlices(w, live)
		r.renderThroughput(w, live)
		renderDays(w, live)
		renderStale(w, live)
		renderRepair(w, live)
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
		if o != nil && o.Name == name {
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
	{"FindToken by access token (rule 2 record), warm", "Read"},
	{"FindToken by user, cold", "Read index + Read token"},
	{"FindToken by access token (rule 2 record), cold", "Read index + Read token"},
	{"SaveToken refresh (access token changes)", "Write (CAS)"},
	{"SaveToken refresh, token not read before", "Read + Write (CAS)"},
	{"SaveToken new", "Read + Create + K·Write (the same requests)"},
	{"SaveToken new", "Create"},
	{"DeleteToken", "Read + Delete + K·Write (the same requests)"},
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
	fmt.Fprintf(w, "## Latency ratio to the raw SDK (p50 / p50, interleaved; small store, N=%d)\n\n", r.Config.small)
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
	fmt.Fprintln(w, "\nEach cell: p50 of the operation / p50 of the raw sequence, and in parentheses the difference of the two p50s. Raw sequences: the SDK calls the adapter's Backend methods make (see the legends), on the same server; reads read the store's documents, writes go to the raw side's own copies (of a token, of index bucket 0), so that neither side invalidates the other's memory of versions and etags. Write (CAS) is timed alone, given the version, as a caller that has just read the token would write it; the store's refresh is timed the same way, after an untimed FindTokenByID. K = the index buckets the token's keys route to.")
	fmt.Fprintln(w)
}

// callsCell is "Backend calls lo–hi / budget lo–hi ✓ (requests lo–hi)".
func callsCell(o *Op) string {
	if o == nil {
		return "-"
	}
	if len(o.Samples) == 0 {
		return "error: " + firstLine(o.FirstErr)
	}
	calls, req := statsOf(o.Samples.BackendCalls()), statsOf(o.Samples.Requests())
	s := rangeStr(calls.Min, calls.Max)
	if lo, hi := o.BudgetRange(); hi >= 0 {
		s += " / " + rangeStr(lo, hi)
		if over := o.Over(); over > 0 {
			s += fmt.Sprintf(" ✗ (%d/%d over)", over, len(o.Samples))
		} else {
			s += " ✓"
		}
	}
	s += " (" + rangeStr(req.Min, req.Max) + " req)"
	if o.IndexFree {
		if o.Strays == 0 {
			s += ", no index write ✓"
		} else {
			s += fmt.Sprintf(", ✗ %d/%d samples wrote the index", o.Strays, len(o.Samples))
		}
	}
	if o.Errors > 0 {
		s += fmt.Sprintf(" — %d errors: %s", o.Errors, firstLine(o.FirstErr))
	}
	return s
}

func (r *Report) renderBudgets(w io.Writer, bs []*BackendResult) {
	fmt.Fprintf(w, "## Backend calls per operation / budget, and requests (small store, N=%d)\n\n", r.Config.small)
	cols := []string{"Operation", "Budget"}
	for _, b := range bs {
		cols = append(cols, b.Name)
	}
	header(w, cols...)
	var names, exprs []string
	for _, b := range bs {
		for _, o := range append(append([]*Op{}, b.Small...), b.SmallDelete) {
			if o != nil && !contains(names, o.Name) {
				names = append(names, o.Name)
				exprs = append(exprs, o.BudgetExpr)
			}
		}
	}
	for i, n := range names {
		cells := []string{n, exprs[i]}
		for _, b := range bs {
			o := findOp(b.Small, n)
			if o == nil && b.SmallDelete != nil && b.SmallDelete.Name == n {
				o = b.SmallDelete
			}
			cells = append(cells, callsCell(o))
		}
		row(w, cells...)
	}
	fmt.Fprintln(w, "\nEach cell: casstore.Backend calls the engine made (min–max over the samples) / the budget of the engine's cost table for that sample, and the requests counted at the transport. Budgets: R read, C create, U compare-and-swap update, Del delete, RM(n) batch read, B index buckets, K buckets the token's keys route to (its ID shares the bucket of its first key), each split 2R + C + U + R + U (the bucket count goes into bucket 0: after every split on backends without a daily version quota while bucket 0 has the time for it, at each power of two on AWS). In requests:")
	fmt.Fprintln(w)
	for _, b := range bs {
		fmt.Fprintf(w, "- %s: %s\n", b.Name, legends[b.Name])
	}
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
	fmt.Fprintln(w, "## Scale: the index a load grows")
	fmt.Fprintln(w)
	header(w, "Backend", "Tokens", "Load time", "Inserts/s", "Requests per insert (mean / max)", "Backend calls per insert (mean / max)", "Splits", "Index buckets", "Largest bucket", "Mean bucket", "Check", "Check time", "Tokens() time (requests)", "DeleteTokens time")
	for _, b := range bs {
		s := b.Scale
		if s == nil || s.Load == nil {
			continue
		}
		l := s.Load
		cells := []string{b.Name, commas(s.N), fmtDur(l.D), fmt.Sprintf("%.0f", float64(l.N)/l.D.Seconds()), l.Req.MeanMax(), l.Calls.MeanMax(), commas(l.Splits)}
		if l.Errors > 0 {
			cells[1] += fmt.Sprintf(" (%d failed: %s)", l.Errors, firstLine(l.FirstErr))
		}
		if c := s.Check; c != nil && c.Err == "" {
			check := fmt.Sprintf("%s tokens, OK=%v", commas(c.Tokens), c.OK)
			if !c.OK {
				check += ": " + strings.ReplaceAll(c.Problems, "|", "\\|")
			}
			cells = append(cells, commas(c.Buckets), fmtBytes(c.Largest)+fmt.Sprintf(" (%.0f%% of 64 KiB)", 100*float64(c.Largest)/tokenstore.MaxDocumentSize), fmtBytes(c.Mean), check, fmtDur(c.D))
		} else if c != nil {
			cells = append(cells, "-", "-", "-", "error: "+c.Err, fmtDur(c.D))
		} else {
			cells = append(cells, "-", "-", "-", "-", "-")
		}
		tok := "-"
		if s.Tokens != nil && len(s.Tokens.Samples) > 0 {
			tok = fmt.Sprintf("%s (%s)", fmtDur(s.Tokens.Samples.Percentile(50)), commas(s.Tokens.Samples[0].U.NRequests()))
		} else if s.Tokens != nil {
			tok = "error: " + firstLine(s.Tokens.FirstErr)
		}
		del := "-"
		if s.Delete != nil && len(s.Delete.Samples) > 0 {
			del = fmtDur(s.Delete.Samples[0].D)
		}
		row(w, append(cells, tok, del)...)
	}
	for _, b := range bs {
		if s := b.Scale; s != nil && s.Quota != nil {
			most, name := s.Quota.MaxVersions()
			fmt.Fprintf(w, "\n**%s ran under AWS's version quota** (casstoretest.QuotaBackend on the real clock, 100 versions per secret in 24 hours): %s writes refused; the most versions of one secret: %d (%s).", b.Name, commas(s.Quota.Refused()), most, name)
			if l := s.Load; l != nil && l.Errors > 0 {
				fmt.Fprintf(w, " %s of %s inserts failed; the first failure came after %s inserts: %s.", commas(l.Errors), commas(l.N), commas(l.FirstErrAt), firstLine(l.FirstErr))
			}
			fmt.Fprintln(w)
		}
	}
	fmt.Fprintf(w, "\nLoaded with SaveToken of new tokens, %d in flight, through a Store with WithIndexCache(true); %d of them are records with only an access token (rule 2), one in %d of the first %s (inserting one scans the store, see the small store's table; they are left out of the requests per insert). Requests and Backend calls per insert include the splits the insert triggered. Check, Tokens() and DeleteTokens are single runs; Tokens() reads every bucket and every token (RM(N)).\n\n", r.Config.workers, r.Config.rule2, r.Config.rule2Every, commas(r.Config.rule2*r.Config.rule2Every))
}

// scaleRows are the operations of the scale table.
var scaleRows = []string{
	"FindTokenByID",
	"FindToken by user, cold",
	"FindToken by user, warm",
	"FindToken by user, new Store",
	"FindToken by grant token, cold",
	"FindToken by refresh token, cold",
	"FindToken by refresh token, warm",
	"FindToken by access token (rule 2 record), cold",
	"FindToken by access token (rule 2 record), warm",
	"FindToken by access token (refreshable record: scan)",
	"SaveToken new, a record with only an access token",
	"SaveToken refresh (access token changes)",
	"SaveToken refresh, token not read before",
	"SaveToken new",
	"SaveToken new, cache off",
	"DeleteToken",
	"DeleteToken, cache off",
}

func (r *Report) renderScaleOps(w io.Writer, bs []*BackendResult) {
	fmt.Fprintf(w, "## Scale: requests and latency per operation at N (%d samples each)\n\n", r.Config.samples)
	cols := []string{"Operation", "Budget"}
	var sbs []*BackendResult
	for _, b := range bs {
		if b.Scale != nil && len(b.Scale.Ops) > 0 {
			sbs = append(sbs, b)
			cols = append(cols, fmt.Sprintf("%s, N=%s", b.Name, commas(b.Scale.N)))
		}
	}
	if len(sbs) == 0 {
		return
	}
	header(w, cols...)
	for _, name := range scaleRows {
		var expr string
		cells := []string{name, ""}
		for _, b := range sbs {
			o := findOp(b.Scale.Ops, name)
			if o == nil {
				cells = append(cells, "-")
				continue
			}
			expr = o.BudgetExpr
			cells = append(cells, scaleCell(o))
		}
		cells[1] = expr
		row(w, cells...)
	}
	fmt.Fprintln(w, "\nEach cell: requests p50 / max (Backend calls p50 / max, ✓ when every sample was within its budget); latency p50 / max. Cold: a Store with the default options (no index cache) that has looked keys up before; new Store: a Store opened for the lookup, which knows nothing of the layout (it starts at bucket 0, which records the bucket count; on AWS, where bucket 0 records it only at each power of two, the key's bucket and its child in the current round are read with one BatchGetSecretValue); warm: WithIndexCache(true), the key looked up before. The access-token scan is measured up to -scan-max tokens.")
	fmt.Fprintln(w)
}

func scaleCell(o *Op) string {
	if len(o.Samples) == 0 {
		return "error: " + firstLine(o.FirstErr)
	}
	req, calls := statsOf(o.Samples.Requests()), statsOf(o.Samples.BackendCalls())
	mark := ""
	if lo, hi := o.BudgetRange(); hi >= 0 || lo >= 0 {
		mark = " ✓"
		if over := o.Over(); over > 0 {
			mark = fmt.Sprintf(" ✗ %d/%d over", over, len(o.Samples))
		}
	}
	s := fmt.Sprintf("%s (%s%s); %s / %s", req, calls, mark, fmtDur(o.Samples.Percentile(50)), fmtDur(o.Samples.Max()))
	if strings.HasPrefix(o.Name, "SaveToken new") {
		splits := 0
		for _, x := range o.Samples {
			splits += x.U.Splits
		}
		s += fmt.Sprintf("; mean %.2f req, %d splits", statsOf(o.Samples.Requests()).Mean, splits)
	}
	if o.IndexFree && o.Strays > 0 {
		s += fmt.Sprintf(" ✗ %d wrote the index", o.Strays)
	}
	if o.Errors > 0 {
		s += fmt.Sprintf(" — %d errors: %s", o.Errors, firstLine(o.FirstErr))
	}
	return s
}

func (r *Report) renderLoadSlices(w io.Writer, bs []*BackendResult) {
	for _, b := range bs {
		if b.Scale == nil || b.Scale.Load == nil || len(b.Scale.Load.Slices) < 2 {
			continue
		}
		l := b.Scale.Load
		fmt.Fprintf(w, "## Insert throughput over the load: %s, %s tokens\n\n", b.Name, commas(l.N))
		header(w, "Inserts done", "Wall time", "Inserts/s", "Index buckets at the end", "Splits", "Failed CAS", "Requests per insert (p50 / max)", "Backend calls (p50 / max)", "Latency p50", "Latency max")
		from := 0
		for _, s := range l.Slices {
			row(w, commas(s.To), fmtDur(s.D), fmt.Sprintf("%.0f", s.Rate(from)), commas(s.Buckets), commas(s.Splits), commas(s.Lost), s.Req.String(), s.Calls.String(), fmtDur(s.P50), fmtDur(s.Max))
			from = s.To
		}
		fmt.Fprintf(w, "\nAll inserts of regular tokens: requests mean %.2f, max %d (the worst: %s); latency p50 %s, p99 %s, max %s.", l.Req.Mean, l.Req.Max, l.Worst.U.Requests, fmtDur(l.P50), fmtDur(l.P99), fmtDur(l.Max))
		if l.Rule2 > 0 {
			fmt.Fprintf(w, " The %d records with only an access token (not in the columns: each scans the store, which then held up to %s tokens): requests mean %.0f, max %d.", l.Rule2, commas(r.Config.rule2*r.Config.rule2Every), l.Rule2Req.Mean, l.Rule2Req.Max)
		}
		fmt.Fprint(w, "\n\n")
	}
}

func (r *Report) renderThroughput(w io.Writer, bs []*BackendResult) {
	var tbs []*BackendResult
	for _, b := range bs {
		if b.Throughput != nil {
			tbs = append(tbs, b)
		}
	}
	if len(tbs) == 0 {
		return
	}
	fmt.Fprintf(w, "## Throughput (%d goroutines, %s per side, scale store)\n\n", r.Config.goroutines, r.Config.duration)
	fmt.Fprintf(w, "Mix: of every %d operations, %d are FindToken by user (warm cache) and 1 is a refresh save of the token the previous operation found, on up to %d tokens of the scale store; the raw SDK side makes the same requests on its own copies (a Read; a Write with the version that Read returned). Store and raw SDK alternate in %s slices.\n\n", r.Config.saveEvery, r.Config.saveEvery-1, r.Config.keep, r.Config.slice)
	header(w, "Backend", "Store ops/s", "Raw SDK ops/s", "Store / raw", "Store errors", "Raw errors", "Requests/op store", "Requests/op raw")
	for _, b := range tbs {
		t := b.Throughput
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
			if m.Errors == 0 && m.FirstErr == "" {
				return "0"
			}
			return fmt.Sprintf("%d (%s)", m.Errors, firstLine(m.FirstErr))
		}
		row(w, b.Name, fmt.Sprintf("%.0f", t.Store.OpsPerSec()), rawOps, frac, errs(t.Store), errs(t.Raw), perOp(t.Store), perOp(t.Raw))
	}
	fmt.Fprintln(w)
}

func renderDays(w io.Writer, bs []*BackendResult) {
	var ds []*DayResult
	for _, b := range bs {
		if b.Day != nil {
			ds = append(ds, b.Day)
		}
	}
	if len(ds) == 0 {
		return
	}
	fmt.Fprintln(w, "## A simulated day under AWS's version quota")
	fmt.Fprintln(w)
	header(w, "Backend", "Load", "Most versions of one secret in 24 h (quota 100)", "Secret", "Writes refused", "Index buckets at the end", "Tokens at the end", "Check", "Backend calls (requests)", "Wall time")
	for _, d := range ds {
		load := fmt.Sprintf("day 1: %s sign-ups; day 2: %s sign-ups + %s deletions", commas(d.Inserts), commas(d.Inserts), commas(d.Deletes))
		if d.Err != "" {
			row(w, d.Backend, load, "error: "+firstLine(d.Err), "", "", "", "", "", "", fmtDur(d.D))
			continue
		}
		row(w, d.Backend, load, fmt.Sprint(d.MaxVersions), d.MaxName, fmt.Sprint(d.Refused), commas(d.Buckets), commas(d.Tokens), fmt.Sprintf("OK=%v", d.CheckOK),
			fmt.Sprintf("%s (%s)", commas(d.Calls), commas(d.Requests)), fmtDur(d.D))
	}
	fmt.Fprintln(w, "\nThe engine (default options) runs on the backend under casstoretest.QuotaBackend, which counts every Create and Update as a version (an Update even when its compare-and-swap fails, as on AWS) and refuses the 101st within 24 hours as LimitExceededException; the engine and the quota share a simulated clock, so two days take minutes. Operations are sequential, spread evenly over each day.")
	fmt.Fprintln(w)
}

func renderStale(w io.Writer, bs []*BackendResult) {
	var ss []*StaleResult
	for _, b := range bs {
		if b.Stale != nil {
			ss = append(ss, b.Stale)
		}
	}
	if len(ss) == 0 {
		return
	}
	fmt.Fprintln(w, "## Stale reads: retries and added latency (two processes on one prefix)")
	fmt.Fprintln(w)
	header(w, "Backend", "Operation", "Backend calls/op (fresh → stale)", "Failed CAS/op (fresh → stale)", "Reads/op (fresh → stale)", "p50 fresh → stale (added)", "p95 fresh → stale (added)", "Answers older than the last save", "Errors (stale)")
	for _, s := range ss {
		if s.Err != "" {
			row(w, s.Backend, "error: "+firstLine(s.Err), "", "", "", "", "", "", "")
			continue
		}
		for _, o := range s.Ops {
			mean := func(op *Op, f func(Sample) int) float64 {
				if len(op.Samples) == 0 {
					return 0
				}
				t := 0
				for _, x := range op.Samples {
					t += f(x)
				}
				return float64(t) / float64(len(op.Samples))
			}
			calls := func(x Sample) int { return x.U.NBackend() }
			cas := func(x Sample) int { return x.U.FailedCAS }
			reads := func(x Sample) int { return x.U.Backend["Read"] }
			pair := func(f func(Sample) int) string {
				return fmt.Sprintf("%.2f → %.2f", mean(o.Base, f), mean(o.Stale, f))
			}
			lat := func(p float64) string {
				a, b := o.Base.Samples.Percentile(p), o.Stale.Samples.Percentile(p)
				return fmt.Sprintf("%s → %s (%s)", fmtDur(a), fmtDur(b), overhead(b, a))
			}
			old := fmt.Sprintf("%d/%d", o.Old, len(o.Stale.Samples))
			if o.BaseOld > 0 {
				old += fmt.Sprintf(" (fresh: %d)", o.BaseOld)
			}
			errs := fmt.Sprint(o.Stale.Errors)
			if o.Stale.Errors > 0 {
				errs += ": " + firstLine(o.Stale.FirstErr)
			}
			row(w, s.Backend, o.Name, pair(calls), pair(cas), pair(reads), lat(50), lat(95), old, errs)
		}
	}
	fmt.Fprintln(w)
	for _, s := range ss {
		if s.Err != "" {
			continue
		}
		extra := ""
		if s.StaleReads >= 0 {
			extra = fmt.Sprintf("; %s reads were answered stale", commas(s.StaleReads))
		}
		fmt.Fprintf(w, "- %s: %s, %d rounds (%s)%s.\n", s.Backend, s.How, s.Iterations, fmtDur(s.D), extra)
	}
	fmt.Fprintln(w, "\nA round, on one of 4 tokens that both stores have read and saved before: A refreshes it (B saved it last, one to a few rounds earlier); at once B finds it by user, B refreshes it, and B reads it by ID; then A inserts a new user and B looks it up at once. The same rounds run on a fresh prefix without staleness (fresh) and with every read lagging (stale). Failed CAS: Backend updates that found another version (and creates that found the document), each followed by a fresh read; reads: Backend Reads. An answer older than the last save is allowed when the reading process has seen nothing newer (it cannot tell); a process never gets a token older than one it has read or written itself.")
	fmt.Fprintln(w)
}

func renderRepair(w io.Writer, bs []*BackendResult) {
	var rs []*RepairResult
	for _, b := range bs {
		if b.Repair != nil {
			rs = append(rs, b.Repair)
		}
	}
	if len(rs) == 0 {
		return
	}
	fmt.Fprintln(w, "## Repair")
	fmt.Fprintln(w)
	header(w, "Backend", "Tokens", "Index buckets", "Repair, consistent store", "Requests", "Repair, every index bucket deleted", "Requests", "What it rebuilt", "Check after")
	for _, r := range rs {
		if r.Err != "" && r.Healthy.D == 0 {
			row(w, r.Backend, commas(r.N), "", "error: "+firstLine(r.Err), "", "", "", "", "")
			continue
		}
		cell := func(run RepairRun) (string, string) {
			if run.Err != "" {
				return "error: " + firstLine(run.Err), ""
			}
			return fmtDur(run.D), commas(run.U.U.NRequests())
		}
		hd, hr := cell(r.Healthy)
		ld, lr := cell(r.Lost)
		row(w, r.Backend, commas(r.N), commas(r.Buckets), hd, hr, ld, lr, r.Lost.Report.String(), fmt.Sprintf("OK=%v / OK=%v", r.Healthy.CheckOK, r.Lost.CheckOK))
	}
	fmt.Fprintln(w, "\nRepair by a new Store (an operator's process) on a store of default options loaded with 16 saves in flight: first on the consistent store, then after every index bucket was deleted out of band (AWS: ForceDeleteWithoutRecovery, so that the names can be created again). Check is clean after both.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "For RELIABILITY.md (\"the time Repair takes on 1,000 tokens\"):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "```")
	for _, r := range rs {
		fmt.Fprintf(w, "%-7s Repair of %s tokens: %s (consistent store), %s (index lost and rebuilt: %s)\n", r.Backend, commas(r.N), fmtDur(r.Healthy.D), fmtDur(r.Lost.D), r.Lost.Report.String())
	}
	fmt.Fprintln(w, "```")
	fmt.Fprintln(w)
}

func renderGCPCost(w io.Writer, c *GCPCost) {
	fmt.Fprintln(w, "## GCP: billable versions")
	fmt.Fprintln(w)
	if c.Err != "" {
		fmt.Fprintf(w, "Error: %s\n\n", c.Err)
		return
	}
	header(w, "Refreshes of one new token", "Versions added to its secret", "Billable versions (ENABLED + DISABLED) of the token", "Billable versions of index bucket 0", "Requests per refresh save")
	row(w, fmt.Sprint(c.Refreshes), fmt.Sprint(c.VersionsAdded), fmt.Sprint(c.Billable), fmt.Sprint(c.IndexBillable), fmt.Sprintf("%.2f", c.CallsPerUpdate))
	fmt.Fprintln(w, "\nCounted with ListSecretVersions filtered on `state:ENABLED OR state:DISABLED`. A write keeps the version it replaced (the `previous` alias, readable by a process whose alias read lags) and destroys the one before.")
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
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	if len(s) > 300 {
		s = s[:300] + " …"
	}
	return strings.ReplaceAll(s, "|", "\\|")
}

func renderBackend(w io.Writer, b *BackendResult) {
	fmt.Fprintf(w, "## %s: details\n\n%s. %s.\n\n", b.Name, b.Server, legends[b.Name])
	if b.Fatal != "" {
		fmt.Fprintf(w, "**Stopped early:** %s\n\n", b.Fatal)
	}
	if len(b.Small) > 0 {
		renderOps(w, fmt.Sprintf("Small store (N=%d)", b.SmallN), b.Small)
	}
	if s := b.Scale; s != nil && len(s.Ops) > 0 {
		ops := s.Ops
		if s.Tokens != nil {
			ops = append(ops, s.Tokens)
		}
		if s.Delete != nil {
			ops = append(ops, s.Delete)
		}
		renderOps(w, fmt.Sprintf("Scale store (N=%s)", commas(s.N)), ops)
	}
	for _, ops := range [][]*Op{b.Small, scaleOps(b)} {
		for _, o := range ops {
			if o != nil && o.OverDetail != "" {
				fmt.Fprintf(w, "- Over budget: %s: %s.\n", o.Name, o.OverDetail)
			}
		}
	}
	fmt.Fprintf(w, "\nPhases (wall time; %d warnings logged):\n\n", b.Warnings)
	for _, ph := range b.Phases {
		fmt.Fprintf(w, "- %s: %s\n", ph.Name, fmtDur(ph.D))
	}
	fmt.Fprintf(w, "- total: %s\n\n", fmtDur(b.Elapsed))
}

func scaleOps(b *BackendResult) []*Op {
	if b.Scale == nil {
		return nil
	}
	return b.Scale.Ops
}

func renderOps(w io.Writer, title string, ops []*Op) {
	fmt.Fprintf(w, "### %s\n\n", title)
	header(w, "Operation", "Samples", "Backend calls / budget (requests)", "Requests (worst sample)", "p50", "p99", "Raw sequence", "Raw requests", "Raw p50", "Raw p99", "Ratio p50", "Ratio p99", "p50 − raw p50")
	for _, o := range ops {
		if len(o.Refs) == 0 {
			row(w, o.Name, fmt.Sprint(len(o.Samples)), callsCell(o)+" ("+o.BudgetExpr+")", o.Samples.Worst().U.Requests.String(),
				fmtDur(o.Samples.Percentile(50)), fmtDur(o.Samples.Percentile(99)), "", "", "", "", "", "", "")
			continue
		}
		for i, ref := range o.Refs {
			name, n, budget, worst, p50, p99 := "″", "", "", "", "", ""
			if i == 0 {
				name, n, budget = o.Name, fmt.Sprint(len(o.Samples)), callsCell(o)+" ("+o.BudgetExpr+")"
				worst = o.Samples.Worst().U.Requests.String()
				p50, p99 = fmtDur(o.Samples.Percentile(50)), fmtDur(o.Samples.Percentile(99))
			}
			rawReq := ref.Samples.Worst().U.Requests.String()
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
