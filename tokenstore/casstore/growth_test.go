package casstore_test

import (
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
	clock := casstoretest.NewManualClock(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	q := casstoretest.NewQuotaBackend(casstore.NewMemoryBackend(), clock.Now)
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
	most, name := q.MaxVersions()
	rep, err := s.Check(ctx)
	if err != nil || !rep.OK() || rep.Tokens != len(live) {
		t.Fatalf("Check: %v (%v), want %d tokens", rep.String(), err, len(live))
	}
	t.Logf("%d tokens after day 1, %d after day 2; %d buckets; most versions of one secret in 24 h: %d (%s); refused: %d",
		day1, len(live), rep.Buckets, most, name, q.Refused())
	if most > casstoretest.AWSVersionsPerDay || q.Refused() > 0 {
		t.Fatalf("a secret got %d versions in 24 hours (%s), %d writes refused", most, name, q.Refused())
	}
}

// TestScaleGrowsTo20000Tokens: 20,000 tokens with default options; the index
// grows from one bucket; every token is listed once and found by user.
func TestScaleGrowsTo20000Tokens(t *testing.T) {
	skipScale(t, "20,000 tokens")
	ctx := t.Context()
	b := casstore.NewMemoryBackend()
	s := casstore.New(b, casstore.Options{})
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
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
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
	t.Logf("%d tokens in %d buckets, largest %d bytes", n, rep.Buckets, largest)
}
