package casstore_test

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

func zohoToken(i int) *tokenstore.Token {
	return &tokenstore.Token{
		UserName: fmt.Sprintf("user-%d@example.com", i), ClientID: "cid", ClientSecret: "cs",
		RefreshToken: fmt.Sprintf("rt-%d", i), GrantToken: fmt.Sprintf("gt-%d", i),
		AccessToken: fmt.Sprintf("at-%d", i), Expiry: time.Now().Add(time.Hour).Truncate(time.Millisecond),
	}
}

// calls runs op and returns the Backend calls it made.
func calls(t *testing.T, b *casstore.MemoryBackend, op func() error) map[string]int {
	t.Helper()
	b.ResetCalls()
	if err := op(); err != nil {
		t.Fatal(err)
	}
	return b.Calls()
}

func wantCalls(t *testing.T, what string, got, want map[string]int) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Errorf("%s: %v Backend calls, want %v", what, got, want)
	}
}

// TestCostTable pins the cost table of the package documentation, call
// by call, with and without the index cache (one shard, so K = 1).
func TestCostTable(t *testing.T) {
	for _, cache := range []bool{false, true} {
		t.Run(fmt.Sprint("CacheIndex=", cache), func(t *testing.T) {
			ctx := t.Context()
			b := casstore.NewMemoryBackend()
			s := casstore.New(b, casstore.Options{CacheIndex: cache})
			for i := range 3 {
				if err := s.SaveToken(ctx, zohoToken(i)); err != nil {
					t.Fatal(err)
				}
			}
			all, err := s.Tokens(ctx)
			if err != nil {
				t.Fatal(err)
			}
			id := all[0].ID
			// A second Store, as another process: it remembers nothing.
			other := casstore.New(b, casstore.Options{CacheIndex: cache})

			wantCalls(t, "FindTokenByID", calls(t, b, func() error { _, err := s.FindTokenByID(ctx, id); return err }),
				map[string]int{"Read": 1})
			findByUser := map[string]int{"Read": 2}
			if cache {
				findByUser = map[string]int{"Read": 1}
			}
			wantCalls(t, "FindToken by user", calls(t, b, func() error {
				_, err := s.FindToken(ctx, &tokenstore.Token{UserName: all[1].UserName})
				return err
			}), findByUser)

			var found *tokenstore.Token
			calls(t, b, func() error { found, err = s.FindTokenByID(ctx, id); return err })
			found.AccessToken, found.Expiry = "at-new", time.Now().Add(2*time.Hour).Truncate(time.Millisecond)
			wantCalls(t, "SaveToken refresh of a token it has read", calls(t, b, func() error { return s.SaveToken(ctx, found) }),
				map[string]int{"Update": 1})
			again := found.Clone()
			again.AccessToken = "at-newer"
			wantCalls(t, "SaveToken refresh of a token it has written", calls(t, b, func() error { return s.SaveToken(ctx, again) }),
				map[string]int{"Update": 1})
			blind := again.Clone()
			blind.AccessToken = "at-newest"
			wantCalls(t, "SaveToken refresh by another Store", calls(t, b, func() error { return other.SaveToken(ctx, blind) }),
				map[string]int{"Read": 1, "Update": 1})

			// An insert looks the user up (the shard read) and then writes
			// that same shard without reading it again.
			nt := zohoToken(10)
			wantCalls(t, "SaveToken new", calls(t, b, func() error { return s.SaveToken(ctx, nt) }),
				map[string]int{"Read": 1, "Create": 1, "Update": 1})

			wantCalls(t, "AcquireLease of a token it has written", calls(t, b, func() error {
				ok, err := s.AcquireLease(ctx, nt.ID, "me", time.Minute)
				if err == nil && !ok {
					err = fmt.Errorf("lease refused")
				}
				return err
			}), map[string]int{"Update": 1})

			rotated := nt.Clone()
			rotated.RefreshToken = "rt-rotated"
			// Claim the new key (index), swap the token, release the old key
			// (index, from the version the claim wrote).
			rotate := map[string]int{"Update": 3}
			wantCalls(t, "SaveToken with a new refresh token", calls(t, b, func() error { return s.SaveToken(ctx, rotated) }), rotate)

			wantCalls(t, "Tokens", calls(t, b, func() error { _, err := s.Tokens(ctx); return err }),
				map[string]int{"Read": 1, "ReadMany": 1})
			// Read the token, delete it, release its keys (index).
			del := map[string]int{"Read": 1, "Delete": 1, "Update": 1}
			wantCalls(t, "DeleteToken", calls(t, b, func() error { return s.DeleteToken(ctx, nt.ID) }), del)
			wantCalls(t, "DeleteTokens", calls(t, b, func() error { return s.DeleteTokens(ctx) }),
				map[string]int{"Read": 1, "List": 1, "Delete": 3, "Update": 1})
		})
	}
}

