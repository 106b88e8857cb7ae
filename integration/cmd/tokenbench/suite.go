package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cloudtokens/cloudtokens/integration/bench"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/index"
)

// Op is the measurement of one store operation: its samples, the budget
// of each sample in requests, and the raw SDK sequences it was
// interleaved with.
type Op struct {
	Name       string
	BudgetExpr string // in Backend calls: "R", "R + U", ...
	Budgets    []int  // per sample, in requests
	Samples    Samples
	Refs       []*Ref
	Errors     int
	FirstErr   string
	// WritesOnly, when set, names what every sample may write; Strays
	// counts the samples that wrote anything else.
	WritesOnly string
	Strays     int
}

// Ref is a raw SDK sequence timed against an operation.
type Ref struct {
	Name    string
	Samples Samples
	Errors  int
}

// Over returns how many samples made more requests than their budget,
// not counting SDK retries, and how many more exceeded it only by SDK
// retries.
func (o *Op) Over() (over, byRetries int) {
	for i, s := range o.Samples {
		switch {
		case i >= len(o.Budgets) || s.Calls.Total() <= o.Budgets[i]:
		case s.Calls.Total()-s.Retries > o.Budgets[i]:
			over++
		default:
			byRetries++
		}
	}
	return over, byRetries
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

// runner runs operations on one store prefix of a target.
type runner struct {
	ctx    context.Context
	t      *bench.Target
	prefix string
	shards int
	warm   bench.Store // index cache on
	cold   bench.Store // index cache off: every lookup reads the index
	toks   []*tokenstore.Token
	next   int // next user number for new tokens
}

func (r *runner) costs() (R, C, U, D int) {
	c := r.t.Costs
	return c.Read, c.Create, c.Update, c.Delete
}

// timed runs fn and returns its duration and the requests it made. The
// runner's operations run one at a time, so the counter's difference is
// theirs alone.
func (r *runner) timed(fn func() error) (Sample, error) {
	before, wbefore, rbefore := r.t.Calls.Snapshot(), r.t.Calls.Writes(), r.t.Calls.Retries()
	start := time.Now()
	err := fn()
	d := time.Since(start)
	return Sample{D: d, Calls: r.t.Calls.Snapshot().Sub(before), Writes: r.t.Calls.Writes().Sub(wbefore), Retries: r.t.Calls.Retries() - rbefore}, err
}

// interleave runs the functions in turn, starting with number i mod n, so
// that no side always goes first.
func interleave(i int, fns ...func()) {
	for k := range fns {
		fns[(i+k)%len(fns)]()
	}
}

func (r *runner) addOp(o *Op, fn func() error, budget int) {
	s, err := r.timed(fn)
	if err != nil {
		o.fail(err)
		return
	}
	o.Samples = append(o.Samples, s)
	o.Budgets = append(o.Budgets, budget)
}

func (r *runner) addRef(ref *Ref, fn func() error) {
	s, err := r.timed(fn)
	if err != nil {
		ref.Errors++
		return
	}
	ref.Samples = append(ref.Samples, s)
}

// rawDoc is a document the raw side writes, with its current version.
type rawDoc struct {
	name, version string
	value         []byte
}

// copyIndex creates a copy of index shard 0 under another name, for raw
// sequences that write an index document of the same size.
func (r *runner) copyIndex(ctx context.Context) (*rawDoc, error) {
	d, err := r.t.Raw.Read(ctx, r.prefix, casstore.IndexName(0))
	if err != nil {
		return nil, fmt.Errorf("reading the index to copy it: %w", err)
	}
	c := &rawDoc{name: "raw-index-" + bench.RandomHex(8), value: d.Value}
	if c.version, err = r.t.Raw.Create(ctx, r.prefix, c.name, c.value); err != nil {
		return nil, fmt.Errorf("creating the raw index copy: %w", err)
	}
	return c, nil
}

// insertWrites is the number of index writes the engine makes to insert
// t (whose ID is set): one per shard its keys route to, plus one when its
// ID key shares the shard of its decisive key (the one its lookup rule
// uses) while other keys route elsewhere: that shard is written first
// without the ID key and last with it, so that a record that loses a
// race is never listed.
func insertWrites(t *tokenstore.Token, shards int) int {
	keys := index.KeysOf(t)
	k := shardsOf(keys, shards)
	if k == 1 {
		return 1
	}
	decisive := keys[1]
	if q, ok := index.QueryKey(t); ok && slices.Contains(keys, q) {
		decisive = q
	}
	if index.FixedRoute(decisive, shards) == index.FixedRoute(keys[0], shards) {
		return k + 1
	}
	return k
}

func shardsOf(keys []index.Key, shards int) int {
	seen := map[int]bool{}
	for _, k := range keys {
		seen[index.FixedRoute(k, shards)] = true
	}
	return len(seen)
}

// writesOnly reports whether every resource written is document doc
// (its name ends in doc, or contains doc followed by "/").
func writesOnly(writes bench.Calls, doc string) bool {
	for name := range writes {
		if !strings.HasSuffix(name, doc) && !strings.Contains(name, doc+"/") {
			return false
		}
	}
	return true
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

// load saves tokens for users [from, to) with workers saves in flight
// and appends them (with their IDs) to r.toks.
func (r *runner) load(from, to, workers int) (time.Duration, error) {
	toks := make([]*tokenstore.Token, to-from)
	errs := make([]error, to-from)
	sem := make(chan struct{}, workers)
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		for i := range toks {
			sem <- struct{}{}
			go func() {
				defer func() { <-sem }()
				t := bench.NewToken(from + i)
				if err := r.warm.SaveToken(r.ctx, t); err != nil {
					errs[i] = err
					return
				}
				toks[i] = t
			}()
		}
		for range workers {
			sem <- struct{}{}
		}
	}()
	<-done
	d := time.Since(start)
	r.next = max(r.next, to)
	var first error
	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			first = cmp.Or(first, err)
			continue
		}
		r.toks = append(r.toks, toks[i])
	}
	if failed > 0 {
		return d, fmt.Errorf("%d of %d saves failed (the store now holds %d tokens); first error: %w", failed, to-from, len(r.toks), first)
	}
	return d, nil
}

