//go:build enginebugs

// Engine bugs found by the staleness harness, as minimal tests on
// casstore.MemoryBackend under casstoretest.StaleBackend. They fail on the
// engine as it is; run them with:
//
//	go test -tags enginebugs -run . ./staleness/
//
// Move them into package casstore with the fix.

package staleness_test

import (
	"context"
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
// lag: a lookup or save that the layout routes to it must retry the read,
// not fail with "index bucket missing".
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

// Repair of a lost index adds the entries token by token (addEntries:
// one modifyKeys per token), so it writes a bucket once per token it
// holds instead of once. An index grown by size (2,000 sign-ups over three
// weeks: 14 buckets of ~140 tokens) cannot be rebuilt on AWS: a bucket
// reaches the quota of 100 versions a secret a day in the middle of
// Repair (casstoretest.QuotaBackend: LimitExceededException). It is also
// slow: integration/aws BenchmarkRepair takes 54 s on moto_server to
// rebuild the index of 1,000 tokens (64 buckets), Vault 2.6 s, GCP 1.1 s.
// Grouping the missing entries by bucket makes it one write per bucket.
func TestRepairOfALostIndexWithinAWSQuota(t *testing.T) {
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

// A Store must read its own writes: right after SaveToken inserted a
// token, FindTokenByID, FindToken and Tokens through the same Store must
// return it, also while the backend's reads still miss the new documents
// (a document created less than the lag ago reads as not found:
// StaleBackend, and AWS and Vault standbys likewise). Today the Store
// takes "not found" at face value: readDoc forgets the document it has
// just written, and a missing bucket 0 reads as an empty index. The
// single-store conformance suite over casstore + StaleBackend (300 ms)
// fails 16 cases this way. (gcpsm is spared: it checks a NOT_FOUND alias
// by reading version 1 by number, which Secret Manager serves strongly
// consistent.)
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
// then stays taken: ErrDeleted) and releasing its entries: Repair must
// fix it in one pass. Today the fence of the u: entry records a
// versionless tombstone of the u: entry's generation; the newer r: entry
// then looks pending, its fence tries to update that tombstone
// (ErrVersionMismatch), and Repair skips the token, leaving the r: claim
// for a second Repair. The same on moto: integration/aws
// TestRepairAfterKilledDelete; 3 to 4 of 100 AWS kill rounds.
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
// missing. The Store then takes the index for lost (token documents are
// listed) and runs Repair in the middle of a save, in every goroutine
// that meets it, while other processes write: in the Vault stress run
// under a 2 s standby lag a worker logged "the index is missing but token
// documents exist; rebuilding it" 16 times, and the run ended with a
// leftover claim (Check: 1 missing, 1 pending claim). The listing shows
// index-0: the index is not lost, the read was stale, and it should be
// read again (or the Store should wait the stale-read time) instead.
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
