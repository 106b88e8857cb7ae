package main

import (
	"context"
	"fmt"

	"github.com/cloudtokens/cloudtokens/integration/bench"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// splitCost is the Backend calls of the splits and layout hints an
// operation made: a split reads the parent and looks for the child (2
// reads), creates the child and rewrites the parent (2 writes), and then
// writes the bucket count into bucket 0 (a read and a write): after every
// split on a backend without a daily version quota, where bucket 0 has
// the time for it, and at each power of two on AWS. The bound counts the
// hint for every split.
func splitCost(splits int) int {
	return 6 * splits
}

// insertBudget is the cost table's insert: the lookup's read of the
// bucket of the decisive key, a read of each other bucket the token's
// keys touch that the store does not hold, the create, one write per
// bucket (K), and the splits the writes triggered. A compare-and-swap
// that lost (another store wrote the bucket since this one knew it) adds
// the fresh read and the write again.
//
// A store learns the layout only from the buckets it reads, so what it
// knows may be out of date (another store split buckets since, or the
// buckets it read were written before the last splits): each key may
// then cost one more read (+K·R).
func insertBudget(t *tokenstore.Token) func(Sample) int {
	return func(s Sample) int {
		k := bucketsOf(t, s.M)
		return 2*k + 1 + k + splitCost(s.U.Splits) + 2*s.U.FailedCAS
	}
}

// deleteBudget: the read of the token, the delete, a read and a write of
// each bucket its keys touch (and again for a lost compare-and-swap).
func deleteBudget(t *tokenstore.Token) func(Sample) int {
	return func(s Sample) int {
		k := bucketsOf(t, s.M)
		return 2 + 3*k + splitCost(s.U.Splits) + 2*s.U.FailedCAS
	}
}

func fixed(n int) func(Sample) int { return func(Sample) int { return n } }

// rawDoc is a document that only the raw side writes, with its current
// version: a copy of a token, or of index bucket 0. The raw side never
// writes the store's own documents, so that the store's memory of their
// versions (and GCP etags) stays true.
type rawDoc struct {
	name, version string
	value         []byte
}

// rawCopy creates a raw copy of value and writes it once more (so that
// on GCP it has a previous version and a remembered etag, as the store's
// documents do).
//
// moto_server is not thread-safe and sometimes answers a request it has
// applied with HTTP 500, which the SDK retries; a copy that ends up in a
// state the raw side does not expect is abandoned and made again (twice
// at most).
func (r *runner) rawCopy(value []byte) (*rawDoc, error) {
	var err error
	for range 3 {
		d := &rawDoc{name: "raw-" + bench.RandomHex(8), value: value}
		if d.version, err = r.t.Raw.Create(r.ctx, r.prefix, d.name, value); err != nil {
			err = fmt.Errorf("creating a raw copy: %w", err)
			continue
		}
		if d.version, err = r.t.Raw.Write(r.ctx, r.prefix, d.name, value, d.version); err != nil {
			err = fmt.Errorf("writing a raw copy: %w", err)
			_ = r.t.Raw.Delete(r.ctx, r.prefix, d.name)
			continue
		}
		return d, nil
	}
	return nil, err
}

// forgetter is implemented by raw clients that remember secrets (GCP's
// etags): Forget makes the next write learn them again, as a new process
// would.
type forgetter interface {
	Forget(prefix, name string)
}

// suite measures every single-token operation, iters samples each,
// interleaved with the raw sequences they reduce to (withRaw), on the
// runner's store. scan says whether to measure the full scans (Tokens, a
// lookup by the access token of a refreshable record).
func (r *runner) suite(iters int, withRaw, scan bool) []*Op {
	ctx, raw, prefix := r.ctx, r.t.Raw, r.prefix
	var ops []*Op
	tok := func(i int) *tokenstore.Token { return r.toks[i%len(r.toks)] }
	fail := func(err error) []*Op {
		o := &Op{Name: "setup"}
		o.fail(err)
		return append(ops, o)
	}

	byID := &Op{Name: "FindTokenByID", BudgetExpr: "R"}
	if withRaw {
		byID.Refs = []*Ref{{Name: "Read"}}
	}
	for i := range iters {
		t := tok(i)
		sides := []func(){func() {
			r.addOp(byID, func(ctx context.Context) error {
				got, err := r.warm.FindTokenByID(ctx, t.ID)
				return expectID(got, err, t.ID)
			}, fixed(1))
		}}
		if withRaw {
			sides = append(sides, func() {
				r.addRef(byID.Refs[0], func(ctx context.Context) error {
					_, err := raw.Read(ctx, prefix, casstore.TokenName(t.ID))
					return err
				})
			})
		}
		interleave(i, sides...)
	}
	ops = append(ops, byID)

	rules := []struct {
		name  string
		query func(*tokenstore.Token) *tokenstore.Token
		toks  []*tokenstore.Token
	}{
		{"user", bench.UserQuery, r.toks},
		{"grant token", bench.GrantQuery, r.toks},
		{"refresh token", bench.RefreshQuery, r.toks},
		{"access token (rule 2 record)", bench.AccessQuery, r.rule2},
	}
	// The cold store learns the layout (untimed): its lookups below are
	// those of a process that has used the store before.
	if _, err := r.cold.FindToken(ctx, bench.UserQuery(tok(0))); err != nil {
		return fail(err)
	}
	for _, rule := range rules {
		if len(rule.toks) == 0 {
			continue
		}
		cold := &Op{Name: "FindToken by " + rule.name + ", cold", BudgetExpr: "2R (+R when its layout is out of date)"}
		warm := &Op{Name: "FindToken by " + rule.name + ", warm", BudgetExpr: "R"}
		if withRaw {
			cold.Refs = []*Ref{{Name: "Read index + Read token"}}
			warm.Refs = []*Ref{{Name: "Read"}}
		}
		for i := range iters {
			t := rule.toks[i%len(rule.toks)]
			q := rule.query(t)
			sides := []func(){func() {
				r.addOp(cold, func(ctx context.Context) error {
					got, err := r.cold.FindToken(ctx, q)
					return expectID(got, err, t.ID)
				}, fixed(3))
			}}
			if withRaw {
				sides = append(sides, func() {
					shard := casstore.IndexName(bucketOf(q, r.buckets()))
					r.addRef(cold.Refs[0], func(ctx context.Context) error {
						if _, err := raw.Read(ctx, prefix, shard); err != nil {
							return err
						}
						_, err := raw.Read(ctx, prefix, casstore.TokenName(t.ID))
						return err
					})
				})
			}
			interleave(i, sides...)
			// Warm: the store has looked this key up before (untimed).
			if _, err := r.warm.FindToken(ctx, q); err != nil {
				warm.fail(err)
				continue
			}
			sides = []func(){func() {
				r.addOp(warm, func(ctx context.Context) error {
					got, err := r.warm.FindToken(ctx, q)
					return expectID(got, err, t.ID)
				}, fixed(1))
			}}
			if withRaw {
				sides = append(sides, func() {
					r.addRef(warm.Refs[0], func(ctx context.Context) error {
						_, err := raw.Read(ctx, prefix, casstore.TokenName(t.ID))
						return err
					})
				})
			}
			interleave(i, sides...)
		}
		ops = append(ops, cold, warm)
	}

	// A lookup by a process that has never read the index: a new Store
	// per sample (opened untimed), which learns the layout from bucket 0.
	newStore := &Op{Name: "FindToken by user, new Store", BudgetExpr: "2R + R (its layout is stale)"}
	for i := range iters {
		t := tok(i)
		s, err := r.fresh(false)
		if err != nil {
			newStore.fail(err)
			continue
		}
		r.addOp(newStore, func(ctx context.Context) error {
			got, err := s.FindToken(ctx, bench.UserQuery(t))
			return expectID(got, err, t.ID)
		}, fixed(3))
	}
	ops = append(ops, newStore)

	if scan {
		// Before any refresh: moto_server's BatchGetSecretValue returns a
		// secret's old version after UpdateSecretVersionStage, which awssm
		// then reads again (real AWS does not).
		n := r.n
		access := &Op{Name: "FindToken by access token (refreshable record: scan)", BudgetExpr: "R + B·R + RM(N)"}
		tokens := &Op{Name: fmt.Sprintf("Tokens (N=%s)", commas(n)), BudgetExpr: "B·R + RM(N)"}
		for i := range 2 {
			t := tok(i)
			if i == 0 {
				r.addOp(access, func(ctx context.Context) error {
					got, err := r.warm.FindToken(ctx, bench.AccessQuery(t))
					return expectID(got, err, t.ID)
				}, func(s Sample) int { return 1 + s.M + 1 })
			}
			r.addOp(tokens, func(ctx context.Context) error {
				all, err := r.warm.Tokens(ctx)
				if err == nil && len(all) != n {
					err = fmt.Errorf("Tokens returned %d tokens, want %d", len(all), n)
				}
				return err
			}, func(s Sample) int { return s.M + 1 })
		}
		ops = append(ops, access, tokens)

		// Inserting a record with only an access token: its lookup (rule
		// 2) finds nothing in the index, and the engine then scans every
		// token for a refreshable record with that access token.
		rule2 := &Op{Name: "SaveToken new, a record with only an access token", BudgetExpr: "K·R + C + K·U + 2 RM, the scan (+ K·R, splits)"}
		for range 2 {
			u := bench.NewAccessOnlyToken()
			scan := func(s Sample) int { return insertBudget(u)(s) + 2 } // ReadMany of the buckets, of every token
			if _, ok := r.addOp(rule2, func(ctx context.Context) error { return r.warm.SaveToken(ctx, u) }, scan); ok {
				r.rule2 = append(r.rule2, u)
				r.n++
			}
		}
		ops = append(ops, rule2)
	}

	// A refresh as an application makes it: it has just read the token
	// (found it expired), refreshed it, and saves it. The store remembers
	// the version it read (the read is untimed). The raw side writes its
	// own copy of the token, given the version.
	refresh := &Op{Name: "SaveToken refresh (access token changes)", BudgetExpr: "U", IndexFree: true}
	// The same save by a store that has not read the token (another
	// process, a fresh Store): it must learn the version first.
	blind := &Op{Name: "SaveToken refresh, token not read before", BudgetExpr: "R + U", IndexFree: true}
	var copies []*rawDoc
	if withRaw {
		refresh.Refs = []*Ref{{Name: "Write (CAS)"}}
		blind.Refs = []*Ref{{Name: "Read + Write (CAS)"}}
		for i := range min(iters, len(r.toks)) {
			doc, _ := tokenstore.MarshalDocument(tok(i))
			c, err := r.rawCopy(doc)
			if err != nil {
				return fail(err)
			}
			copies = append(copies, c)
		}
	}
	// The two kinds of refresh work on different tokens, so that the warm
	// store's memory of its refreshed tokens (version; on GCP, etag) is
	// only ever outdated by its own writes.
	half := max(1, len(r.toks)/2)
	for i := range iters {
		k := (i % half) * 2 % len(r.toks)
		kb := min(k+1, len(r.toks)-1)
		sides := []func(){func() {
			if _, err := r.warm.FindTokenByID(ctx, r.toks[k].ID); err != nil { // untimed
				refresh.fail(err)
				return
			}
			u := bench.Refreshed(r.toks[k])
			if _, ok := r.addOp(refresh, func(ctx context.Context) error { return r.warm.SaveToken(ctx, u) }, fixed(1)); ok {
				r.toks[k] = u
			}
		}}
		if withRaw {
			c := copies[i%len(copies)]
			sides = append(sides, func() {
				doc, _ := tokenstore.MarshalDocument(bench.Refreshed(r.toks[k]))
				r.addRef(refresh.Refs[0], func(ctx context.Context) error {
					v, err := raw.Write(ctx, prefix, c.name, doc, c.version)
					if err == nil {
						c.version = v
					}
					return err
				})
			})
		}
		interleave(i, sides...)

		sides = []func(){func() {
			s, err := r.fresh(true) // untimed
			if err != nil {
				blind.fail(err)
				return
			}
			u := bench.Refreshed(r.toks[kb])
			if _, ok := r.addOp(blind, func(ctx context.Context) error { return s.SaveToken(ctx, u) }, fixed(2)); ok {
				r.toks[kb] = u
			}
		}}
		if withRaw {
			c := copies[(i+1)%len(copies)]
			sides = append(sides, func() {
				if f, ok := raw.(forgetter); ok {
					f.Forget(prefix, c.name) // a new process knows no etag
				}
				doc, _ := tokenstore.MarshalDocument(bench.Refreshed(r.toks[kb]))
				r.addRef(blind.Refs[0], func(ctx context.Context) error {
					d, err := raw.Read(ctx, prefix, c.name)
					if err != nil {
						return err
					}
					c.version, err = raw.Write(ctx, prefix, c.name, doc, d.Version)
					return err
				})
			})
		}
		interleave(i, sides...)
	}
	ops = append(ops, refresh, blind)

	create := &Op{Name: "SaveToken new", BudgetExpr: "K·R + C + K·U (+ K·R, splits)"}
	del := &Op{Name: "DeleteToken", BudgetExpr: "R + Del + K·(R + U) (+ K·R, splits)"}
	// The raw side makes the same requests as the store's insert without
	// splits: a read of an index bucket, the create, and K writes of the
	// index, on its own copy of bucket 0; the delete likewise.
	var rawIndex *rawDoc
	if withRaw {
		create.Refs = []*Ref{{Name: "Read + Create + K·Write (the same requests)"}, {Name: "Create"}}
		del.Refs = []*Ref{{Name: "Read + Delete + K·Write (the same requests)"}, {Name: "Delete"}}
		d, err := raw.Read(ctx, prefix, casstore.IndexName(0))
		if err != nil {
			return fail(fmt.Errorf("reading index bucket 0 to copy it: %w", err))
		}
		if rawIndex, err = r.rawCopy(d.Value); err != nil {
			return fail(err)
		}
	}
	for i := range iters {
		u := bench.NewToken(r.next)
		r.next++
		rawName, sameName := "raw-"+bench.RandomHex(8), "raw-"+bench.RandomHex(8)
		doc, _ := tokenstore.MarshalDocument(u)
		k := bucketsOf(u, r.buckets()) // the ID shares the bucket of the user name
		var saved bool
		sides := []func(){func() {
			_, saved = r.addOp(create, func(ctx context.Context) error { return r.warm.SaveToken(ctx, u) }, insertBudget(u))
		}}
		if withRaw {
			sides = append(sides, func() {
				r.addRef(create.Refs[0], func(ctx context.Context) error {
					if _, err := raw.Read(ctx, prefix, rawIndex.name); err != nil {
						return err
					}
					if _, err := raw.Create(ctx, prefix, sameName, doc); err != nil {
						return err
					}
					for range k {
						v, err := raw.Write(ctx, prefix, rawIndex.name, rawIndex.value, rawIndex.version)
						if err != nil {
							return err
						}
						rawIndex.version = v
					}
					return nil
				})
			}, func() {
				r.addRef(create.Refs[1], func(ctx context.Context) error { _, err := raw.Create(ctx, prefix, rawName, doc); return err })
			})
		}
		interleave(i, sides...)
		sides = []func(){func() {
			if saved {
				r.addOp(del, func(ctx context.Context) error { return r.warm.DeleteToken(ctx, u.ID) }, deleteBudget(u))
			}
		}}
		if withRaw {
			sides = append(sides, func() {
				r.addRef(del.Refs[0], func(ctx context.Context) error {
					if _, err := raw.Read(ctx, prefix, sameName); err != nil {
						return err
					}
					if err := raw.Delete(ctx, prefix, sameName); err != nil {
						return err
					}
					for range k {
						v, err := raw.Write(ctx, prefix, rawIndex.name, rawIndex.value, rawIndex.version)
						if err != nil {
							return err
						}
						rawIndex.version = v
					}
					return nil
				})
			}, func() {
				r.addRef(del.Refs[1], func(ctx context.Context) error { return raw.Delete(ctx, prefix, rawName) })
			})
		}
		interleave(i, sides...)
	}
	ops = append(ops, create, del)

	// The same writes with the default options (no index cache).
	createCold := &Op{Name: "SaveToken new, cache off", BudgetExpr: "K·R + C + K·U (+ K·R, splits)"}
	delCold := &Op{Name: "DeleteToken, cache off", BudgetExpr: "R + Del + K·(R + U) (+ K·R, splits)"}
	for range max(2, iters/5) {
		u := bench.NewToken(r.next)
		r.next++
		if _, ok := r.addOp(createCold, func(ctx context.Context) error { return r.cold.SaveToken(ctx, u) }, insertBudget(u)); ok {
			r.addOp(delCold, func(ctx context.Context) error { return r.cold.DeleteToken(ctx, u.ID) }, deleteBudget(u))
		}
	}
	ops = append(ops, createCold, delCold)

	for _, c := range copies {
		if err := raw.Delete(ctx, prefix, c.name); err != nil {
			refresh.fail(fmt.Errorf("deleting a raw copy: %w", err))
		}
	}
	if rawIndex != nil {
		if err := raw.Delete(ctx, prefix, rawIndex.name); err != nil {
			del.fail(fmt.Errorf("deleting the raw index copy: %w", err))
		}
	}
	return ops
}

// load saves tokens for users [from, to) one at a time and keeps them:
// the small store's setup. Every rule2Every-th token (0: none) is a
// record with only an access token.
func (r *runner) load(from, to, rule2Every int) error {
	for i := from; i < to; i++ {
		t := bench.NewToken(i)
		if rule2Every > 0 && i%rule2Every == rule2Every-1 {
			t = bench.NewAccessOnlyToken()
		}
		if err := r.warm.SaveToken(r.ctx, t); err != nil {
			return err
		}
		r.n++
		if t.UserName == "" {
			r.rule2 = append(r.rule2, t)
		} else {
			r.toks = append(r.toks, t)
		}
	}
	r.next = max(r.next, to)
	return nil
}

// deleteAll measures DeleteTokens of every token of the prefix.
func (r *runner) deleteAll() *Op {
	n := r.n
	op := &Op{Name: fmt.Sprintf("DeleteTokens (N=%s)", commas(n)), BudgetExpr: "B·R + List + N·Del + B·U"}
	r.addOp(op, func(ctx context.Context) error { return r.warm.DeleteTokens(ctx) }, func(s Sample) int { return 2*s.M + 1 + n })
	if all, err := r.warm.Tokens(r.ctx); err != nil || len(all) != 0 {
		op.fail(fmt.Errorf("after DeleteTokens: %d tokens left (%v)", len(all), err))
	}
	r.toks, r.rule2, r.n = nil, nil, 0
	return op
}