// suite measures every single-token operation, iters samples each (scans
// scanIters), interleaved with the raw sequences they reduce to.
func (r *runner) suite(iters, scanIters int) []*Op {
	ctx, raw, prefix := r.ctx, r.t.Raw, r.prefix
	R, C, U, D := r.costs()
	var ops []*Op
	tok := func(i int) *tokenstore.Token { return r.toks[i%len(r.toks)] }

	byID := &Op{Name: "FindTokenByID", BudgetExpr: "R", Refs: []*Ref{{Name: "Read"}}}
	for i := range iters {
		t := tok(i)
		interleave(i,
			func() {
				r.addOp(byID, func() error { got, err := r.warm.FindTokenByID(ctx, t.ID); return expectID(got, err, t.ID) }, R)
			},
			func() {
				r.addRef(byID.Refs[0], func() error { _, err := raw.Read(ctx, prefix, casstore.TokenName(t.ID)); return err })
			})
	}
	ops = append(ops, byID)

	rules := []struct {
		name  string
		query func(*tokenstore.Token) *tokenstore.Token
	}{
		{"user", bench.UserQuery},
		{"grant token", bench.GrantQuery},
		{"refresh token", bench.RefreshQuery},
	}
	for _, rule := range rules {
		cold := &Op{Name: "FindToken by " + rule.name + ", cold", BudgetExpr: "2R", Refs: []*Ref{{Name: "Read index + Read token"}}}
		warm := &Op{Name: "FindToken by " + rule.name + ", warm", BudgetExpr: "R", Refs: []*Ref{{Name: "Read"}}}
		// Prime the warm store's cache of every shard.
		if _, err := r.warm.Tokens(ctx); err != nil {
			warm.fail(err)
		}
		for i := range iters {
			t := tok(i)
			q := rule.query(t)
			key, _ := index.QueryKey(q)
			shard := casstore.IndexName(index.FixedRoute(key, r.shards))
			interleave(i,
				func() {
					r.addOp(cold, func() error { got, err := r.cold.FindToken(ctx, q); return expectID(got, err, t.ID) }, 2*R)
				},
				func() {
					r.addRef(cold.Refs[0], func() error {
						if _, err := raw.Read(ctx, prefix, shard); err != nil {
							return err
						}
						_, err := raw.Read(ctx, prefix, casstore.TokenName(t.ID))
						return err
					})
				})
			interleave(i,
				func() {
					r.addOp(warm, func() error { got, err := r.warm.FindToken(ctx, q); return expectID(got, err, t.ID) }, R)
				},
				func() {
					r.addRef(warm.Refs[0], func() error { _, err := raw.Read(ctx, prefix, casstore.TokenName(t.ID)); return err })
				})
		}
		ops = append(ops, cold, warm)
	}

	// Scans, before any refresh: moto_server's BatchGetSecretValue returns
	// a secret's old version after UpdateSecretVersionStage, which awssm
	// then reads again with GetSecretValue (real AWS does not).
	n := len(r.toks)
	scanBudget := r.shards*R + r.t.Costs.ReadMany(n)
	access := &Op{Name: "FindToken by access token (scan)", BudgetExpr: "S·R + RM(N)"}
	tokens := &Op{Name: fmt.Sprintf("Tokens (N=%d)", n), BudgetExpr: "S·R + RM(N)"}
	for i := range scanIters {
		t := tok(i)
		if i < max(1, scanIters/2) { // the scan costs what Tokens costs: fewer samples
			r.addOp(access, func() error { got, err := r.warm.FindToken(ctx, bench.AccessQuery(t)); return expectID(got, err, t.ID) }, scanBudget)
		}
		r.addOp(tokens, func() error {
			all, err := r.warm.Tokens(ctx)
			if err == nil && len(all) != n {
				err = fmt.Errorf("Tokens returned %d tokens, want %d", len(all), n)
			}
			return err
		}, scanBudget)
	}
	ops = append(ops, access, tokens)

	// A refresh as an application makes it: it has just read the token
	// (found it expired), refreshed it, and saves it. The store remembers
	// the version it read; the raw side is given the version the same way.
	// Both reads are untimed.
	refresh := &Op{Name: "SaveToken refresh (access token changes)", BudgetExpr: "U", WritesOnly: "the token's secret", Refs: []*Ref{{Name: "Write (CAS)"}}}
	// The same save by a store that has not read the token (another
	// process, a fresh Store): it must learn the version first.
	blind := &Op{Name: "SaveToken refresh, token not read before", BudgetExpr: "R + U", WritesOnly: "the token's secret", Refs: []*Ref{{Name: "Read + Write (CAS)"}}}
	storeSave := func(o *Op, k int, store func() (bench.Store, error), budget int) {
		s, err := store()
		if err != nil {
			o.fail(err)
			return
		}
		u := bench.Refreshed(r.toks[k])
		n := len(o.Samples)
		r.addOp(o, func() error { return s.SaveToken(ctx, u) }, budget)
		if len(o.Samples) > n {
			if !writesOnly(o.Samples[n].Writes, casstore.TokenName(u.ID)) {
				o.Strays++
			}
			r.toks[k] = u
		}
	}
	for i := range iters {
		k := i % len(r.toks)
		interleave(i,
			func() {
				storeSave(refresh, k, func() (bench.Store, error) {
					_, err := r.warm.FindTokenByID(ctx, r.toks[k].ID) // untimed: the caller has just read it
					return r.warm, err
				}, U)
			},
			func() {
				name := casstore.TokenName(r.toks[k].ID)
				d, err := raw.Read(ctx, prefix, name) // untimed: the caller has the version
				if err != nil {
					refresh.Refs[0].Errors++
					return
				}
				u := bench.Refreshed(r.toks[k])
				doc, _ := tokenstore.MarshalDocument(u)
				r.addRef(refresh.Refs[0], func() error { _, err := raw.Write(ctx, prefix, name, doc, d.Version); return err })
				r.toks[k] = u
			})
		interleave(i,
			func() {
				storeSave(blind, k, func() (bench.Store, error) {
					return r.t.Open(ctx, prefix, bench.StoreOptions{IndexShards: r.shards, IndexCache: true}) // untimed
				}, R+U)
			},
			func() {
				name := casstore.TokenName(r.toks[k].ID)
				u := bench.Refreshed(r.toks[k])
				doc, _ := tokenstore.MarshalDocument(u)
				r.addRef(blind.Refs[0], func() error {
					d, err := raw.Read(ctx, prefix, name)
					if err != nil {
						return err
					}
					_, err = raw.Write(ctx, prefix, name, doc, d.Version)
					return err
				})
				r.toks[k] = u
			})
	}
	ops = append(ops, refresh, blind)

	create := &Op{Name: "SaveToken new", BudgetExpr: "R + C + W·U", Refs: []*Ref{{Name: "Create"}}}
	del := &Op{Name: "DeleteToken", BudgetExpr: "R + Del + K·U", Refs: []*Ref{{Name: "Delete"}}}
	// With one shard (W = K = 1) the raw side can also make exactly the
	// requests of the store: an insert is the lookup's Read of the index,
	// a Create, and a Write of the index with the version it read; a
	// delete is a Read of the token, a Delete, and a Write of the index
	// with the version the store knows. The raw side uses its own copy of
	// the index document, so the store's index is left alone.
	var rawIndex *rawDoc
	if r.shards == 1 {
		create.Refs = append(create.Refs, &Ref{Name: "Read + Create + Write (the same requests)"})
		del.Refs = append(del.Refs, &Ref{Name: "Read + Delete + Write (the same requests)"})
		var err error
		if rawIndex, err = r.copyIndex(ctx); err != nil {
			create.fail(err)
		}
	}
	for i := range iters {
		u := bench.NewToken(r.next)
		r.next++
		rawName := "raw-" + bench.RandomHex(8)
		sameName := "raw-" + bench.RandomHex(8)
		doc, _ := tokenstore.MarshalDocument(u)
		var saved bool
		sides := []func(){
			func() {
				s, err := r.timed(func() error { return r.warm.SaveToken(ctx, u) })
				if err != nil {
					create.fail(err)
					return
				}
				saved = true
				create.Samples = append(create.Samples, s)
				create.Budgets = append(create.Budgets, R+C+insertWrites(u, r.shards)*U)
			},
			func() {
				r.addRef(create.Refs[0], func() error { _, err := raw.Create(ctx, prefix, rawName, doc); return err })
			},
		}
		if rawIndex != nil {
			sides = append(sides, func() {
				r.addRef(create.Refs[1], func() error {
					d, err := raw.Read(ctx, prefix, rawIndex.name)
					if err != nil {
						return err
					}
					if _, err := raw.Create(ctx, prefix, sameName, doc); err != nil {
						return err
					}
					rawIndex.version, err = raw.Write(ctx, prefix, rawIndex.name, rawIndex.value, d.Version)
					return err
				})
			})
		}
		interleave(i, sides...)
		sides = []func(){
			func() {
				if saved {
					r.addOp(del, func() error { return r.warm.DeleteToken(ctx, u.ID) }, R+D+shardsOf(index.KeysOf(u), r.shards)*U)
				}
			},
			func() {
				r.addRef(del.Refs[0], func() error { return raw.Delete(ctx, prefix, rawName) })
			},
		}
		if rawIndex != nil {
			sides = append(sides, func() {
				r.addRef(del.Refs[1], func() error {
					if _, err := raw.Read(ctx, prefix, sameName); err != nil {
						return err
					}
					if err := raw.Delete(ctx, prefix, sameName); err != nil {
						return err
					}
					var err error
					rawIndex.version, err = raw.Write(ctx, prefix, rawIndex.name, rawIndex.value, rawIndex.version)
					return err
				})
			})
		}
		interleave(i, sides...)
	}
	if rawIndex != nil {
		if err := raw.Delete(ctx, prefix, rawIndex.name); err != nil {
			del.fail(fmt.Errorf("deleting the raw index copy: %w", err))
		}
	}
	ops = append(ops, create, del)

	// The same writes with the default options (no index cache): an index
	// update reads its shard first, except the insert's first one, which
	// starts from the shard its lookup has just read.
	createCold := &Op{Name: "SaveToken new, cache off", BudgetExpr: "K·R + C + W·U"}
	delCold := &Op{Name: "DeleteToken, cache off", BudgetExpr: "R + Del + K·(R + U)"}
	for range scanIters {
		u := bench.NewToken(r.next)
		r.next++
		k := shardsOf(index.KeysOf(u), r.shards)
		n := len(createCold.Samples)
		r.addOp(createCold, func() error { return r.cold.SaveToken(ctx, u) }, 0)
		if len(createCold.Samples) == n {
			continue
		}
		k = shardsOf(index.KeysOf(u), r.shards) // the ID is known now
		createCold.Budgets[n] = k*R + C + insertWrites(u, r.shards)*U
		r.addOp(delCold, func() error { return r.cold.DeleteToken(ctx, u.ID) }, R+D+k*(R+U))
	}
	ops = append(ops, createCold, delCold)
	return ops
}

