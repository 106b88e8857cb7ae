package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/cloudtokens/cloudtokens/integration/bench"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore/casstoretest"
)

// DayResult is a simulated load under AWS's version quota.
type DayResult struct {
	Backend          string
	Inserts, Deletes int // per day
	MaxVersions      int
	MaxName          string
	Refused          int
	Tokens, Buckets  int
	CheckOK          bool
	Calls            int // Backend calls
	Requests         int
	D                time.Duration
	Err              string
}

// runDay runs two simulated days on the engine with default options over
// the target's backend under casstoretest.QuotaBackend (AWS Secrets
// Manager's 100 versions per secret in any 24 hours, on a simulated
// clock that the engine shares): on the first, inserts sign-ups spread
// evenly; on the second, inserts sign-ups and deletes deletions of random
// live tokens, interleaved. It reports the most versions any secret got
// within 24 hours. The engine is built with casstore.New on the adapter's
// backend, because the adapters do not take a clock.
func runDay(ctx context.Context, t *bench.Target, inserts, deletes int) *DayResult {
	res := &DayResult{Backend: t.Name, Inserts: inserts, Deletes: deletes}
	start := time.Now()
	defer func() { res.D = time.Since(start) }()
	clock := casstoretest.NewManualClock(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	var q *casstoretest.QuotaBackend
	prefix := bench.NewPrefix("day")
	s, err := t.OpenEngine(ctx, prefix, bench.StoreOptions{Wrap: func(b casstore.Backend) casstore.Backend {
		q = casstoretest.NewQuotaBackend(b, clock.Now)
		return q
	}}, casstore.Options{Clock: clock.Now, Logger: bench.Logger()})
	if err != nil {
		res.Err = err.Error()
		return res
	}
	defer func() {
		if err := s.DeleteTokens(context.WithoutCancel(ctx)); err != nil && res.Err == "" {
			res.Err = "cleanup: " + err.Error()
		}
	}()
	ctx, tally := bench.Track(ctx)
	rng := rand.New(rand.NewPCG(1, 2))
	var live []*tokenstore.Token
	n := 0
	insert := func() error {
		tok := bench.NewToken(n)
		n++
		if err := s.SaveToken(ctx, tok); err != nil {
			return fmt.Errorf("insert %d at %s: %w", n, clock.Now().Format(time.TimeOnly), err)
		}
		live = append(live, tok)
		return nil
	}
	step := 24 * time.Hour / time.Duration(inserts)
	for range inserts {
		if err := insert(); err != nil {
			res.Err = err.Error()
			return res
		}
		clock.Advance(step)
	}
	// Day 2: the deletes are spread over the day between the inserts.
	for i := range inserts {
		if err := insert(); err != nil {
			res.Err = err.Error()
			return res
		}
		clock.Advance(step / 2)
		if i*deletes/inserts != (i+1)*deletes/inserts && len(live) > 0 {
			k := rng.IntN(len(live))
			if err := s.DeleteToken(ctx, live[k].ID); err != nil {
				res.Err = fmt.Sprintf("delete at %s: %v", clock.Now().Format(time.TimeOnly), err)
				return res
			}
			live[k] = live[len(live)-1]
			live = live[:len(live)-1]
		}
		clock.Advance(step - step/2)
		if ctx.Err() != nil {
			res.Err = ctx.Err().Error()
			return res
		}
	}
	res.MaxVersions, res.MaxName = q.MaxVersions()
	res.Refused = q.Refused()
	u := tally.Usage()
	res.Calls, res.Requests = u.NBackend(), u.NRequests()
	rep, err := s.Check(ctx)
	if err != nil {
		res.Err = "Check: " + err.Error()
		return res
	}
	res.Tokens, res.Buckets, res.CheckOK = rep.Tokens, rep.Buckets, rep.OK() && rep.Tokens == len(live)
	return res
}
