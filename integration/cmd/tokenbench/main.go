// Command tokenbench measures the cloudtokens stores, with their default
// options (an index that starts as one bucket and grows by itself),
// against the servers the tests use, and prints markdown tables:
//
//   - a small store: the requests and Backend calls of every operation
//     next to the engine's budget, and its latency as a ratio to the raw
//     SDK calls it reduces to;
//   - a scale store of N tokens per backend: the insert throughput over
//     the load (so that the index's splits show), the requests per insert
//     (splits included), the index it grew (buckets, the largest), Check,
//     Tokens(), and the requests and latency of cold and warm finds, of a
//     rule-2 find (a record with only an access token), of refreshes,
//     inserts and deletes at that size;
//   - throughput under 32 goroutines against the raw SDK;
//   - a simulated day of sign-ups and deletions under AWS's quota of 100
//     versions per secret in 24 hours (the most versions any secret got);
//   - stale reads (issue 12): retries and added latency of two processes
//     on one prefix when every read lags 2 s behind the writes;
//   - the time Repair takes on 1,000 tokens, healthy and with its index
//     lost;
//   - GCP's billable versions after 100 refreshes, and the size of the
//     Lambda example.
//
// Run it from the integration module:
//
//	go run ./cmd/tokenbench > tables.md
//	go run ./cmd/tokenbench -full -backends=memory > memory.md   # the sizes of BENCHMARKS.md
//
// Endpoints come from the environment, as in the tests:
// CLOUDTOKENS_AWS_ENDPOINT (with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_REGION; default test/test and us-east-1) for moto_server or
// LocalStack; CLOUDTOKENS_VAULT_ADDR and CLOUDTOKENS_VAULT_TOKEN, or
// VAULT_ADDR and VAULT_TOKEN, for Vault (KV v2 at secret/). The GCP
// Secret Manager emulator (gcpsm/gcpsmtest) is started in this process and
// reached over TCP. A backend without its variables is reported as
// skipped. Progress goes to stderr, the tables to stdout (or -o).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cloudtokens/cloudtokens/integration/bench"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore/casstoretest"
)

// Sizes of the scale run: the default run, and -full (the sizes of issue
// 15, for BENCHMARKS.md; hours on this machine, see BENCHMARKS.md).
var (
	defaultSizes = map[string]int{"memory": 100_000, "gcp": 20_000, "vault": 10_000, "aws": 1_000}
	fullSizes    = map[string]int{"memory": 1_000_000, "gcp": 1_000_000, "vault": 100_000, "aws": 10_000}
)

var allSections = []string{"small", "scale", "throughput", "gcpcost", "day", "stale", "repair"}

type config struct {
	backends    []string
	sections    []string
	sizes       map[string]int
	full        bool
	small       int
	iters       int
	samples     int
	scanMax     int
	workers     int
	rule2Every  int
	rule2       int
	keep        int
	slices      int
	goroutines  int
	saveEvery   int
	duration    time.Duration
	slice       time.Duration
	refreshes   int
	day         []string
	quota       []string
	dayInserts  int
	dayDeletes  int
	staleWindow time.Duration
	staleIters  int
	repairN     int
	lambda      bool
	lambdaDir   string
	out         string
	keepData    bool
	skipMissing bool
	cpuProfile  string
	memProfile  string
	gcpAddr     string
}

func (c *config) has(section string) bool { return slices.Contains(c.sections, section) }

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// parseSizes reads "memory=100000,gcp=20000" over base.
func parseSizes(s string, base map[string]int) (map[string]int, error) {
	out := map[string]int{}
	for k, v := range base {
		out[k] = v
	}
	for _, kv := range splitList(s) {
		k, v, ok := strings.Cut(kv, "=")
		n, err := strconv.Atoi(strings.ReplaceAll(v, "_", ""))
		if !ok || err != nil || n < 0 {
			return nil, fmt.Errorf("-n: %q is not backend=tokens", kv)
		}
		out[k] = n
	}
	return out, nil
}

