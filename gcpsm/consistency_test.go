package gcpsm_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc"

	"github.com/cloudtokens/cloudtokens/gcpsm"
	"github.com/cloudtokens/cloudtokens/gcpsm/gcpsmtest"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/tokenstoretest"
)

var epoch = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// laggingEnv is an emulator with WithEventualConsistency(lag) on a
// simulated clock that moves by step after every request, so that
// retries see time pass; moving is off until enabled.
type laggingEnv struct {
	*env
	clock  *gcpsmtest.ManualClock
	moving atomic.Bool
}

func newLaggingEnv(t *testing.T, lag, step time.Duration) *laggingEnv {
	t.Helper()
	le := &laggingEnv{clock: gcpsmtest.NewManualClock(epoch)}
	tick := grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		resp, err := h(ctx, req)
		if le.moving.Load() {
			le.clock.Advance(step)
		}
		return resp, err
	})
	le.env = newEnv(t, gcpsmtest.WithClock(le.clock.Now), gcpsmtest.WithEventualConsistency(lag), gcpsmtest.WithServerOptions(tick))
	return le
}

// twoStores opens two stores on one new prefix, each on its own
// connection (two processes); the second one's calls are recorded by rec.
func (le *laggingEnv) twoStores(t *testing.T, bOpts ...gcpsm.Option) (a, b *gcpsm.Store, rec *recorder) {
	t.Helper()
	prefix := newPrefix()
	otherClient, rec := newRecordedClient(t, le.srv)
	return le.store(t, prefix), newStore(t, otherClient, prefix, bOpts...), rec
}

// settle lets every reader see every write so far.
func (le *laggingEnv) settle() { le.clock.Advance(time.Hour) }

// billed returns the numbers of the ENABLED and DISABLED versions of a
// secret, read after the lag has passed.
func (le *laggingEnv) billed(t *testing.T, id string) []int64 {
	t.Helper()
	le.settle()
	var out []int64
	it := le.raw.ListSecretVersions(context.Background(), &secretmanagerpb.ListSecretVersionsRequest{Parent: secretPath(id)})
	for {
		v, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if v.GetState() != secretmanagerpb.SecretVersion_DESTROYED {
			n, _ := strconv.ParseInt(v.GetName()[len(secretPath(id))+len("/versions/"):], 10, 64)
			out = append(out, n)
		}
	}
}

