package gcp_test

import (
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/gcpsm"
	"github.com/cloudtokens/cloudtokens/gcpsm/gcpsmtest"
	"github.com/cloudtokens/cloudtokens/integration/bench"
)

// TestSignUpRateUnderSecretWriteRate measures the sign-ups a new index
// takes under Secret Manager's documented write rate per secret (2 a
// second, enforced by the emulator): 16 goroutines of one process
// (CLOUDTOKENS_MEASURE_WORKERS to change it) sign up users for 90 s, and
// the test logs the rate per 15 s, the buckets the index grew, the
// sign-up latency, the writes refused with RESOURCE_EXHAUSTED and the
// calls made. A measurement for BENCHMARKS.md, run with
// CLOUDTOKENS_MEASURE=1; every sign-up must succeed.
func TestSignUpRateUnderSecretWriteRate(t *testing.T) {
	if os.Getenv("CLOUDTOKENS_MEASURE") == "" {
		t.Skip("a 90 s measurement: set CLOUDTOKENS_MEASURE=1")
	}
	ctx := t.Context()
	srv := gcpsmtest.Start(t, gcpsmtest.WithSecretWriteRate(gcpsmtest.DocumentedSecretWriteRate()))
	client := newClient(t, srv.Addr())
	s, err := gcpsm.New(ctx, client, project, "rate")
	if err != nil {
		t.Fatal(err)
	}
	const run, slice = 90 * time.Second, 15 * time.Second
	workers := 16
	if n, err := strconv.Atoi(os.Getenv("CLOUDTOKENS_MEASURE_WORKERS")); err == nil && n > 0 {
		workers = n
	}
	var next, done atomic.Int64
	var mu sync.Mutex
	var took []time.Duration
	deadline := time.Now().Add(run)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				i := int(next.Add(1))
				start := time.Now()
				if err := s.SaveToken(ctx, bench.NewToken(i)); err != nil {
					t.Errorf("sign-up %d: %v", i, err)
					return
				}
				mu.Lock()
				took = append(took, time.Since(start))
				mu.Unlock()
				done.Add(1)
			}
		})
	}
	var last int64
	for at := slice; at <= run; at += slice {
		time.Sleep(slice)
		n := done.Load()
		t.Logf("%3.0f s: %5d sign-ups, %.1f a second in the last %v", at.Seconds(), n, float64(n-last)/slice.Seconds(), slice)
		last = n
	}
	wg.Wait()
	rep, err := s.Check(ctx)
	if err != nil || !rep.OK() || rep.Tokens != int(done.Load()) {
		t.Fatalf("Check: %v (%v), want %d tokens", rep, err, done.Load())
	}
	slices.Sort(took)
	t.Logf("%d workers: %d sign-ups in %v: %.1f a second; index: %d buckets; sign-up p50 %v, p90 %v; %d writes refused with RESOURCE_EXHAUSTED; calls %v",
		workers, done.Load(), run, float64(done.Load())/run.Seconds(), rep.Buckets,
		took[len(took)/2].Round(time.Millisecond), took[len(took)*9/10].Round(time.Millisecond), srv.Throttled(), srv.Calls())
}