// TestRememberedDocumentIsOnlyAGuess: a Store saves a token it remembers
// with one write, and when another process changed (or deleted, or
// leased) the token since, it decides again from a fresh read and loses
// nothing.
func TestRememberedDocumentIsOnlyAGuess(t *testing.T) {
	setup := func(t *testing.T) (b *casstore.MemoryBackend, a, other *casstore.Store, tok *tokenstore.Token) {
		b = casstore.NewMemoryBackend()
		a = casstore.New(b, casstore.Options{})
		other = casstore.New(b, casstore.Options{})
		tok = zohoToken(1)
		if err := a.SaveToken(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
		return b, a, other, tok
	}
	stored := func(t *testing.T, s *casstore.Store, id string) *tokenstore.Token {
		t.Helper()
		got, err := s.FindTokenByID(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}

	t.Run("ChangedSince", func(t *testing.T) {
		ctx := t.Context()
		b, a, other, tok := setup(t)
		theirs := tok.Clone()
		theirs.AccessToken, theirs.RefreshToken = "at-theirs", "rt-theirs"
		if err := other.SaveToken(ctx, theirs); err != nil {
			t.Fatal(err)
		}
		mine := &tokenstore.Token{ID: tok.ID, AccessToken: "at-mine"}
		wantCalls(t, "save over a stale memory", calls(t, b, func() error { return a.SaveToken(ctx, mine) }),
			map[string]int{"Update": 2, "Read": 1}) // the failed write, the fresh read, the write
		got := stored(t, other, tok.ID)
		if got.AccessToken != "at-mine" || got.RefreshToken != "rt-theirs" {
			t.Errorf("stored access %q, refresh %q; want at-mine over the other Store's rt-theirs", got.AccessToken, got.RefreshToken)
		}
		if rep, err := a.Check(ctx); err != nil || !rep.OK() {
			t.Errorf("Check: %v %v", rep, err)
		}
	})

	t.Run("SameAsRememberedButChanged", func(t *testing.T) {
		// The save changes nothing against the memory, but the store holds
		// another access token now: only a fresh read can tell, and the
		// save must still be written.
		ctx := t.Context()
		_, a, other, tok := setup(t)
		theirs := &tokenstore.Token{ID: tok.ID, AccessToken: "at-theirs"}
		if err := other.SaveToken(ctx, theirs); err != nil {
			t.Fatal(err)
		}
		if err := a.SaveToken(ctx, &tokenstore.Token{ID: tok.ID, AccessToken: tok.AccessToken}); err != nil {
			t.Fatal(err)
		}
		if got := stored(t, other, tok.ID); got.AccessToken != tok.AccessToken {
			t.Errorf("stored access token %q, want the last save's %q", got.AccessToken, tok.AccessToken)
		}
	})

	t.Run("DeletedSince", func(t *testing.T) {
		ctx := t.Context()
		_, a, other, tok := setup(t)
		if err := other.DeleteToken(ctx, tok.ID); err != nil {
			t.Fatal(err)
		}
		again := tok.Clone()
		again.AccessToken = "at-again"
		if err := a.SaveToken(ctx, again); err != nil {
			t.Fatal(err)
		}
		all, err := other.Tokens(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 1 || all[0].AccessToken != "at-again" || all[0].ID == tok.ID {
			t.Fatalf("after saving a token deleted elsewhere: %v; want one new record (a new ID) with at-again", all)
		}
	})

	t.Run("CallerMutatesWhatFindReturned", func(t *testing.T) {
		ctx := t.Context()
		_, a, other, tok := setup(t)
		got := stored(t, a, tok.ID)
		got.AccessToken = "at-edited" // the Store must not share its memory with callers
		if err := a.SaveToken(ctx, got); err != nil {
			t.Fatal(err)
		}
		if s := stored(t, other, tok.ID); s.AccessToken != "at-edited" {
			t.Errorf("stored access token %q, want at-edited", s.AccessToken)
		}
	})

	t.Run("LeasedSince", func(t *testing.T) {
		ctx := t.Context()
		b, a, other, tok := setup(t)
		if ok, err := other.AcquireLease(ctx, tok.ID, "other", time.Minute); err != nil || !ok {
			t.Fatalf("other's lease: %v %v", ok, err)
		}
		if ok, err := a.AcquireLease(ctx, tok.ID, "a", time.Minute); err != nil || ok {
			t.Fatalf("a took a lease another Store holds: %v %v", ok, err)
		}
		if err := other.ReleaseLease(ctx, tok.ID, "other"); err != nil {
			t.Fatal(err)
		}
		if ok, err := a.AcquireLease(ctx, tok.ID, "a", time.Minute); err != nil || !ok {
			t.Fatalf("a's lease after release: %v %v", ok, err)
		}
		// a leased with a fresh read; saving now costs the write alone and
		// releases the lease.
		saved := &tokenstore.Token{ID: tok.ID, AccessToken: "at-leased"}
		wantCalls(t, "save under the lease", calls(t, b, func() error { return a.SaveToken(ctx, saved) }), map[string]int{"Update": 1})
		if ok, err := other.AcquireLease(ctx, tok.ID, "other", time.Minute); err != nil || !ok {
			t.Fatalf("the save did not release a's lease: %v %v", ok, err)
		}
	})
}