// tokensAt measures Tokens at the current size.
func (r *runner) tokensAt(samples int) *Op {
	n := len(r.toks)
	op := &Op{Name: fmt.Sprintf("Tokens (N=%d)", n), BudgetExpr: "S·R + RM(N)"}
	budget := r.shards*r.t.Costs.Read + r.t.Costs.ReadMany(n)
	for range samples {
		r.addOp(op, func() error {
			all, err := r.warm.Tokens(r.ctx)
			if err == nil && len(all) != n {
				err = fmt.Errorf("Tokens returned %d tokens, want %d", len(all), n)
			}
			return err
		}, budget)
	}
	return op
}

// deleteAll measures DeleteTokens of every token of the prefix.
func (r *runner) deleteAll() *Op {
	n := len(r.toks)
	R, _, U, D := r.costs()
	used := map[int]bool{}
	for _, t := range r.toks {
		for _, k := range index.KeysOf(t) {
			used[index.FixedRoute(k, r.shards)] = true
		}
	}
	op := &Op{Name: fmt.Sprintf("DeleteTokens (N=%d)", n), BudgetExpr: "S·R + N·Del + S′·U"}
	r.addOp(op, func() error { return r.warm.DeleteTokens(r.ctx) }, r.shards*R+n*D+len(used)*U)
	if all, err := r.warm.Tokens(r.ctx); err != nil || len(all) != 0 {
		op.fail(fmt.Errorf("after DeleteTokens: %d tokens left (%v)", len(all), err))
	}
	r.toks = nil
	return op
}
