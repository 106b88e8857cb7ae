package gcp_test

import (
	"os"
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
// second, enforced by the emulator): 16 goroutines of one process sign up
// users for 90 s, and the test logs the rate per 15 s and the buckets the
// index grew. A measurement for BENCHMARKS.md, run with
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
	const workers, run, slice = 16, 90 * time.Second, 15 * time.Second
	var next, done atomic.Int64
	deadline := time.Now().Add(run)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				i := int(next.Add(1))
				if err := s.SaveToken(ctx, bench.NewToken(i)); err != nil {
					t.Errorf("sign-up %d: %v", i, err)
					return
				}
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
	t.Logf("%d sign-ups in %v: %.1f a second; index: %d buckets", done.Load(), run, float64(done.Load())/run.Seconds(), rep.Buckets)
}