// TestStaleAliasAfterAnotherWriter is the failure of the consistency
// issue: process A refreshes a token twice, so the version that B's
// lagging alias read resolves to is destroyed. B's FindTokenByID retries
// until the alias catches up instead of failing, and B's own refresh
// succeeds from the current version.
func TestStaleAliasAfterAnotherWriter(t *testing.T) {
	le := newLaggingEnv(t, 5*time.Second, time.Second)
	ctx := context.Background()
	a, b, otherRec := le.twoStores(t)
	tk := tok("stale")
	if err := a.SaveToken(ctx, tk); err != nil {
		t.Fatal(err)
	}
	le.settle()
	if _, err := b.FindTokenByID(ctx, tk.ID); err != nil { // B has read version 1
		t.Fatal(err)
	}
	for i := range 2 { // versions 2 and 3; version 1 is destroyed
		if err := a.SaveToken(ctx, &tokenstore.Token{ID: tk.ID, AccessToken: fmt.Sprintf("access-VALUE-a%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	le.moving.Store(true)
	otherRec.take()
	got, err := b.FindTokenByID(ctx, tk.ID)
	if err != nil {
		t.Fatalf("FindTokenByID after another process's refreshes: %v", err)
	}
	if got.AccessToken != "access-VALUE-a1" {
		t.Errorf("FindTokenByID = %q, want the latest access token", got.AccessToken)
	}
	if n := len(otherRec.take()); n < 2 {
		t.Errorf("FindTokenByID made %d calls: the first read should have met the destroyed version", n)
	}
	// B's refresh starts from what B knows and ends on the current
	// version: nothing A wrote is lost, and no stray version is left.
	if err := b.SaveToken(ctx, &tokenstore.Token{ID: tk.ID, RefreshToken: "refresh-VALUE-b"}); err != nil {
		t.Fatalf("B's refresh: %v", err)
	}
	le.settle()
	got, err = a.FindTokenByID(ctx, tk.ID)
	if err != nil || got.AccessToken != "access-VALUE-a1" || got.RefreshToken != "refresh-VALUE-b" {
		t.Fatalf("after both refreshes: %+v, %v", got, err)
	}
	if v := le.billed(t, a.SecretID(tk.ID)); len(v) > 2 {
		t.Errorf("billed versions %v, want at most 2", v)
	}
}

// Without the retry the same read fails, with ErrStaleAlias (which wraps
// tokenstore.ErrConflict), never with a bare FAILED_PRECONDITION.
func TestStaleAliasGivesUp(t *testing.T) {
	le := newLaggingEnv(t, 5*time.Second, 0)
	ctx := context.Background()
	a, b, _ := le.twoStores(t, gcpsm.WithStaleReadWait(0))
	tk := tok("gives-up")
	if err := a.SaveToken(ctx, tk); err != nil {
		t.Fatal(err)
	}
	le.settle()
	for i := range 2 {
		if err := a.SaveToken(ctx, &tokenstore.Token{ID: tk.ID, AccessToken: fmt.Sprintf("access-VALUE-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := b.FindTokenByID(ctx, tk.ID)
	if !errors.Is(err, gcpsm.ErrStaleAlias) || !errors.Is(err, tokenstore.ErrConflict) {
		t.Fatalf("FindTokenByID = %v, want ErrStaleAlias (ErrConflict)", err)
	}
	assertNoSecrets(t, "error", err.Error())
}

// A Store reads its own writes: right after a create or a refresh, the
// lagging alias answers NOT_FOUND or the version before, and the store
// reads the version it wrote by number, which is strongly consistent.
func TestReadYourWritesUnderLag(t *testing.T) {
	le := newLaggingEnv(t, 5*time.Second, 0)
	ctx := context.Background()
	s := le.store(t, newPrefix())
	tk := tok("ryw")
	if err := s.SaveToken(ctx, tk); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FindTokenByID(ctx, tk.ID); err != nil {
		t.Fatalf("FindTokenByID right after the create: %v", err)
	}
	if _, err := s.FindToken(ctx, &tokenstore.Token{UserName: "ryw"}); err != nil {
		t.Fatalf("FindToken right after the create (the index is lagging too): %v", err)
	}
	for i := range 5 {
		want := fmt.Sprintf("access-VALUE-%d", i)
		if err := s.SaveToken(ctx, &tokenstore.Token{ID: tk.ID, AccessToken: want}); err != nil {
			t.Fatal(err)
		}
		got, err := s.FindTokenByID(ctx, tk.ID)
		if err != nil || got.AccessToken != want {
			t.Fatalf("read after refresh %d: %v (%v)", i, got, err)
		}
	}
}

// Two stores saving through one lagging emulator: every acknowledged
// refresh is kept, no version is left billed beyond current and previous.
func TestConcurrentWritersUnderLag(t *testing.T) {
	le := newLaggingEnv(t, 2*time.Second, 200*time.Millisecond)
	le.moving.Store(true)
	ctx := context.Background()
	a, b, _ := le.twoStores(t)
	stores := []*gcpsm.Store{a, b}
	tk := tok("shared")
	if err := stores[0].SaveToken(ctx, tk); err != nil {
		t.Fatal(err)
	}
	// Each store refreshes a field of its own, alternately: both fields
	// must hold the last value each store wrote.
	for i := range 10 {
		for j, s := range stores {
			up := &tokenstore.Token{ID: tk.ID}
			if j == 0 {
				up.AccessToken = fmt.Sprintf("access-VALUE-%d", i)
			} else {
				up.RefreshToken = fmt.Sprintf("refresh-VALUE-%d", i)
			}
			if err := s.SaveToken(ctx, up); err != nil {
				t.Fatalf("round %d, store %d: %v", i, j, err)
			}
		}
	}
	le.settle()
	got, err := stores[0].FindTokenByID(ctx, tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken != "access-VALUE-9" || got.RefreshToken != "refresh-VALUE-9" {
		t.Errorf("final token %q / %q: an acknowledged write was lost", got.AccessToken, got.RefreshToken)
	}
	if v := le.billed(t, stores[0].SecretID(tk.ID)); len(v) > 2 {
		t.Errorf("billed versions %v, want at most 2", v)
	}
	if n, err := stores[0].DestroyStaleVersions(ctx); err != nil || n != 0 {
		t.Errorf("DestroyStaleVersions = %d, %v; want nothing left to destroy", n, err)
	}
}

// TestConformanceUnderLag runs the single-store conformance suite on an
// emulator whose reads lag up to 300 ms: a store reads its own writes.
// The two-store cases run under a lag in the integration module
// (TestConformanceSharedUnderLag, with tokenstoretest.WithVisibilityLag).
func TestConformanceUnderLag(t *testing.T) {
	e := newEnv(t, gcpsmtest.WithEventualConsistency(300*time.Millisecond))
	tokenstoretest.Run(t, func(t *testing.T) tokenstore.Store {
		return newStore(t, e.client, newPrefix())
	})
}

// TestNoDuplicateUnderLag: B saves a user that A has just inserted, while
// B's reads still show the index without it. B's insert must not create
// a second record: its index write is conditional on the real etag, so
// it fails, and the retry finds A's token and updates it.
func TestNoDuplicateUnderLag(t *testing.T) {
	le := newLaggingEnv(t, 5*time.Second, 250*time.Millisecond)
	ctx := context.Background()
	a, b, _ := le.twoStores(t)
	if err := a.SaveToken(ctx, tok("first")); err != nil { // the index exists
		t.Fatal(err)
	}
	le.settle()
	if _, err := b.FindToken(ctx, &tokenstore.Token{UserName: "first"}); err != nil {
		t.Fatal(err)
	}
	mine := tok("dup")
	if err := a.SaveToken(ctx, mine); err != nil {
		t.Fatal(err)
	}
	le.moving.Store(true)
	theirs := tok("dup")
	theirs.AccessToken = "access-VALUE-from-b"
	if err := b.SaveToken(ctx, theirs); err != nil {
		t.Fatalf("B's save: %v", err)
	}
	le.settle()
	all, err := a.Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var dups []string
	for _, tk := range all {
		if tk.UserName == "dup" {
			dups = append(dups, tk.ID)
		}
	}
	if len(dups) != 1 {
		t.Fatalf("user dup has %d records %v, want 1", len(dups), dups)
	}
	got, err := a.FindToken(ctx, &tokenstore.Token{UserName: "dup"})
	if err != nil || got.ID != mine.ID || got.AccessToken != "access-VALUE-from-b" {
		t.Fatalf("dup = %s (mine %s) access %q, %v; want A's record with B's access token", got.ID, mine.ID, got.AccessToken, err)
	}
	if r, err := a.Check(ctx); err != nil || !r.OK() {
		t.Errorf("Check: %v, %v", r, err)
	}
}
