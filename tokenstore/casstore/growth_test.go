package casstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore/casstoretest"
)

// skipScale skips a scale test with -short and with the race detector
// (scripts/test.sh runs the TestScale tests again without it).
func skipScale(t *testing.T, what string) {
	t.Helper()
	if testing.Short() || raceDetector {
		t.Skipf("%s: a scale test, run without -race and -short (scripts/test.sh runs it)", what)
	}
}

// TestScaleDayOfLoadWithinAWSQuota runs two simulated days on a backend that
// enforces AWS Secrets Manager's 100 versions per secret per 24 hours,
// with default options: 10,000 sign-ups on the first day, then 10,000
// sign-ups and 10,000 deletions on the second. No write is refused, and no
// secret gets more than the quota in any 24 hours.
func TestScaleDayOfLoadWithinAWSQuota(t *testing.T) {
	skipScale(t, "a simulated day of 30,000 operations")
	ctx := t.Context()
	clock, q := underQuota(casstore.NewMemoryBackend())
	s := casstore.New(q, casstore.Options{Clock: clock.Now})
	const perDay = 10000
	step := 24 * time.Hour / perDay
	rng := rand.New(rand.NewPCG(1, 2))
	var live []*tokenstore.Token
	n := 0
	insert := func() {
		tok := zohoToken(n)
		n++
		if err := s.SaveToken(ctx, tok); err != nil {
			t.Fatalf("insert %d at %s: %v", n, clock.Now().Format(time.TimeOnly), err)
		}
		live = append(live, tok)
	}
	for range perDay {
		insert()
		clock.Advance(step)
	}
	day1 := len(live)
	for range perDay {
		insert()
		clock.Advance(step / 2)
		i := rng.IntN(len(live))
		if err := s.DeleteToken(ctx, live[i].ID); err != nil {
			t.Fatalf("delete at %s: %v", clock.Now().Format(time.TimeOnly), err)
		}
		live[i] = live[len(live)-1]
		live = live[:len(live)-1]
		clock.Advance(step / 2)
	}
	t.Logf("%d tokens after day 1, %d after day 2", day1, len(live))
	checkWithinQuota(t, s, q, len(live))
}

// TestScaleBurstWithinAWSQuota signs up a day's stated load, 10,000
// users, one after the other in the same minute on a new store with
// default options, under AWS Secrets Manager's 100 versions per secret in
// 24 hours: the index must grow ahead of the burst, so that its oldest
// buckets (split first in every round) do not add up versions past the
// quota. No write is refused; Check is clean.
func TestScaleBurstWithinAWSQuota(t *testing.T) {
	skipScale(t, "a burst of 10,000 sign-ups")
	ctx := t.Context()
	clock, q := underQuota(casstore.NewMemoryBackend())
	s := casstore.New(q, casstore.Options{Clock: clock.Now})
	const n = 10000
	for i := range n {
		if err := s.SaveToken(ctx, zohoToken(i)); err != nil {
			most, name := q.MaxVersions()
			t.Fatalf("sign-up %d: %v (most versions: %d, %s)", i, err, most, name)
		}
		clock.Advance(time.Minute / n)
	}
	checkWithinQuota(t, s, q, n)
}

