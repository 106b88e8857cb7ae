package casstore_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// throttledIndex is a MemoryBackend whose index writes, while throttled
// is set, wait until their context ends, as on a bucket that takes more
// writes than its cloud allows.
type throttledIndex struct {
	*casstore.MemoryBackend
	throttled atomic.Bool
}

func (b *throttledIndex) wait(ctx context.Context, name string) error {
	if strings.HasPrefix(name, "index-") && b.throttled.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (b *throttledIndex) Create(ctx context.Context, name string, value []byte) (string, error) {
	if err := b.wait(ctx, name); err != nil {
		return "", err
	}
	return b.MemoryBackend.Create(ctx, name, value)
}

func (b *throttledIndex) Update(ctx context.Context, name string, value []byte, version string) (string, error) {
	if err := b.wait(ctx, name); err != nil {
		return "", err
	}
	return b.MemoryBackend.Update(ctx, name, value, version)
}

// TestReleaseOutOfTime: a DeleteToken whose release of the index entries
// runs out of clean-up time (the bucket is throttled) succeeds and leaves
// dead entries (Check reports them), which the Store's next write of the
// bucket drops in the same compare-and-swap: Check is clean afterwards
// without a Repair, and that save writes the index no more often than
// any insert.
func TestReleaseOutOfTime(t *testing.T) {
	ctx := t.Context()
	b := &throttledIndex{MemoryBackend: casstore.NewMemoryBackend()}
	var logs bytes.Buffer
	s := casstore.New(b, casstore.Options{CleanupTimeout: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	alice, bob := zohoToken(1), zohoToken(2)
	for _, tok := range []*tokenstore.Token{alice, bob} {
		if err := s.SaveToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	insert := calls(t, b.MemoryBackend, func() error { return s.SaveToken(ctx, zohoToken(3)) })

	b.throttled.Store(true)
	if err := s.DeleteToken(ctx, alice.ID); err != nil {
		t.Fatalf("DeleteToken with its release out of time: %v", err)
	}
	b.throttled.Store(false)
	if !strings.Contains(logs.String(), "next write of their bucket") || strings.Contains(logs.String(), alice.RefreshToken) {
		t.Errorf("log = %q, want the release that ran out of time, without token values", logs.String())
	}
	r, err := s.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(r.Missing, alice.ID) {
		t.Fatalf("Check after the release ran out of time: %v, want %s's dead entries", r, alice.ID)
	}

	got := calls(t, b.MemoryBackend, func() error { return s.SaveToken(ctx, zohoToken(4)) })
	for _, op := range []string{"Create", "Update"} {
		if got[op] != insert[op] {
			t.Errorf("the insert that dropped the leftovers made %d %s calls, an insert %d", got[op], op, insert[op])
		}
	}
	assertClean(t, s)
	if _, err := s.FindToken(ctx, &tokenstore.Token{UserName: alice.UserName}); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Errorf("FindToken of the deleted user: %v, want not found", err)
	}
}

// TestLeftoverClaimedAgain: entries a delete could not release are not
// dropped once ImportToken brings the token back under the same ID and
// claims them again (a leftover is dropped only while its entry is dead).
func TestLeftoverClaimedAgain(t *testing.T) {
	ctx := t.Context()
	b := &throttledIndex{MemoryBackend: casstore.NewMemoryBackend()}
	s := casstore.New(b, casstore.Options{CleanupTimeout: 200 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	alice := zohoToken(1)
	// A refresh that rotates the refresh token: its new key is claimed
	// for generation 2.
	rotated := signUpAndRotate(t, s, s, alice, "rotated")
	b.throttled.Store(true)
	if err := s.DeleteToken(ctx, alice.ID); err != nil {
		t.Fatal(err)
	}
	b.throttled.Store(false)
	if err := s.ImportToken(ctx, rotated); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveToken(ctx, zohoToken(2)); err != nil { // another write of the bucket
		t.Fatal(err)
	}
	assertClean(t, s)
	for _, q := range []*tokenstore.Token{{UserName: alice.UserName}, {RefreshToken: rotated.RefreshToken, ClientID: rotated.ClientID, ClientSecret: rotated.ClientSecret}} {
		got, err := s.FindToken(ctx, q)
		if err != nil || got.ID != alice.ID {
			t.Errorf("FindToken(%+v) after the import: %v, %v; want token %s", q, got, err, alice.ID)
		}
	}
}

func assertClean(t *testing.T, s *casstore.Store) {
	t.Helper()
	r, err := s.Check(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() {
		t.Errorf("Check: %v, want clean", r)
	}
}

// cancelOnLostRace is a MemoryBackend that ends a context when a write
// of a token document under it loses its compare-and-swap: the save that
// lost stops there, before its retry could claim its keys again.
type cancelOnLostRace struct {
	*casstore.MemoryBackend
	cancel context.CancelFunc
}

func (b *cancelOnLostRace) Update(ctx context.Context, name string, value []byte, version string) (string, error) {
	v, err := b.MemoryBackend.Update(ctx, name, value, version)
	if strings.HasPrefix(name, "token-") && errors.Is(err, casstore.ErrVersionMismatch) && b.cancel != nil {
		b.cancel()
	}
	return v, err
}

// TestLostRaceLeavesNoDeadEntries: a refresh that rotates the refresh
// token and loses its compare-and-swap to another process's refresh, and
// then stops (its context ends), leaves its claim of the new refresh
// token dead in the index (Check reports it). The Store's next write of
// that bucket drops it; the winner's entries stay.
func TestLostRaceLeavesNoDeadEntries(t *testing.T) {
	ctx := t.Context()
	b := &cancelOnLostRace{MemoryBackend: casstore.NewMemoryBackend()}
	quiet := casstore.Options{Logger: slog.New(slog.DiscardHandler)}
	loser, winner := casstore.New(b, quiet), casstore.New(b, quiet)
	alice := zohoToken(1)
	won := signUpAndRotate(t, loser, winner, alice, "won")
	lost := alice.Clone()
	lost.RefreshToken, lost.AccessToken = "rt-lost", "at-lost"
	lctx, cancel := context.WithCancel(ctx)
	b.cancel = cancel
	if err := loser.SaveToken(lctx, lost); err == nil {
		t.Fatal("the save that lost its race and stopped succeeded")
	}
	b.cancel = nil
	r, err := loser.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.OK() {
		t.Fatalf("Check after the lost race: %v, want its dead claim reported", r)
	}
	if err := loser.SaveToken(ctx, zohoToken(2)); err != nil {
		t.Fatal(err)
	}
	assertClean(t, loser)
	q := &tokenstore.Token{RefreshToken: won.RefreshToken, ClientID: won.ClientID, ClientSecret: won.ClientSecret}
	if got, err := loser.FindToken(ctx, q); err != nil || got.ID != alice.ID {
		t.Errorf("FindToken by the winner's refresh token: %v, %v", got, err)
	}
}

// signUpAndRotate saves tok with first, then a refresh of it that rotates
// its refresh token (to "rt-"+name) with second, and returns the refresh.
func signUpAndRotate(t *testing.T, first, second *casstore.Store, tok *tokenstore.Token, name string) *tokenstore.Token {
	t.Helper()
	if err := first.SaveToken(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	next := tok.Clone()
	next.RefreshToken, next.AccessToken = "rt-"+name, "at-"+name
	if err := second.SaveToken(t.Context(), next); err != nil {
		t.Fatal(err)
	}
	return next
}
