package tokenstoretest

import (
	"fmt"
	"sync"
	"testing"

	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// RunShared runs the cases that need two store instances over the same
// data, standing in for two processes: newPair returns two stores that
// share storage (for example two adapters with the same prefix) and that
// no other test uses. The second store may cache its index: the cases
// warm it and then change the data through the first.
func RunShared(t *testing.T, newPair func(t *testing.T) (a, b tokenstore.Store)) {
	t.Helper()
	for _, c := range SharedCases() {
		t.Run(c.Name, func(t *testing.T) {
			defer failOnPanic(t)
			a, b := newPair(t)
			c.Run(t, a, b)
		})
	}
}

// SharedCase is one named check over two instances.
type SharedCase struct {
	Name string
	Run  func(t *testing.T, a, b tokenstore.Store)
}

// SharedCases returns the cases RunShared runs.
func SharedCases() []SharedCase {
	return []SharedCase{
		{"SavedThroughOneFoundThroughOther", func(t *testing.T, a, b tokenstore.Store) {
			x := save(t, a, userTok("shared-1", clientA, secretA, "acc", "ref-1"))
			mustFind(t, b, &tokenstore.Token{UserName: "shared-1"}, x.ID)
			mustFind(t, b, &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref-1"}, x.ID)
			if got, err := findByID(t, b, x.ID); err != nil || got.UserName != "shared-1" {
				t.Fatalf("FindTokenByID through the other instance: %v, %v", got, err)
			}
		}},
		{"NewTokenFoundAfterOtherWarmedCache", func(t *testing.T, a, b tokenstore.Store) {
			save(t, a, userTok("warm-1", clientA, secretA, "acc-1", "ref-w1"))
			mustFind(t, b, &tokenstore.Token{UserName: "warm-1"}, "") // warms b
			if _, err := b.Tokens(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			y := save(t, a, userTok("warm-2", clientA, secretA, "acc-2", "ref-w2"))
			mustFind(t, b, &tokenstore.Token{UserName: "warm-2"}, y.ID)
			mustFind(t, b, &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref-w2"}, y.ID)
		}},
		{"RecreatedTokenFoundAfterOtherCachedOldOne", func(t *testing.T, a, b tokenstore.Store) {
			x := save(t, a, userTok("again", clientA, secretA, "acc-1", "ref-1"))
			mustFind(t, b, &tokenstore.Token{UserName: "again"}, x.ID)
			if err := a.DeleteToken(ctxT(t), x.ID); err != nil {
				t.Fatal(err)
			}
			_, err := find(t, b, &tokenstore.Token{UserName: "again"})
			wantErr(t, "deleted token through a warm cache", err, tokenstore.ErrNotFound)
			y := save(t, a, userTok("again", clientA, secretA, "acc-2", "ref-2"))
			mustFind(t, b, &tokenstore.Token{UserName: "again"}, y.ID)
		}},
		{"RotatedRefreshTokenThroughWarmCache", func(t *testing.T, a, b tokenstore.Store) {
			x := save(t, a, userTok("rot", clientA, secretA, "acc-1", "ref-old"))
			mustFind(t, b, &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref-old"}, x.ID)
			save(t, a, &tokenstore.Token{ID: x.ID, AccessToken: "acc-2", RefreshToken: "ref-new"})
			_, err := find(t, b, &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref-old"})
			wantErr(t, "old refresh token through a warm cache", err, tokenstore.ErrNotFound)
			got := mustFind(t, b, &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref-new"}, x.ID)
			if got.AccessToken != "acc-2" {
				t.Fatalf("stale token through the other instance: %#v", got)
			}
		}},
		{"SaveThroughWarmCacheUpdatesNotDuplicates", func(t *testing.T, a, b tokenstore.Store) {
			x := save(t, a, userTok("upd", clientA, secretA, "acc-1", "ref-1"))
			mustFind(t, b, &tokenstore.Token{UserName: "upd"}, x.ID)
			if err := a.DeleteToken(ctxT(t), x.ID); err != nil {
				t.Fatal(err)
			}
			y := save(t, a, userTok("upd", clientA, secretA, "acc-2", "ref-2"))
			z := save(t, b, &tokenstore.Token{UserName: "upd", AccessToken: "acc-3"})
			if z.ID != y.ID {
				t.Fatalf("save through the stale instance made record %q, want update of %q", z.ID, y.ID)
			}
			if n := count(t, a); n != 1 {
				t.Fatalf("%d records, want 1", n)
			}
		}},
		{"ConcurrentSaversOnBothInstances", func(t *testing.T, a, b tokenstore.Store) {
			var wg sync.WaitGroup
			errs := make([]error, 16)
			for i := range 16 {
				s := a
				if i%2 == 1 {
					s = b
				}
				wg.Go(func() {
					errs[i] = s.SaveToken(ctxT(t), userTok("both", clientA, secretA, fmt.Sprintf("acc-%d", i), "ref-both"))
				})
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("saver %d: %v", i, err)
				}
			}
			for _, s := range []tokenstore.Store{a, b} {
				if n := count(t, s); n != 1 {
					t.Fatalf("%d records for one user, want 1", n)
				}
			}
		}},
		{"DeleteTokensSeenByOther", func(t *testing.T, a, b tokenstore.Store) {
			save(t, a, userTok("gone-1", clientA, secretA, "a1", "r1"))
			save(t, a, userTok("gone-2", clientA, secretA, "a2", "r2"))
			mustFind(t, b, &tokenstore.Token{UserName: "gone-1"}, "")
			if err := a.DeleteTokens(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			if n := count(t, b); n != 0 {
				t.Fatalf("other instance lists %d tokens after DeleteTokens", n)
			}
			_, err := find(t, b, &tokenstore.Token{UserName: "gone-1"})
			wantErr(t, "find through the other instance after DeleteTokens", err, tokenstore.ErrNotFound)
		}},
	}
}
