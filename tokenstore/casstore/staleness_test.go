// Engine behaviour under stale reads and a recovery window, found by the
// staleness harness (integration/staleness) and reduced to MemoryBackend.

package casstore_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore/casstoretest"
)

// An index bucket that a split has just created is not visible for the
// lag: a lookup or save that the layout routes to it reads it again, and
// does not fail with "index bucket missing".
func TestNewBucketNotYetVisible(t *testing.T) {
	stale := casstoretest.NewStaleBackend(casstore.NewMemoryBackend(), 2*time.Second, 1)
	s := casstore.New(stale, casstore.Options{Quotas: &casstore.Quotas{VersionsPerDay: 100}})
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			for i := range 30 {
				if err := s.SaveToken(t.Context(), &tokenstore.Token{UserName: fmt.Sprintf("u%d-%d", g, i), AccessToken: "a"}); err != nil {
					t.Errorf("save %d-%d: %v", g, i, err)
				}
			}
		})
	}
	wg.Wait()
}

// Repair of a lost index adds the missing entries of all tokens together,
// one write per bucket, so an index grown by size (2,000 sign-ups over
// three weeks: 14 buckets of ~140 tokens) is rebuilt within AWS's quota of
// 100 versions a secret a day (casstoretest.QuotaBackend). Adding them
// token by token once wrote a bucket once per token it holds.
func TestScaleRepairOfALostIndexWithinAWSQuota(t *testing.T) {
	skipScale(t, "2,000 sign-ups")
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	advance := func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(d)
	}
	mem := casstore.NewMemoryBackend()
	q := casstoretest.NewQuotaBackend(mem, clock)
	s := casstore.New(q, casstore.Options{Clock: clock})
	const n = 2000
	for i := range n {
		advance(15 * time.Minute) // 2,000 sign-ups over three weeks
		if err := s.SaveToken(t.Context(), &tokenstore.Token{UserName: fmt.Sprintf("u%d", i), AccessToken: "a"}); err != nil {
			t.Fatalf("save %d: %v", i, err)
		}
	}
	advance(25 * time.Hour) // a new day: every secret has its whole quota
	names, err := mem.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	buckets := 0
	for _, name := range names {
		if strings.HasPrefix(name, "index-") {
			if err := mem.Delete(t.Context(), name); err != nil {
				t.Fatal(err)
			}
			buckets++
		}
	}
	rep, err := s.Repair(t.Context())
	maxV, name := q.MaxVersions()
	t.Logf("%d buckets lost; Repair: %s; most versions of one secret in 24 h: %d (%s)", buckets, rep, maxV, name)
	if err != nil {
		t.Fatalf("Repair of a lost index of %d tokens in %d buckets: %v", n, buckets, err)
	}
}

