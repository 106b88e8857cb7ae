package gcp_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/gcpsm"
	"github.com/cloudtokens/cloudtokens/gcpsm/gcpsmtest"
	"github.com/cloudtokens/cloudtokens/integration/bench"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// growthTokens is the number of tokens TestGrowsToManyTokens saves.
const growthTokens = 5000

// TestGrowsToManyTokens saves 5,000 tokens of the Zoho shape (user name,
// client, grant, refresh and access token) with 64 goroutines into a store
// with the default options, on an emulator that enforces Secret Manager's
// documented write rate per secret (2 a second, 120 a minute): the index
// starts as one bucket and grows by itself, fast enough that no write
// fails. Then nothing is lost or duplicated: Tokens lists every token
// exactly once, another Store (a fresh process) finds every one by user
// name, and Check is clean.
func TestGrowsToManyTokens(t *testing.T) {
	if testing.Short() {
		t.Skip("5,000 tokens: skipped with -short")
	}
	t.Parallel() // it waits on the write rate most of the time: overlap it with TestStressGrowth
	ctx := t.Context()
	srv := gcpsmtest.Start(t, gcpsmtest.WithSecretWriteRate(gcpsmtest.DocumentedSecretWriteRate()))
	client := newClient(t, srv.Addr())
	const prefix = "growth"
	s, err := gcpsm.New(ctx, client, project, prefix)
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	toks := make([]*tokenstore.Token, growthTokens)
	const workers = 64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < growthTokens; i += workers {
				tok := bench.NewToken(i)
				if err := s.SaveToken(ctx, tok); err != nil {
					errs <- fmt.Errorf("token %d: %w", i, err)
					return
				}
				toks[i] = tok
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Another store, as a process that has never seen the index.
	other, err := gcpsm.New(ctx, client, project, prefix)
	if err != nil {
		t.Fatal(err)
	}
	all, err := other.Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]int{}
	for _, tok := range all {
		listed[tok.ID]++
	}
	for i, tok := range toks {
		if n := listed[tok.ID]; n != 1 {
			t.Errorf("token %d (%s) is listed %d times, want once", i, tok.ID, n)
		}
	}
	if len(all) != growthTokens {
		t.Errorf("Tokens lists %d tokens, want %d", len(all), growthTokens)
	}

	var mu sync.Mutex
	lost := 0
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				got, err := other.FindToken(ctx, bench.UserQuery(toks[i]))
				if err != nil || got.ID != toks[i].ID || got.RefreshToken != toks[i].RefreshToken {
					mu.Lock()
					if lost++; lost <= 10 {
						t.Errorf("FindToken by user of token %d (%s): %v", i, toks[i].ID, err)
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range toks {
		next <- i
	}
	close(next)
	wg.Wait()

	rep, err := other.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Tokens != growthTokens {
		t.Errorf("Check: %d tokens (want %d), OK=%v: %s", rep.Tokens, growthTokens, rep.OK(), rep)
	}
	largest := 0
	for _, sz := range rep.ShardSizes {
		largest = max(largest, sz)
	}
	t.Logf("%d tokens, %d lost; index: %d buckets (%s layout), the largest %d bytes; %s", len(all), lost, rep.Buckets, rep.Layout, largest, time.Since(start).Round(time.Second))
	if rep.Buckets < 2 {
		t.Errorf("the index did not grow: %d bucket", rep.Buckets)
	}
}
