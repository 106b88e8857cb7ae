package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cloudtokens/cloudtokens/integration/bench"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// RepairResult is the time Repair takes on one store of N tokens.
type RepairResult struct {
	Backend  string
	N        int
	Buckets  int
	Healthy  RepairRun // a consistent store: Repair finds nothing to do
	Lost     RepairRun // every index bucket deleted: Repair rebuilds it
	LoadTime time.Duration
	Err      string
}

// RepairRun is one Repair.
type RepairRun struct {
	D       time.Duration
	Report  casstore.RepairReport
	U       Sample
	CheckOK bool
	Err     string
}

// purger deletes a document at once, so that its name can be created
// again (AWS: without a recovery window).
type purger interface {
	Purge(ctx context.Context, prefix, name string) error
}

// runRepair loads n tokens (16 saves in flight, default options) and
// times Repair twice with a new Store (as an operator's process): on the
// consistent store, and after every index bucket was deleted by hand.
func runRepair(ctx context.Context, t *bench.Target, n int) *RepairResult {
	res := &RepairResult{Backend: t.Name, N: n}
	prefix := bench.NewPrefix("repair")
	r, err := newRunner(ctx, t, prefix, nil)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	lr := r.loadScale(n, 16, 0, 0, 0, 1)
	res.LoadTime = lr.D
	if lr.Errors > 0 {
		res.Err = fmt.Sprintf("load: %d errors, first: %s", lr.Errors, lr.FirstErr)
		return res
	}
	defer func() {
		// A new Store: r's stores remember the buckets as they were
		// before the index was lost.
		s, err := r.fresh(false)
		if err == nil {
			err = s.DeleteTokens(context.WithoutCancel(ctx))
		}
		if err != nil && res.Err == "" {
			res.Err = "cleanup: " + err.Error()
		}
	}()
	res.Buckets = r.buckets()
	repair := func(run *RepairRun) {
		s, err := r.fresh(false)
		if err != nil {
			run.Err = err.Error()
			return
		}
		var rep casstore.RepairReport
		run.U, err = r.timed(func(ctx context.Context) error {
			var err error
			rep, err = s.Repair(ctx)
			return err
		})
		run.D, run.Report = run.U.D, rep
		if err != nil {
			run.Err = err.Error()
			return
		}
		chk, err := s.Check(ctx)
		if err != nil {
			run.Err = "Check after Repair: " + err.Error()
			return
		}
		run.CheckOK = chk.OK() && chk.Tokens == n
	}
	repair(&res.Healthy)

	// Lose the index: delete every bucket document.
	var wg sync.WaitGroup
	var mu sync.Mutex
	for b := range res.Buckets {
		wg.Go(func() {
			var err error
			if p, ok := t.Raw.(purger); ok {
				err = p.Purge(ctx, prefix, casstore.IndexName(b))
			} else {
				err = t.Raw.Delete(ctx, prefix, casstore.IndexName(b))
			}
			if err != nil {
				mu.Lock()
				res.Lost.Err = fmt.Sprintf("deleting index bucket %d: %v", b, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if res.Lost.Err == "" {
		repair(&res.Lost)
	}
	return res
}