// A Store reads its own writes: right after SaveToken inserted a token,
// FindTokenByID, FindToken and Tokens through the same Store return it,
// also while the backend's reads still miss the new documents (a
// document created less than the lag ago reads as not found:
// StaleBackend, and AWS and Vault standbys likewise).
func TestReadYourOwnInsert(t *testing.T) {
	s := casstore.New(casstoretest.NewStaleBackend(casstore.NewMemoryBackend(), 2*time.Second, 1), casstore.Options{})
	tok := &tokenstore.Token{UserName: "alice", AccessToken: "a"}
	if err := s.SaveToken(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FindTokenByID(t.Context(), tok.ID); err != nil {
		t.Errorf("FindTokenByID of the token this Store just saved: %v", err)
	}
	if _, err := s.FindToken(t.Context(), &tokenstore.Token{UserName: "alice"}); err != nil {
		t.Errorf("FindToken of the token this Store just saved: %v", err)
	}
	if all, err := s.Tokens(t.Context()); err != nil || len(all) != 1 {
		t.Errorf("Tokens right after a save: %d tokens, %v", len(all), err)
	}
}

// recoveryWindow is a backend whose deleted names stay taken, as on AWS
// Secrets Manager with a recovery window: a Create there is ErrDeleted.
type recoveryWindow struct {
	casstore.Backend
	mu      sync.Mutex
	deleted map[string]bool
}

func (r *recoveryWindow) Delete(ctx context.Context, name string) error {
	err := r.Backend.Delete(ctx, name)
	if err == nil {
		r.mu.Lock()
		r.deleted[name] = true
		r.mu.Unlock()
	}
	return err
}

func (r *recoveryWindow) Create(ctx context.Context, name string, value []byte) (string, error) {
	r.mu.Lock()
	gone := r.deleted[name]
	r.mu.Unlock()
	if gone {
		return "", fmt.Errorf("%w: %s is scheduled for deletion", casstore.ErrDeleted, name)
	}
	return r.Backend.Create(ctx, name, value)
}

func (r *recoveryWindow) List(ctx context.Context) ([]string, error) {
	return r.Backend.(casstore.Lister).List(ctx)
}

// A delete killed between deleting a rotated token's document (its name
// then stays taken: ErrDeleted) and releasing its entries: Repair fixes it
// in one pass. The fence of the first entry learns that the name is gone
// for good, so the entries of every generation (the rotated r: entry is
// one newer than the u: entry) are dead; it once recorded only the first
// entry's generation and left the r: claim for a second Repair (3 to 4 of
// 100 AWS kill rounds, integration/aws TestRepairAfterKilledDelete).
func TestRepairAfterKilledDeleteOnANameThatStaysTaken(t *testing.T) {
	ctx := t.Context()
	b := &recoveryWindow{Backend: casstore.NewMemoryBackend(), deleted: map[string]bool{}}
	s := casstore.New(b, casstore.Options{ClaimWait: 10 * time.Millisecond})
	tok := &tokenstore.Token{UserName: "u", ClientID: "c", ClientSecret: "s", RefreshToken: "r", AccessToken: "a"}
	if err := s.SaveToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveToken(ctx, &tokenstore.Token{UserName: "u", ClientID: "c", ClientSecret: "s", RefreshToken: "r-rotated", AccessToken: "b"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, casstore.TokenName(tok.ID)); err != nil { // the kill comes before the release
		t.Fatal(err)
	}
	rr, err := s.Repair(ctx)
	after, cerr := s.Check(ctx)
	if err != nil || len(rr.Skipped) > 0 || cerr != nil || !after.OK() {
		t.Errorf("Repair: %s (%v); Check after: %v (%v)", rr, err, after, cerr)
	}
}

// freshList is a stale backend whose List is fresh (Vault's LIST on a
// standby that has caught up with the listing but not with the entry, or
// any service whose list and reads lag differently).
type freshList struct {
	*casstoretest.StaleBackend
	mem *casstore.MemoryBackend
}

func (f freshList) List(ctx context.Context) ([]string, error) { return f.mem.List(ctx) }

// A bucket 0 that another process created less than the lag ago reads as
// missing. The listing shows index-0, so the index is not lost: the Store
// reads it again instead of rebuilding it (it once ran Repair in the
// middle of a save, in every goroutine that met it, 16 times in one Vault
// stress run under a 2 s standby lag).
func TestStaleBucketZeroIsNotALostIndex(t *testing.T) {
	ctx := t.Context()
	mem := casstore.NewMemoryBackend()
	b := freshList{StaleBackend: casstoretest.NewStaleBackend(mem, 2*time.Second, 1), mem: mem}
	var logs strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	a, other := casstore.New(b, casstore.Options{}), casstore.New(b, casstore.Options{Logger: logger})
	if err := a.SaveToken(ctx, &tokenstore.Token{UserName: "first", AccessToken: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := other.SaveToken(ctx, &tokenstore.Token{UserName: "second", AccessToken: "b"}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Contains(logs.String(), "index is missing") {
		t.Errorf("a stale read of bucket 0, which the listing shows, was taken for a lost index:\n%s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Saves, refreshes and deletes from four Stores (four processes) of four
// goroutines each, while half of all reads within 300 ms of a write are
// stale: once the lag has passed, the
// index matches the documents exactly. A release (of a withdrawn claim, a
// rotated refresh token, or a deleted token) decided on a stale bucket
// that does not show the entries yet would leave them behind.
func TestStaleReadsLeaveNoEntriesBehind(t *testing.T) {
	ctx := t.Context()
	stale := casstoretest.NewStaleBackend(casstore.NewMemoryBackend(), 300*time.Millisecond, 7)
	stale.P = 0.5
	var stores []*casstore.Store
	for range 4 {
		stores = append(stores, casstore.New(stale, casstore.Options{}))
	}
	s := stores[0]
	var wg sync.WaitGroup
	for g := range 16 {
		s := stores[g%4]
		wg.Go(func() {
			for i := range 10 {
				user := fmt.Sprintf("u%d-%d", g, i)
				tok := &tokenstore.Token{UserName: user, ClientID: "c", ClientSecret: "s", RefreshToken: "r1-" + user, AccessToken: "a1"}
				if err := s.SaveToken(ctx, tok); err != nil {
					t.Errorf("save %s: %v", user, err)
					return
				}
				if err := s.SaveToken(ctx, &tokenstore.Token{ID: tok.ID, RefreshToken: "r2-" + user, AccessToken: "a2"}); err != nil {
					t.Errorf("refresh %s: %v", user, err)
					return
				}
				if i%2 == 0 {
					if err := s.DeleteToken(ctx, tok.ID); err != nil {
						t.Errorf("delete %s: %v", user, err)
					}
				}
			}
		})
	}
	wg.Wait()
	time.Sleep(stale.Window)
	if rep := mustCheck(t, s); !rep.OK() {
		t.Errorf("Check after the lag: %s", rep)
	}
	all, err := s.Tokens(ctx)
	if err != nil || len(all) != 80 {
		t.Errorf("Tokens: %d, %v; want 80", len(all), err)
	}
}

// A token deleted by one Store moments after another Store inserted it
// (and a third found it): the delete's release reads the bucket, and a
// lagging replica may not show the new token's entries yet. The release reads again until it
// finds them, so none is left behind.
func TestDeleteOfAFreshInsertFromAnotherStore(t *testing.T) {
	ctx := t.Context()
	stale := casstoretest.NewStaleBackend(casstore.NewMemoryBackend(), 300*time.Millisecond, 11)
	stale.P = 0.5
	a, b, c := casstore.New(stale, casstore.Options{}), casstore.New(stale, casstore.Options{}), casstore.New(stale, casstore.Options{})
	for i := range 20 {
		user := fmt.Sprintf("user%d", i)
		if err := a.SaveToken(ctx, &tokenstore.Token{UserName: user, AccessToken: "a"}); err != nil {
			t.Fatal(err)
		}
		var found *tokenstore.Token
		for found == nil {
			tok, err := c.FindToken(ctx, &tokenstore.Token{UserName: user})
			switch {
			case err == nil:
				found = tok
			case !errors.Is(err, tokenstore.ErrNotFound):
				t.Fatal(err)
			}
		}
		// The delete's own read of the document may lag too: retried as
		// a caller would.
		for {
			err := b.DeleteToken(ctx, found.ID)
			if err == nil {
				break
			}
			if !errors.Is(err, tokenstore.ErrNotFound) {
				t.Fatalf("delete %s: %v", user, err)
			}
		}
	}
	time.Sleep(stale.Window)
	if rep := mustCheck(t, a); !rep.OK() {
		t.Errorf("Check after the lag: %s", rep)
	}
}