// underQuota returns b under AWS's version quota on a simulated clock.
func underQuota(b casstore.Backend) (*casstoretest.ManualClock, *casstoretest.QuotaBackend) {
	clock := casstoretest.NewManualClock(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	return clock, casstoretest.NewQuotaBackend(b, clock.Now)
}

// checkWithinQuota checks that the store holds n tokens, Check is clean,
// and no secret got more versions than AWS's quota, and logs the index.
func checkWithinQuota(t *testing.T, s *casstore.Store, q *casstoretest.QuotaBackend, n int) {
	t.Helper()
	rep, err := s.Check(t.Context())
	if err != nil || !rep.OK() || rep.Tokens != n {
		t.Fatalf("Check: %v (%v), want %d tokens", rep.String(), err, n)
	}
	most, name := q.MaxVersions()
	t.Logf("%d buckets; most versions of one secret in 24 h: %d (%s); refused: %d", rep.Buckets, most, name, q.Refused())
	if most > casstoretest.AWSVersionsPerDay || q.Refused() > 0 {
		t.Fatalf("a secret got %d versions in 24 hours (%s), %d writes refused", most, name, q.Refused())
	}
}

// TestScaleBurstOfProcessesWithinAWSQuota: 4 Stores (processes) × 16
// goroutines sign up 250 users within the same minute on a new store,
// under AWS's version quota. Their compare-and-swaps of one bucket race,
// and on AWS a lost one still makes a version: each Store counts the
// versions it lost into the bucket's count. No write is refused.
func TestScaleBurstOfProcessesWithinAWSQuota(t *testing.T) {
	skipScale(t, "a burst of sign-ups from 4 processes")
	ctx := t.Context()
	// Reads and writes take a millisecond, as over a network, so that the
	// processes' compare-and-swaps race as they do on AWS.
	clock, q := underQuota(networked{casstore.NewMemoryBackend()})
	const n, procs, goroutines = 250, 4, 16
	var wg sync.WaitGroup
	errs := make(chan error, procs*goroutines)
	for p := range procs {
		s := casstore.New(q, casstore.Options{Clock: clock.Now})
		for g := range goroutines {
			wg.Go(func() {
				for i := p*goroutines + g; i < n; i += procs * goroutines {
					if err := s.SaveToken(ctx, zohoToken(i)); err != nil {
						errs <- fmt.Errorf("sign-up %d: %w", i, err)
						return
					}
					clock.Advance(time.Minute / n)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	most, name := q.MaxVersions()
	for err := range errs {
		t.Fatalf("%v (most versions: %d, %s)", err, most, name)
	}
	checkWithinQuota(t, casstore.New(q, casstore.Options{Clock: clock.Now}), q, n)
}

// TestScaleGrowsTo20000Tokens: 20,000 sign-ups, 16 at a time, with default
// options, under AWS's version quota at the stated load of 10,000 a day
// (a simulated clock: two days); the index grows from one bucket; no
// write is refused, every token is listed once and found by user.
func TestScaleGrowsTo20000Tokens(t *testing.T) {
	skipScale(t, "20,000 tokens")
	ctx := t.Context()
	clock, b := underQuota(casstore.NewMemoryBackend())
	s := casstore.New(b, casstore.Options{Clock: clock.Now})
	const n = 20000
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Go(func() {
			for i := g; i < n; i += 16 {
				if err := s.SaveToken(ctx, zohoToken(i)); err != nil {
					errs <- fmt.Errorf("token %d: %w", i, err)
					return
				}
				clock.Advance(24 * time.Hour / 10000)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if most, name := b.MaxVersions(); most > casstoretest.AWSVersionsPerDay || b.Refused() > 0 {
		t.Fatalf("a secret got %d versions in 24 hours (%s), %d writes refused", most, name, b.Refused())
	}
	all, err := casstore.New(b, casstore.Options{}).Tokens(ctx)
	if err != nil || len(all) != n {
		t.Fatalf("Tokens: %d (%v), want %d", len(all), err, n)
	}
	seen := map[string]bool{}
	for _, tok := range all {
		if seen[tok.UserName] {
			t.Fatalf("%s listed twice", tok.UserName)
		}
		seen[tok.UserName] = true
	}
	other := casstore.New(b, casstore.Options{})
	for i := 0; i < n; i += 97 {
		tok := zohoToken(i)
		if got, err := other.FindToken(ctx, &tokenstore.Token{UserName: tok.UserName}); err != nil || got.RefreshToken != tok.RefreshToken {
			t.Fatalf("FindToken(%s): %v %v", tok.UserName, got, err)
		}
	}
	rep, err := s.Check(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("Check: %v %v", rep, err)
	}
	largest := 0
	for _, sz := range rep.ShardSizes {
		largest = max(largest, sz)
	}
	most, name := b.MaxVersions()
	t.Logf("%d tokens in %d buckets, largest %d bytes; most versions of one secret in 24 h: %d (%s)", n, rep.Buckets, largest, most, name)
}

// networked is a MemoryBackend whose reads and updates take a millisecond.
type networked struct{ *casstore.MemoryBackend }

func (b networked) Read(ctx context.Context, name string) (casstore.Object, error) {
	time.Sleep(time.Millisecond)
	return b.MemoryBackend.Read(ctx, name)
}

func (b networked) Update(ctx context.Context, name string, value []byte, version string) (string, error) {
	time.Sleep(time.Millisecond)
	return b.MemoryBackend.Update(ctx, name, value, version)
}
