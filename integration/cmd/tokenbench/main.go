// Command tokenbench measures the cloudtokens stores against the servers
// the tests use and prints markdown tables: the requests each operation
// makes next to its budget, its latency as a ratio to the raw SDK calls
// it reduces to, a load of 10,000 tokens, throughput under 32 goroutines,
// GCP's billable versions and the size of the Lambda example.
//
// Run it from the integration module:
//
//	go run ./cmd/tokenbench -backends=memory,aws,vault,gcp > tables.md
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
	"strings"
	"time"

	"github.com/cloudtokens/cloudtokens/integration/bench"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

type config struct {
	backends    []string
	small       int
	n           int
	nAWS        int
	mid         int
	shards      int
	iters       int
	scaleIters  int
	scanIters   int
	workers     int
	goroutines  int
	saveEvery   int
	duration    time.Duration
	slice       time.Duration
	refreshes   int
	lambda      bool
	lambdaDir   string
	out         string
	check       bool
	keep        bool
	skipMissing bool
	cpuProfile  string
}

func main() {
	var c config
	var backends string
	flag.StringVar(&backends, "backends", "memory,aws,vault,gcp", "comma-separated backends to measure: memory, aws, vault, gcp")
	flag.IntVar(&c.small, "small", 10, "tokens in the small store (calls and latency per operation, Tokens at N=small)")
	flag.IntVar(&c.n, "n", 10000, "tokens loaded for the scale run")
	flag.IntVar(&c.nAWS, "n-aws", 1000, "tokens loaded for the scale run on aws (moto_server is slow; 0: -n)")
	flag.IntVar(&c.mid, "mid", 1000, "Tokens is also measured when the load reaches this many tokens (0: not)")
	flag.IntVar(&c.shards, "shards", 100, "index shards of the scale store (WithIndexShards)")
	flag.IntVar(&c.iters, "iterations", 100, "samples per operation (and per raw sequence) in the small store")
	flag.IntVar(&c.scaleIters, "scale-iterations", 20, "samples per operation in the scale store")
	flag.IntVar(&c.scanIters, "scan-iterations", 2, "samples of Tokens and of the access-token scan in the scale store")
	flag.IntVar(&c.workers, "load-workers", 16, "saves in flight while loading")
	flag.IntVar(&c.goroutines, "goroutines", 32, "goroutines of the throughput run")
	flag.IntVar(&c.saveEvery, "save-every", 5, "throughput mix: every n-th operation is a refresh save, the others finds by user")
	flag.DurationVar(&c.duration, "duration", 30*time.Second, "throughput run per side (store, and raw SDK)")
	flag.DurationVar(&c.slice, "slice", 5*time.Second, "throughput: store and raw SDK alternate in slices this long")
	flag.IntVar(&c.refreshes, "refreshes", 100, "GCP: refresh saves before counting billable versions")
	flag.BoolVar(&c.lambda, "lambda", true, "build the Lambda example and a bare secretsmanager hello-world and compare sizes")
	flag.StringVar(&c.lambdaDir, "lambda-dir", "", "directory of the Lambda example module (default: ../examples/lambda of the integration module)")
	flag.StringVar(&c.out, "o", "", "write the tables to this file instead of stdout")
	flag.BoolVar(&c.check, "check", true, "run Check on the scale store (index sizes and consistency)")
	flag.BoolVar(&c.keep, "keep", false, "keep the scale store's tokens (skip DeleteTokens)")
	flag.BoolVar(&c.skipMissing, "skip-missing", true, "report a backend whose environment is unset as skipped; false: fail")
	flag.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	for _, b := range strings.Split(backends, ",") {
		if b = strings.TrimSpace(b); b != "" {
			c.backends = append(c.backends, b)
		}
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
func openTarget(ctx context.Context, name string) (t *bench.Target, skip string, err error) {
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
	N            int
	Shards       int
	LoadTime     time.Duration
	LoadErr      string
	Mid          *Op
	Check        *casstore.Report
	CheckTime    time.Duration
	CheckErr     string
	Scale        []*Op
	ScaleDelete  *Op
	Throughput   *Throughput
	GCPCost      *GCPCost
	Phases       []Phase
	Warnings     int64
	Elapsed      time.Duration
}

// Failed reports whether the run on this backend went wrong: it could not
// run (unless skipped for a missing environment and skipMissing), the load
// or Check failed, Check found a disagreement, or an operation failed.
func (b *BackendResult) Failed(skipMissing bool) bool {
	if b.Skipped {
		return !skipMissing
	}
	if b.Fatal != "" || b.LoadErr != "" || b.CheckErr != "" || (b.Check != nil && !b.Check.OK()) {
		return true
	}
	for _, ops := range [][]*Op{b.Small, b.Scale, {b.SmallDelete, b.Mid, b.ScaleDelete}} {
		for _, o := range ops {
			if o != nil && o.Errors > 0 {
				return true
			}
		}
	}
	return false
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
	t, skip, err := openTarget(ctx, name)
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
		log.Printf("%s: %s", name, what)
		s := time.Now()
		fn()
		br.Phases = append(br.Phases, Phase{what, time.Since(s)})
	}

	// Small store: one index shard (the default), the calls and latency of
	// every operation.
	small, err := newRunner(ctx, t, bench.NewPrefix("small"), 1)
	if err != nil {
		br.Fatal = err.Error()
		return br
	}
	br.SmallN = c.small
	phase(fmt.Sprintf("small store: load %d tokens", c.small), func() {
		if _, err := small.load(0, c.small, c.workers); err != nil {
			br.Fatal = "loading the small store: " + err.Error()
		}
	})
	if br.Fatal != "" {
		return br
	}
	phase(fmt.Sprintf("small store: operations, %d samples each", c.iters), func() {
		br.Small = small.suite(c.iters, min(c.iters, 20))
	})
	if name == "gcp" {
		phase(fmt.Sprintf("GCP cost: %d refreshes", c.refreshes), func() { br.GCPCost = small.gcpCost(c.refreshes) })
	}
	phase("small store: DeleteTokens", func() { br.SmallDelete = small.deleteAll() })
	if ctx.Err() != nil {
		return br
	}

	// Scale store: WithIndexShards(c.shards), N tokens.
	br.N, br.Shards = c.n, c.shards
	if name == "aws" && c.nAWS > 0 {
		br.N = c.nAWS
	}
	scale, err := newRunner(ctx, t, bench.NewPrefix("scale"), c.shards)
	if err != nil {
		br.Fatal = err.Error()
		return br
	}
	loaded := 0
	if c.mid > 0 && c.mid < br.N {
		phase(fmt.Sprintf("scale store: load %d tokens", c.mid), func() {
			d, err := scale.load(0, c.mid, c.workers)
			br.LoadTime += d
			if err != nil {
				br.LoadErr = err.Error()
			}
		})
		if br.LoadErr != "" {
			return br
		}
		loaded = c.mid
		phase(fmt.Sprintf("scale store: Tokens at N=%d", c.mid), func() { br.Mid = scale.tokensAt(c.scanIters) })
	}
	what := fmt.Sprintf("scale store: load %d tokens", br.N)
	if loaded > 0 {
		what = fmt.Sprintf("scale store: load %d more tokens", br.N-loaded)
	}
	phase(what, func() {
		d, err := scale.load(loaded, br.N, c.workers)
		br.LoadTime += d
		if err != nil {
			br.LoadErr = err.Error()
		}
	})
	if br.LoadErr != "" || ctx.Err() != nil {
		return br
	}
	log.Printf("%s: loaded %d tokens in %s (%.0f/s)", name, br.N, br.LoadTime.Round(time.Millisecond), float64(br.N)/br.LoadTime.Seconds())
	if c.check {
		phase("scale store: Check", func() {
			s := time.Now()
			rep, err := scale.warm.Check(ctx)
			br.CheckTime = time.Since(s)
			if err != nil {
				br.CheckErr = err.Error()
				return
			}
			br.Check = rep
		})
	}
	phase(fmt.Sprintf("scale store: operations, %d samples each", c.scaleIters), func() {
		br.Scale = scale.suite(c.scaleIters, c.scanIters)
	})
	if ctx.Err() != nil {
		return br
	}
	phase(fmt.Sprintf("throughput: %d goroutines, %s per side", c.goroutines, c.duration), func() {
		// The memory target has no SDK: its "raw" side would time map
		// lookups, so only the store side runs.
		br.Throughput = scale.throughput(c.goroutines, c.saveEvery, c.duration, c.slice, name != "memory")
	})
	if !c.keep && ctx.Err() == nil {
		phase(fmt.Sprintf("scale store: DeleteTokens of %d", len(scale.toks)), func() { br.ScaleDelete = scale.deleteAll() })
	}
	return br
}

func newRunner(ctx context.Context, t *bench.Target, prefix string, shards int) (*runner, error) {
	warm, err := t.Open(ctx, prefix, bench.StoreOptions{IndexShards: shards, IndexCache: true})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", prefix, err)
	}
	cold, err := t.Open(ctx, prefix, bench.StoreOptions{IndexShards: shards, IndexCache: false})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", prefix, err)
	}
	return &runner{ctx: ctx, t: t, prefix: prefix, shards: shards, warm: warm, cold: cold}, nil
}
