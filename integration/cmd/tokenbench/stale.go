package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cloudtokens/cloudtokens/gcpsm/gcpsmtest"
	"github.com/cloudtokens/cloudtokens/integration/bench"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore/casstoretest"
)

// StaleResult compares operations of two stores (two processes) on one
// prefix with and without stale reads.
type StaleResult struct {
	Backend    string
	How        string // how the reads are made stale
	Window     time.Duration
	Iterations int
	Ops        []*StaleOp
	StaleReads int // reads answered from an older state (StaleBackend only; -1: not known)
	D          time.Duration
	Err        string
}

// StaleOp is one operation of the scenario, measured both ways.
type StaleOp struct {
	Name        string
	Base, Stale *Op
	// Old counts the lookups, with staleness, that answered an older
	// value than the other process had just saved, or not found for a
	// token it had just inserted (allowed: that process has seen nothing
	// newer), out of Stale's samples.
	Old, BaseOld int
}

// Names of the scenario's operations.
const (
	staleSaveA   = "A: SaveToken refresh (B saved the token last)"
	staleFindB   = "B: FindToken by user, right after A's refresh"
	staleSaveB   = "B: SaveToken refresh, right after A's refresh"
	staleReadOwn = "B: FindTokenByID, right after its own refresh"
	staleInsert  = "A: SaveToken new"
	staleFindNew = "B: FindToken by user, right after A's insert"
)

var staleOrder = []string{staleSaveA, staleFindB, staleSaveB, staleReadOwn, staleInsert, staleFindNew}

// runStale runs the scenario twice on t, on a fresh prefix each: with
// the backend as it is, then with every read of both stores served
// stale for window after each write. On the GCP target the staleness
// comes from a second emulator started with
// gcpsmtest.WithEventualConsistency(window) (alias reads, GetSecret and
// lists lag; access by version number and conditional writes do not);
// elsewhere from casstoretest.StaleBackend shared by both stores.
func runStale(ctx context.Context, t *bench.Target, window time.Duration, iters int) *StaleResult {
	res := &StaleResult{Backend: t.Name, Window: window, Iterations: iters, StaleReads: -1}
	start := time.Now()
	defer func() { res.D = time.Since(start) }()
	base, err := staleScenario(ctx, t, bench.StoreOptions{}, window, iters)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	st := t
	opts := bench.StoreOptions{}
	var sb *casstoretest.StaleBackend
	if t.Name == "gcp" {
		res.How = fmt.Sprintf("gcpsmtest.WithEventualConsistency(%v)", window)
		if st, err = bench.NewGCP(ctx, gcpsmtest.WithEventualConsistency(window)); err != nil {
			res.Err = err.Error()
			return res
		}
		defer st.Close()
	} else {
		res.How = fmt.Sprintf("casstoretest.StaleBackend (window %v, every read within it stale)", window)
		opts.Wrap = bench.Shared(func(b casstore.Backend) casstore.Backend {
			sb = casstoretest.NewStaleBackend(b, window, 1)
			return sb
		})
	}
	stale, err := staleScenario(ctx, st, opts, window, iters)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	if sb != nil {
		res.StaleReads = sb.StaleReads()
	}
	for _, name := range staleOrder {
		b, s := base[name], stale[name]
		res.Ops = append(res.Ops, &StaleOp{Name: name, Base: b.op, Stale: s.op, Old: s.old, BaseOld: b.old})
	}
	return res
}

type staleMeasure struct {
	op  *Op
	old int
}

// staleScenario: store A seeds tokens and lets the window pass; then, per
// iteration, on one token: A refreshes it (B saved it last, in the
// previous round of that token), B finds it by user at once, B refreshes
// it at once, B reads it by ID at once; and A inserts a new user, which
// B looks up at once.
func staleScenario(ctx context.Context, t *bench.Target, opts bench.StoreOptions, window time.Duration, iters int) (map[string]*staleMeasure, error) {
	prefix := bench.NewPrefix("stale")
	a, err := t.Open(ctx, prefix, opts)
	if err != nil {
		return nil, err
	}
	b, err := t.Open(ctx, prefix, opts)
	if err != nil {
		return nil, err
	}
	defer func() { _ = a.DeleteTokens(context.WithoutCancel(ctx)) }()
	r := &runner{ctx: ctx, t: t, prefix: prefix}
	const seeded = 4
	toks := make([]*tokenstore.Token, seeded)
	for i := range toks {
		toks[i] = bench.NewToken(i)
		if err := a.SaveToken(ctx, toks[i]); err != nil {
			return nil, fmt.Errorf("seeding: %w", err)
		}
		// B has read and saved each token once, as a process in use has.
		u := bench.Refreshed(toks[i])
		if err := b.SaveToken(ctx, u); err != nil {
			return nil, fmt.Errorf("seeding: %w", err)
		}
		toks[i] = u
	}
	time.Sleep(window + 100*time.Millisecond) // a settled start
	m := map[string]*staleMeasure{}
	for _, name := range staleOrder {
		m[name] = &staleMeasure{op: &Op{Name: name}}
	}
	for i := range iters {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		k := i % seeded
		byA := bench.Refreshed(toks[k])
		if _, ok := r.addOp(m[staleSaveA].op, func(ctx context.Context) error { return a.SaveToken(ctx, byA) }, nil); ok {
			toks[k] = byA
		}
		var got *tokenstore.Token
		if _, ok := r.addOp(m[staleFindB].op, func(ctx context.Context) error {
			var err error
			got, err = b.FindToken(ctx, bench.UserQuery(byA))
			return err
		}, nil); ok && got.AccessToken != toks[k].AccessToken {
			m[staleFindB].old++
		}
		byB := bench.Refreshed(toks[k])
		if _, ok := r.addOp(m[staleSaveB].op, func(ctx context.Context) error { return b.SaveToken(ctx, byB) }, nil); ok {
			toks[k] = byB
		}
		if _, ok := r.addOp(m[staleReadOwn].op, func(ctx context.Context) error {
			var err error
			got, err = b.FindTokenByID(ctx, byB.ID)
			return err
		}, nil); ok && got.AccessToken != toks[k].AccessToken {
			m[staleReadOwn].old++
		}
		nt := bench.NewToken(1000 + i)
		if _, ok := r.addOp(m[staleInsert].op, func(ctx context.Context) error { return a.SaveToken(ctx, nt) }, nil); !ok {
			continue
		}
		op := m[staleFindNew].op
		s, err := r.timed(func(ctx context.Context) error {
			got, err := b.FindToken(ctx, bench.UserQuery(nt))
			if err == nil && got.ID != nt.ID {
				err = fmt.Errorf("found %s, want %s", got.ID, nt.ID)
			}
			return err
		})
		switch {
		case errors.Is(err, tokenstore.ErrNotFound):
			m[staleFindNew].old++
			op.add(s, -1)
		case err != nil:
			op.fail(err)
		default:
			op.add(s, -1)
		}
	}
	return m, nil
}
