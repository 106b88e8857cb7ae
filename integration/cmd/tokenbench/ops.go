package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/cloudtokens/cloudtokens/integration/bench"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/index"
)

// Op is the measurement of one store operation: its samples, the budget
// of each sample in Backend calls, and the raw SDK sequences it was
// interleaved with.
type Op struct {
	Name       string
	BudgetExpr string // in Backend calls: "R", "R + C + K·U", ...
	Budgets    []int  // per sample, in Backend calls
	Samples    Samples
	Refs       []*Ref
	Errors     int
	FirstErr   string
	// IndexFree marks operations that must not write the index (a
	// refresh); Strays counts the samples that did.
	IndexFree bool
	Strays    int
	// OverDetail describes the first sample over its budget.
	OverDetail string
}

// Ref is a raw SDK sequence timed against an operation.
type Ref struct {
	Name    string
	Samples Samples
	Errors  int
}

// Over returns how many samples made more Backend calls than their
// budget.
func (o *Op) Over() int {
	n := 0
	for i, s := range o.Samples {
		if i < len(o.Budgets) && o.Budgets[i] >= 0 && s.U.NBackend() > o.Budgets[i] {
			n++
		}
	}
	return n
}

// BudgetRange returns the smallest and largest budget.
func (o *Op) BudgetRange() (lo, hi int) {
	for i, b := range o.Budgets {
		if i == 0 || b < lo {
			lo = b
		}
		if i == 0 || b > hi {
			hi = b
		}
	}
	return lo, hi
}

func (o *Op) fail(err error) {
	o.Errors++
	if o.FirstErr == "" {
		o.FirstErr = err.Error()
	}
}

func (o *Op) add(s Sample, budget int) {
	o.Samples = append(o.Samples, s)
	o.Budgets = append(o.Budgets, budget)
	if budget >= 0 && s.U.NBackend() > budget && o.OverDetail == "" {
		o.OverDetail = fmt.Sprintf("%d Backend calls (%s; %d index reads, %d index writes, %d splits, %d failed compare-and-swap) for a budget of %d, at %d buckets",
			s.U.NBackend(), s.U.Backend, s.U.IndexReads, s.U.IndexWrites, s.U.Splits, s.U.FailedCAS, budget, s.M)
	}
	if o.IndexFree && s.U.IndexWrites > 0 {
		o.Strays++
	}
}

// runner runs operations on one store prefix of a target.
type runner struct {
	ctx    context.Context
	t      *bench.Target
	prefix string
	warm   bench.Store // index cache on
	cold   bench.Store // default options: index cache off
	toks   []*tokenstore.Token
	rule2  []*tokenstore.Token // records with only an access token
	next   int                 // next user number for new tokens
	n      int                 // tokens in the store
	wrap   func(casstore.Backend) casstore.Backend
}

// newRunner opens the runner's stores on prefix; wrap, when set, wraps
// the backend of every store of the runner (bench.Shared: one wrapper for
// all of them, as one cloud for several processes).
func newRunner(ctx context.Context, t *bench.Target, prefix string, wrap func(casstore.Backend) casstore.Backend) (*runner, error) {
	r := &runner{ctx: ctx, t: t, prefix: prefix, wrap: wrap}
	var err error
	if r.warm, err = r.fresh(true); err != nil {
		return nil, fmt.Errorf("open %s: %w", prefix, err)
	}
	if r.cold, err = r.fresh(false); err != nil {
		return nil, fmt.Errorf("open %s: %w", prefix, err)
	}
	return r, nil
}

// fresh opens a new Store on the runner's prefix, as a process that has
// never read it.
func (r *runner) fresh(cache bool) (bench.Store, error) {
	return r.t.Open(r.ctx, r.prefix, bench.StoreOptions{IndexCache: cache, Wrap: r.wrap})
}

// buckets is the number of index buckets the runner's stores created.
func (r *runner) buckets() int { return r.t.Layout(r.prefix).Buckets() }

// timed runs fn with a tracked context and returns its duration and what
// it sent.
func (r *runner) timed(fn func(ctx context.Context) error) (Sample, error) {
	ctx, tally := bench.Track(r.ctx)
	m := r.buckets()
	start := time.Now()
	err := fn(ctx)
	d := time.Since(start)
	return Sample{D: d, U: tally.Usage(), M: m}, err
}

// addOp times fn as a sample of o with the budget that budget computes
// from the sample (a negative budget is not checked).
func (r *runner) addOp(o *Op, fn func(ctx context.Context) error, budget func(Sample) int) (Sample, bool) {
	s, err := r.timed(fn)
	if err != nil {
		o.fail(err)
		return s, false
	}
	b := -1
	if budget != nil {
		b = budget(s)
	}
	o.add(s, b)
	return s, true
}

func (r *runner) addRef(ref *Ref, fn func(ctx context.Context) error) {
	s, err := r.timed(fn)
	if err != nil {
		ref.Errors++
		return
	}
	ref.Samples = append(ref.Samples, s)
}

// interleave runs the functions in turn, starting with number i mod n, so
// that no side always goes first.
func interleave(i int, fns ...func()) {
	for k := range fns {
		fns[(i+k)%len(fns)]()
	}
}

func expectID(got *tokenstore.Token, err error, want string) error {
	if err != nil {
		return err
	}
	if got.ID != want {
		return fmt.Errorf("found token %q, want %q", got.ID, want)
	}
	return nil
}

// bucketsOf returns the distinct buckets that t's keys (its ID set) route
// to in a linear index of m buckets: K of the cost table.
func bucketsOf(t *tokenstore.Token, m int) int {
	var seen []int
	for _, k := range index.KeysOf(t) {
		if n := index.LinearBucket(index.Hash(k), m); !slices.Contains(seen, n) {
			seen = append(seen, n)
		}
	}
	return len(seen)
}

// bucketOf returns the bucket of the key query q looks up, in a linear
// index of m buckets.
func bucketOf(q *tokenstore.Token, m int) int {
	k, _ := index.QueryKey(q)
	return index.LinearBucket(index.Hash(k), m)
}