func main() {
	var c config
	var backends, sections, sizes, day, quota string
	flag.StringVar(&backends, "backends", "memory,aws,vault,gcp", "comma-separated backends to measure: memory, aws, vault, gcp")
	flag.StringVar(&sections, "sections", strings.Join(allSections, ","), "comma-separated parts to run: "+strings.Join(allSections, ", "))
	flag.StringVar(&sizes, "n", "", "tokens of the scale run per backend, e.g. memory=1000000,aws=10000 (default memory=100000,gcp=20000,vault=10000,aws=1000)")
	flag.BoolVar(&c.full, "full", false, "scale run at the sizes of BENCHMARKS.md: memory and gcp 1,000,000, vault 100,000, aws 10,000 (-n overrides)")
	flag.IntVar(&c.small, "small", 10, "tokens in the small store")
	flag.IntVar(&c.iters, "iterations", 100, "samples per operation (and per raw sequence) in the small store")
	flag.IntVar(&c.samples, "samples", 50, "samples per operation in the scale store")
	flag.IntVar(&c.scanMax, "scan-max", 20000, "measure the lookup by the access token of a refreshable record (a full scan) up to this many tokens")
	flag.IntVar(&c.workers, "load-workers", 16, "saves in flight while loading the scale store")
	flag.IntVar(&c.rule2, "rule2", 50, "records with only an access token in the scale store (inserted among the first rule2 × rule2-every tokens: each insert scans the store)")
	flag.IntVar(&c.rule2Every, "rule2-every", 20, "one record with only an access token every n tokens at the start of the load")
	flag.IntVar(&c.keep, "keep-tokens", 1000, "tokens of the scale store kept in memory to sample lookups and saves from")
	flag.IntVar(&c.slices, "load-slices", 20, "the insert throughput is reported per 1/n of the load")
	flag.IntVar(&c.goroutines, "goroutines", 32, "goroutines of the throughput run")
	flag.IntVar(&c.saveEvery, "save-every", 5, "throughput mix: every n-th operation is a refresh save, the others finds by user")
	flag.DurationVar(&c.duration, "duration", 20*time.Second, "throughput run per side (store, and raw SDK)")
	flag.DurationVar(&c.slice, "slice", 5*time.Second, "throughput: store and raw SDK alternate in slices this long")
	flag.IntVar(&c.refreshes, "refreshes", 100, "GCP: refresh saves before counting billable versions")
	flag.StringVar(&day, "day", "memory", "backends that run the simulated day under AWS's version quota (aws: over moto_server, ~15 min)")
	flag.StringVar(&quota, "quota", "", "backends whose scale store runs under AWS's version quota on the real clock (casstoretest.QuotaBackend): a write past 100 versions of one secret in 24 hours fails")
	flag.IntVar(&c.dayInserts, "day-inserts", 10000, "simulated day: sign-ups a day")
	flag.IntVar(&c.dayDeletes, "day-deletes", 10000, "simulated day: deletions a day (on the second day)")
	flag.DurationVar(&c.staleWindow, "stale-window", 2*time.Second, "stale reads: how long reads lag behind writes")
	flag.IntVar(&c.staleIters, "stale-iterations", 30, "stale reads: rounds of the scenario")
	flag.IntVar(&c.repairN, "repair-n", 1000, "tokens of the store Repair is timed on")
	flag.BoolVar(&c.lambda, "lambda", true, "build the Lambda example and a bare secretsmanager hello-world and compare sizes")
	flag.StringVar(&c.lambdaDir, "lambda-dir", "", "directory of the Lambda example module (default: ../examples/lambda of the integration module)")
	flag.StringVar(&c.out, "o", "", "write the tables to this file instead of stdout")
	flag.BoolVar(&c.keepData, "keep", false, "keep the scale store's tokens (skip DeleteTokens)")
	flag.BoolVar(&c.skipMissing, "skip-missing", true, "report a backend whose environment is unset as skipped; false: fail")
	flag.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.StringVar(&c.gcpAddr, "gcp-addr", "", "GCP: use the gcpsmtest emulator already running at this address (go run ./cmd/gcpemulator) instead of one in this process, whose memory then counts against the benchmark's")
	flag.StringVar(&c.memProfile, "memprofile", "", "write heap profiles after each scale store's load and its Check to this file (the backend's name, and .check, appended)")
	flag.Parse()
	c.backends, c.sections, c.day, c.quota = splitList(backends), splitList(sections), splitList(day), splitList(quota)
	for _, s := range c.sections {
		if !slices.Contains(allSections, s) {
			log.Fatalf("-sections: unknown section %q (want %s)", s, strings.Join(allSections, ", "))
		}
	}
	base := defaultSizes
	if c.full {
		base = fullSizes
	}
	var err error
	if c.sizes, err = parseSizes(sizes, base); err != nil {
		log.Fatal(err)
	}
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	log.SetPrefix("tokenbench: ")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	rep := &Report{Started: start, Config: c, GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), Args: os.Args[1:]}
	failed := false
	for _, name := range c.backends {
		br := runBackend(ctx, &c, name)
		if br.Failed(c.skipMissing) {
			failed = true
		}
		rep.Backends = append(rep.Backends, br)
		if ctx.Err() != nil {
			break
		}
	}
	if c.lambda && ctx.Err() == nil {
		log.Printf("lambda: building")
		rep.Lambda = buildLambda(ctx, c.lambdaDir)
	}
	rep.Elapsed = time.Since(start)
	log.Printf("done in %s", rep.Elapsed.Round(time.Second))

	var w io.Writer = os.Stdout
	if c.out != "" {
		f, err := os.Create(c.out)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		w = f
	}
	rep.Render(w)
	if failed {
		log.Printf("some measurements failed; see the tables")
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// openTarget connects to the backend name, or reports why it cannot.
func openTarget(ctx context.Context, c *config, name string) (t *bench.Target, skip string, err error) {
	switch name {
	case "memory":
		return bench.NewMemory(), "", nil
	case "aws":
		cfg, ok, err := bench.AWSConfigFromEnv(ctx)
		if err != nil {
			return nil, "", err
		}
		if !ok {
			return nil, bench.EnvAWSEndpoint + " is unset", nil
		}
		t, err := bench.NewAWS(ctx, cfg)
		return t, "", err
	case "vault":
		addr, token, ok := bench.VaultFromEnv()
		if !ok {
			return nil, bench.EnvVaultAddr + "/" + bench.EnvVaultToken + " (or VAULT_ADDR/VAULT_TOKEN) are unset", nil
		}
		t, err := bench.NewVault(ctx, addr, token)
		return t, "", err
	case "gcp":
		if c.gcpAddr != "" {
			t, err := bench.DialGCP(ctx, c.gcpAddr)
			return t, "", err
		}
		t, err := bench.NewGCP(ctx)
		return t, "", err
	}
	return nil, "", fmt.Errorf("unknown backend %q (want memory, aws, vault or gcp)", name)
}

// BackendResult is everything measured on one backend.
type BackendResult struct {
	Name, Server string
	Costs        bench.Costs
	Skipped      bool
	Fatal        string
	Small        []*Op
	SmallN       int
	SmallDelete  *Op
	Scale        *ScaleResult
	Throughput   *Throughput
	GCPCost      *GCPCost
	Day          *DayResult
	Stale        *StaleResult
	Repair       *RepairResult
	Phases       []Phase
	Warnings     int64
	Elapsed      time.Duration
}

// ScaleResult is the scale store of one backend.
type ScaleResult struct {
	N int
	// Quota, when set, is the quota the scale store ran under (-quota).
	Quota  *casstoretest.QuotaBackend
	Load   *LoadResult
	Check  *CheckResult
	Tokens *Op
	Ops    []*Op
	Delete *Op
}

// Failed reports whether the run on this backend went wrong: it could not
// run (unless skipped for a missing environment and skipMissing), a load,
// Check or Repair failed or found a problem, or an operation failed.
func (b *BackendResult) Failed(skipMissing bool) bool {
	if b.Skipped {
		return !skipMissing
	}
	if b.Fatal != "" {
		return true
	}
	ops := slices.Clone(b.Small)
	ops = append(ops, b.SmallDelete)
	if s := b.Scale; s != nil {
		if s.Load != nil && s.Load.Errors > 0 || s.Check != nil && (!s.Check.OK || s.Check.Err != "") {
			return true
		}
		ops = append(append(ops, s.Ops...), s.Tokens, s.Delete)
	}
	for _, o := range ops {
		if o != nil && o.Errors > 0 {
			return true
		}
	}
	if d := b.Day; d != nil && (d.Err != "" || d.Refused > 0 || !d.CheckOK) {
		return true
	}
	if r := b.Repair; r != nil && (r.Err != "" || r.Healthy.Err != "" || r.Lost.Err != "" || !r.Healthy.CheckOK || !r.Lost.CheckOK) {
		return true
	}
	return b.Stale != nil && b.Stale.Err != ""
}

// Phase is the wall time of one step of a backend's run.
type Phase struct {
	Name string
	D    time.Duration
}

func runBackend(ctx context.Context, c *config, name string) *BackendResult {
	br := &BackendResult{Name: name}
	start := time.Now()
	warnBefore := bench.Warnings()
	defer func() {
		br.Elapsed = time.Since(start)
		br.Warnings = bench.Warnings() - warnBefore
		log.Printf("%s: done in %s", name, br.Elapsed.Round(time.Second))
	}()
	t, skip, err := openTarget(ctx, c, name)
	switch {
	case err != nil:
		br.Fatal = err.Error()
		log.Printf("%s: %v", name, err)
		return br
	case skip != "":
		br.Skipped, br.Fatal = true, skip
		log.Printf("%s: skipped: %s", name, skip)
		return br
	}
	defer t.Close()
	br.Server, br.Costs = t.Server, t.Costs
	phase := func(what string, fn func()) {
		if ctx.Err() != nil {
			return
		}
		log.Printf("%s: %s", name, what)
		s := time.Now()
		fn()
		br.Phases = append(br.Phases, Phase{what, time.Since(s)})
		log.Printf("%s: %s: %s", name, what, time.Since(s).Round(time.Millisecond))
	}

	if c.has("small") {
		small, err := newRunner(ctx, t, bench.NewPrefix("small"), nil)
		if err != nil {
			br.Fatal = err.Error()
			return br
		}
		br.SmallN = c.small
		phase(fmt.Sprintf("small store: load %d tokens", c.small), func() {
			if err := small.load(0, c.small, 5); err != nil {
				br.Fatal = "loading the small store: " + err.Error()
			}
		})
		if br.Fatal != "" {
			return br
		}
		phase(fmt.Sprintf("small store: operations, %d samples each", c.iters), func() {
			br.Small = small.suite(c.iters, true, true)
		})
		if name == "gcp" && c.has("gcpcost") {
			phase(fmt.Sprintf("GCP cost: %d refreshes", c.refreshes), func() { br.GCPCost = small.gcpCost(c.refreshes) })
		}
		phase("small store: DeleteTokens", func() { br.SmallDelete = small.deleteAll() })
	}

	if n := c.sizes[name]; n > 0 && (c.has("scale") || c.has("throughput")) {
		sc := &ScaleResult{N: n}
		br.Scale = sc
		var wrap func(casstore.Backend) casstore.Backend
		if slices.Contains(c.quota, name) {
			wrap = bench.Shared(func(b casstore.Backend) casstore.Backend {
				sc.Quota = casstoretest.NewQuotaBackend(b, time.Now)
				return sc.Quota
			})
		}
		scale, err := newRunner(ctx, t, bench.NewPrefix("scale"), wrap)
		if err != nil {
			br.Fatal = err.Error()
			return br
		}
		phase(fmt.Sprintf("scale store: load %s tokens, %d in flight", commas(n), c.workers), func() {
			sc.Load = scale.loadScale(n, c.workers, c.rule2, c.rule2Every, c.keep, c.slices)
			l := sc.Load
			log.Printf("%s: loaded %d tokens in %s (%.0f/s), %d buckets, %d errors", name, n, l.D.Round(time.Millisecond), float64(n)/l.D.Seconds(), scale.buckets(), l.Errors)
			if c.memProfile != "" {
				writeHeapProfile(c.memProfile + "." + name)
			}
		})
		if c.has("scale") {
			// The samples first: Check and Tokens() read the whole store,
			// and at full size they are what may run out of memory.
			phase(fmt.Sprintf("scale store: operations, %d samples each", c.samples), func() {
				sc.Ops = scale.suite(c.samples, false, n <= c.scanMax)
			})
			phase("scale store: Check", func() { sc.Check = scale.check() })
			if c.memProfile != "" {
				writeHeapProfile(c.memProfile + "." + name + ".check")
			}
			phase("scale store: Tokens", func() { sc.Tokens = scale.tokensAt(1) })
		}
		if c.has("throughput") {
			phase(fmt.Sprintf("throughput: %d goroutines, %s per side", c.goroutines, c.duration), func() {
				// The memory target has no SDK: its "raw" side would time
				// map lookups, so only the store side runs.
				br.Throughput = scale.throughput(c.goroutines, c.saveEvery, c.duration, c.slice, name != "memory")
			})
		}
		if !c.keepData {
			phase(fmt.Sprintf("scale store: DeleteTokens of %s", commas(scale.n)), func() { sc.Delete = scale.deleteAll() })
		}
	}

	if c.has("day") && slices.Contains(c.day, name) {
		phase(fmt.Sprintf("simulated days: %d sign-ups a day, %d deletions on day 2, under AWS's version quota", c.dayInserts, c.dayDeletes), func() {
			br.Day = runDay(ctx, t, c.dayInserts, c.dayDeletes)
		})
	}
	if c.has("stale") {
		phase(fmt.Sprintf("stale reads: %d rounds, window %v", c.staleIters, c.staleWindow), func() {
			br.Stale = runStale(ctx, t, c.staleWindow, c.staleIters)
		})
	}
	if c.has("repair") && c.repairN > 0 {
		phase(fmt.Sprintf("Repair of %d tokens", c.repairN), func() { br.Repair = runRepair(ctx, t, c.repairN) })
	}
	return br
}

// writeHeapProfile writes a heap profile (after a collection, so that it
// shows what the load keeps) to file; a failure is logged, not fatal.
func writeHeapProfile(file string) {
	runtime.GC()
	f, err := os.Create(file)
	if err == nil {
		err = pprof.WriteHeapProfile(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		log.Printf("heap profile: %v", err)
	}
}
