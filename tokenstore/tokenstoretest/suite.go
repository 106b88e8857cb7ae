// Package tokenstoretest is the conformance suite for tokenstore.Store
// implementations. Every store in this repository passes it, and a
// third-party store can run it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		tokenstoretest.Run(t, func(t *testing.T) tokenstore.Store { return newEmptyStore(t) })
//	}
//
// The factory must return an empty store that no other test uses. Run
// checks the lookup rules and their precedence, client-ID scoping, the
// upsert and merge rules, ID assignment, errors, copies, concurrency,
// unicode, large values and context cancellation. RunShared checks two
// instances over the same data, standing in for two processes.
//
// # Eventual consistency
//
// The clouds document their reads as eventually consistent: a process may
// not see another process's write until some time has passed (see the
// Consistency sections of the adapters' READMEs). No store can make a
// write of one process visible to another at once, so an assertion that a
// store finds what another process has just written only holds once that
// time has passed. RunShared with [WithVisibilityLag](d) runs the shared
// cases that way: a read through one instance first waits until d has
// passed since the last write through the other one.
//
// Only the assertions wait. A store's own reads are not delayed, so the
// cases still check what a store must do under stale reads: a save
// through one instance right after a save through the other must update
// the record, not duplicate it (its compare-and-swap writes fail on the
// stale state and are retried, a claim left by another writer is fenced),
// a delete and a recreate must not resurrect the old record, and a store
// must see its own writes at once (monotonic reads). Run the suite on a
// backend that serves stale reads for up to d (casstoretest.StaleBackend,
// gcpsmtest.WithEventualConsistency) to check this:
//
//	tokenstoretest.RunShared(t, newPair, tokenstoretest.WithVisibilityLag(2*time.Second))
package tokenstoretest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// Case is one named conformance check.
type Case struct {
	Name string
	Run  func(t *testing.T, s tokenstore.Store)
}

// Run runs every case of Cases against a fresh store from newStore.
func Run(t *testing.T, newStore func(t *testing.T) tokenstore.Store) {
	t.Helper()
	for _, c := range Cases() {
		t.Run(c.Name, func(t *testing.T) {
			defer failOnPanic(t)
			c.Run(t, newStore(t))
		})
	}
}

// importer returns s as a tokenstore.Importer, or skips the case.
func importer(t *testing.T, s tokenstore.Store) tokenstore.Importer {
	t.Helper()
	imp, ok := s.(tokenstore.Importer)
	if !ok {
		t.Skip("the store does not implement tokenstore.Importer")
	}
	return imp
}

// failOnPanic turns a panic in a case (a store that returned a nil token
// with a nil error, say) into that case's failure, so that one bad case
// does not kill the whole test binary.
func failOnPanic(t *testing.T) {
	t.Helper()
	if r := recover(); r != nil {
		t.Fatalf("panic: %v", r)
	}
}

const (
	clientA = "1000.CLIENTAAAAAAAAAAAAAAAAAAAAAAAA"
	clientB = "1000.CLIENTBBBBBBBBBBBBBBBBBBBBBBBB"
	secretA = "client-secret-a-0123456789"
	secretB = "client-secret-b-0123456789"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// save saves tok and fails the test on error; it returns tok for chaining.
func save(t *testing.T, s tokenstore.Store, tok *tokenstore.Token) *tokenstore.Token {
	t.Helper()
	if err := s.SaveToken(ctxT(t), tok); err != nil {
		t.Fatalf("SaveToken(%v): %v", tok, err)
	}
	if tok.ID == "" {
		t.Fatalf("SaveToken did not write the ID back")
	}
	return tok
}

func find(t *testing.T, s tokenstore.Store, q *tokenstore.Token) (*tokenstore.Token, error) {
	t.Helper()
	got, err := s.FindToken(ctxT(t), q)
	if got == nil && err == nil {
		t.Fatalf("FindToken(%v) returned neither a token nor an error", q)
	}
	return got, err
}

// findByID is FindTokenByID with the same guard.
func findByID(t *testing.T, s tokenstore.Store, id string) (*tokenstore.Token, error) {
	t.Helper()
	got, err := s.FindTokenByID(ctxT(t), id)
	if got == nil && err == nil {
		t.Fatalf("FindTokenByID(%q) returned neither a token nor an error", id)
	}
	return got, err
}

func mustFind(t *testing.T, s tokenstore.Store, q *tokenstore.Token, wantID string) *tokenstore.Token {
	t.Helper()
	got, err := find(t, s, q)
	if err != nil {
		t.Fatalf("FindToken(%v): %v", q, err)
	}
	if wantID != "" && got.ID != wantID {
		t.Fatalf("FindToken(%v) = token %q, want %q", q, got.ID, wantID)
	}
	return got
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error %v, want errors.Is(err, %v)", what, err, target)
	}
}

func count(t *testing.T, s tokenstore.Store) int {
	t.Helper()
	all, err := s.Tokens(ctxT(t))
	if err != nil {
		t.Fatalf("Tokens: %v", err)
	}
	return len(all)
}

func userTok(user, client, secret, access, refresh string) *tokenstore.Token {
	return &tokenstore.Token{UserName: user, ClientID: client, ClientSecret: secret, AccessToken: access, RefreshToken: refresh,
		Expiry: time.Now().Add(time.Hour).Truncate(time.Millisecond), RedirectURL: "https://app.example.com/cb", APIDomain: "https://www.zohoapis.com"}
}

func validIDChars(id string) bool {
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return id != ""
}

// Cases returns the conformance cases that Run runs.
func Cases() []Case {
	return []Case{
		// --- rule 1: user name ---
		{"Rule1/FindByUserName", func(t *testing.T, s tokenstore.Store) {
			a := save(t, s, userTok("alice@example.com", clientA, secretA, "acc-a", "ref-a"))
			save(t, s, userTok("bob@example.com", clientA, secretA, "acc-b", "ref-b"))
			mustFind(t, s, &tokenstore.Token{UserName: "alice@example.com"}, a.ID)
		}},
		{"Rule1/ClientIDMustMatchWhenBothSet", func(t *testing.T, s tokenstore.Store) {
			save(t, s, userTok("alice", clientA, secretA, "acc", "ref"))
			_, err := find(t, s, &tokenstore.Token{UserName: "alice", ClientID: clientB})
			wantErr(t, "FindToken with another client", err, tokenstore.ErrNotFound)
		}},
		{"Rule1/QueryWithoutClientMatchesAnyClient", func(t *testing.T, s tokenstore.Store) {
			a := save(t, s, userTok("alice", clientA, secretA, "acc", "ref"))
			mustFind(t, s, &tokenstore.Token{UserName: "alice"}, a.ID)
		}},
		{"Rule1/StoredWithoutClientMatchesQueryClient", func(t *testing.T, s tokenstore.Store) {
			a := save(t, s, &tokenstore.Token{UserName: "carol", AccessToken: "acc-c"})
			mustFind(t, s, &tokenstore.Token{UserName: "carol", ClientID: clientA}, a.ID)
		}},
		{"Rule1/SameUserTwoClientsAreTwoRecords", func(t *testing.T, s tokenstore.Store) {
			a := save(t, s, userTok("dave", clientA, secretA, "acc-1", "ref-1"))
			b := save(t, s, userTok("dave", clientB, secretB, "acc-2", "ref-2"))
			if a.ID == b.ID {
				t.Fatalf("two clients share record %q", a.ID)
			}
			mustFind(t, s, &tokenstore.Token{UserName: "dave", ClientID: clientA}, a.ID)
			mustFind(t, s, &tokenstore.Token{UserName: "dave", ClientID: clientB}, b.ID)
		}},
		{"Rule1/UserOnlyQueryOverTwoClientsIsAmbiguous", func(t *testing.T, s tokenstore.Store) {
			save(t, s, userTok("erin", clientA, secretA, "acc-1", "ref-1"))
			save(t, s, userTok("erin", clientB, secretB, "acc-2", "ref-2"))
			_, err := find(t, s, &tokenstore.Token{UserName: "erin"})
			wantErr(t, "ambiguous query", err, tokenstore.ErrAmbiguous)
			wantErr(t, "ambiguous query", err, tokenstore.ErrInvalidToken)
		}},
		{"Rule1/NoFallbackToAccessToken", func(t *testing.T, s tokenstore.Store) {
			save(t, s, &tokenstore.Token{AccessToken: "shared-access"})
			_, err := find(t, s, &tokenstore.Token{UserName: "nobody", AccessToken: "shared-access"})
			wantErr(t, "user query with a matching access token", err, tokenstore.ErrNotFound)
		}},
		{"Rule1/NoFallbackToRefreshToken", func(t *testing.T, s tokenstore.Store) {
			save(t, s, userTok("frank", clientA, secretA, "acc", "ref-frank"))
			_, err := find(t, s, &tokenstore.Token{UserName: "someone-else", ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref-frank"})
			wantErr(t, "user query with a matching refresh token", err, tokenstore.ErrNotFound)
		}},
		// --- rule 2: access token ---
		{"Rule2/FindByAccessToken", func(t *testing.T, s tokenstore.Store) {
			a := save(t, s, &tokenstore.Token{AccessToken: "acc-only-1"})
			save(t, s, &tokenstore.Token{AccessToken: "acc-only-2"})
			mustFind(t, s, &tokenstore.Token{AccessToken: "acc-only-1"}, a.ID)
		}},
		{"Rule2/AccessTokenMatchesTokensWithUser", func(t *testing.T, s tokenstore.Store) {
			a := save(t, s, userTok("gina", clientA, secretA, "acc-gina", "ref-gina"))
			mustFind(t, s, &tokenstore.Token{AccessToken: "acc-gina"}, a.ID)
		}},
		{"Rule2/NotApplicableWithClientID", func(t *testing.T, s tokenstore.Store) {
			save(t, s, &tokenstore.Token{AccessToken: "acc-x", ClientID: clientA})
			_, err := find(t, s, &tokenstore.Token{AccessToken: "acc-x", ClientID: clientA})
			wantErr(t, "access token with client id and no grant/refresh", err, tokenstore.ErrInvalidToken)
		}},
		{"Rule2/NotApplicableWithClientSecret", func(t *testing.T, s tokenstore.Store) {
			_, err := find(t, s, &tokenstore.Token{AccessToken: "acc-x", ClientSecret: secretA})
			wantErr(t, "access token with client secret", err, tokenstore.ErrInvalidToken)
		}},
		{"Rule2/NoMatch", func(t *testing.T, s tokenstore.Store) {
			save(t, s, &tokenstore.Token{AccessToken: "acc-1"})
			_, err := find(t, s, &tokenstore.Token{AccessToken: "acc-2"})
			wantErr(t, "unknown access token", err, tokenstore.ErrNotFound)
		}},
		// --- rule 3: grant or refresh token within a client ---
		{"Rule3/FindByGrantToken", func(t *testing.T, s tokenstore.Store) {
			a := save(t, s, &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, GrantToken: "grant-1"})
			mustFind(t, s, &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, GrantToken: "grant-1"}, a.ID)
		}},
		{"Rule3/GrantTokenScopedToClient", func(t *testing.T, s tokenstore.Store) {
			save(t, s, &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, GrantToken: "grant-1"})
			_, err := find(t, s, &tokenstore.Token{ClientID: clientB, ClientSecret: secretB, GrantToken: "grant-1"})
			wantErr(t, "grant token of another client", err, tokenstore.ErrNotFound)
		}},
		{"Rule3/FindByRefreshToken", func(t *testing.T, s tokenstore.Store) {
			a := save(t, s, userTok("hank", clientA, secretA, "acc", "ref-hank"))
			mustFind(t, s, &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref-hank"}, a.ID)
		}},
		{"Rule3/RefreshTokenScopedToClient", func(t *testing.T, s tokenstore.Store) {
			save(t, s, userTok("hank", clientA, secretA, "acc", "ref-hank"))
			_, err := find(t, s, &tokenstore.Token{ClientID: clientB, ClientSecret: secretB, RefreshToken: "ref-hank"})
			wantErr(t, "refresh token of another client", err, tokenstore.ErrNotFound)
		}},
		{"Rule3/GrantBeatsRefreshWithoutFallback", func(t *testing.T, s tokenstore.Store) {
			save(t, s, userTok("ivy", clientA, secretA, "acc", "ref-ivy"))
			_, err := find(t, s, &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, GrantToken: "unknown-grant", RefreshToken: "ref-ivy"})
			wantErr(t, "unknown grant with a matching refresh token", err, tokenstore.ErrNotFound)
		}},
		{"Rule3/RequiresClientSecret", func(t *testing.T, s tokenstore.Store) {
			save(t, s, userTok("jack", clientA, secretA, "acc", "ref-jack"))
			_, err := find(t, s, &tokenstore.Token{ClientID: clientA, RefreshToken: "ref-jack"})
			wantErr(t, "refresh query without client secret", err, tokenstore.ErrInvalidToken)
		}},
		{"Rule3/RequiresClientID", func(t *testing.T, s tokenstore.Store) {
			_, err := find(t, s, &tokenstore.Token{ClientSecret: secretA, GrantToken: "grant"})
			wantErr(t, "grant query without client id", err, tokenstore.ErrInvalidToken)
		}},
		// --- rule 4: invalid queries ---
		{"Rule4/EmptyQueryIsInvalid", func(t *testing.T, s tokenstore.Store) {
			save(t, s, userTok("kate", clientA, secretA, "acc", "ref"))
			got, err := find(t, s, &tokenstore.Token{})
			wantErr(t, "empty query", err, tokenstore.ErrInvalidToken)
			if got != nil {
				t.Fatalf("empty query returned a record: %v", got)
			}
		}},
		{"Rule4/NilQueryIsInvalid", func(t *testing.T, s tokenstore.Store) {
			_, err := s.FindToken(ctxT(t), nil)
			wantErr(t, "nil query", err, tokenstore.ErrInvalidToken)
		}},
		{"Rule4/OnlyMetadataIsInvalid", func(t *testing.T, s tokenstore.Store) {
			save(t, s, userTok("leo", clientA, secretA, "acc", "ref"))
			_, err := find(t, s, &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, APIDomain: "https://www.zohoapis.com"})
			wantErr(t, "query with client credentials only", err, tokenstore.ErrInvalidToken)
		}},
		{"Find/QueryIsNotMutated", func(t *testing.T, s tokenstore.Store) {
			save(t, s, userTok("mia", clientA, secretA, "acc", "ref"))
			q := &tokenstore.Token{UserName: "mia"}
			before := *q
			mustFind(t, s, q, mustFind(t, s, &tokenstore.Token{UserName: "mia"}, "").ID)
			if *q != before {
				t.Fatalf("query mutated: %v", q)
			}
		}},
		{"Find/ResultIsACopy", func(t *testing.T, s tokenstore.Store) {
			a := save(t, s, userTok("ned", clientA, secretA, "acc-ned", "ref"))
			got := mustFind(t, s, &tokenstore.Token{UserName: "ned"}, a.ID)
			got.AccessToken = "tampered"
			got.UserName = "tampered"
			again := mustFind(t, s, &tokenstore.Token{UserName: "ned"}, a.ID)
			if again.AccessToken != "acc-ned" {
				t.Fatalf("stored token changed through a returned copy")
			}
		}},
		{"Find/ReturnsEveryField", func(t *testing.T, s tokenstore.Store) {
			in := userTok("olga", clientA, secretA, "acc-olga", "ref-olga")
			in.GrantToken = "grant-olga"
			want := *save(t, s, in)
			got := mustFind(t, s, &tokenstore.Token{UserName: "olga"}, want.ID)
			if !got.Expiry.Equal(want.Expiry) {
				t.Fatalf("expiry %v, want %v", got.Expiry, want.Expiry)
			}
			got.Expiry = want.Expiry
			if *got != want {
				t.Fatalf("got %#v\nwant %#v", got, &want)
			}
		}},
		// --- SaveToken ---
		{"Save/AssignsValidID", func(t *testing.T, s tokenstore.Store) {
			a := save(t, s, userTok("pat", clientA, secretA, "acc", "ref"))
			if !validIDChars(a.ID) || len(a.ID) > tokenstore.MaxIDLength {
				t.Fatalf("ID %q is not [A-Za-z0-9_-]{1,64}", a.ID)
			}
			got, err := findByID(t, s, a.ID)
			if err != nil || got.UserName != "pat" {
				t.Fatalf("FindTokenByID(%q) = %v, %v", a.ID, got, err)
			}
		}},
		{"Save/IDsAreUnique", func(t *testing.T, s tokenstore.Store) {
			seen := map[string]bool{}
			for i := range 30 {
				tok := save(t, s, userTok(fmt.Sprintf("user-%d", i), clientA, secretA, fmt.Sprintf("acc-%d", i), fmt.Sprintf("ref-%d", i)))
				if seen[tok.ID] {
					t.Fatalf("ID %q assigned twice", tok.ID)
				}
				seen[tok.ID] = true
			}
			if n := count(t, s); n != 30 {
				t.Fatalf("Tokens has %d tokens, want 30", n)
			}
		}},
		{"Save/UpdateByIDOverwritesSetFieldsKeepsEmpty", func(t *testing.T, s tokenstore.Store) {
			a := save(t, s, userTok("quinn", clientA, secretA, "acc-1", "ref-1"))
			exp := time.Now().Add(2 * time.Hour).Truncate(time.Millisecond)
			if err := s.SaveToken(ctxT(t), &tokenstore.Token{ID: a.ID, AccessToken: "acc-2", Expiry: exp}); err != nil {
				t.Fatal(err)
			}
			got, err := findByID(t, s, a.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.AccessToken != "acc-2" || !got.Expiry.Equal(exp) || got.RefreshToken != "ref-1" || got.UserName != "quinn" || got.ClientSecret != secretA || got.APIDomain == "" {
				t.Fatalf("after update by ID: %#v", got)
			}
			if n := count(t, s); n != 1 {
				t.Fatalf("%d tokens, want 1", n)
			}
		}},
		{"Save/UpsertByUserName", func(t *testing.T, s tokenstore.Store) {
			a := save(t, s, userTok("rose", clientA, secretA, "acc-1", "ref-1"))
			b := save(t, s, &tokenstore.Token{UserName: "rose", AccessToken: "acc-2"})
			if b.ID != a.ID {
				t.Fatalf("second save made record %q, want update of %q", b.ID, a.ID)
			}
			got := mustFind(t, s, &tokenstore.Token{UserName: "rose"}, a.ID)
			if got.AccessToken != "acc-2" || got.RefreshToken != "ref-1" {
				t.Fatalf("merge-on-save lost data: %#v", got)
			}
		}},
		{"Save/UpsertByRefreshToken", func(t *testing.T, s tokenstore.Store) {
			a := save(t, s, &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref-s", AccessToken: "acc-1"})
			b := save(t, s, &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref-s", AccessToken: "acc-2"})
			if a.ID != b.ID || count(t, s) != 1 {
				t.Fatalf("refresh-token upsert made a second record")
			}
		}},
		{"Save/UpsertByGrantToken", func(t *testing.T, s tokenstore.Store) {
			a := save(t, s, &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, GrantToken: "grant-s"})
			b := save(t, s, &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, GrantToken: "grant-s", AccessToken: "acc", RefreshToken: "ref"})
			if a.ID != b.ID || count(t, s) != 1 {
				t.Fatalf("grant-token upsert made a second record")
			}
			mustFind(t, s, &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref"}, a.ID)
		}},
		{"Save/UpsertByAccessToken", func(t *testing.T, s tokenstore.Store) {
			a := save(t, s, &tokenstore.Token{AccessToken: "acc-u"})
			b := save(t, s, &tokenstore.Token{AccessToken: "acc-u", APIDomain: "https://api.example.com"})
			if a.ID != b.ID || count(t, s) != 1 {
				t.Fatalf("access-token upsert made a second record")
			}
		}},
		{"Save/UnknownIDInsertsOrUpdatesByRules", func(t *testing.T, s tokenstore.Store) {
			a := save(t, s, userTok("sam", clientA, secretA, "acc", "ref"))
			b := &tokenstore.Token{ID: "no-such-id-123", UserName: "sam", AccessToken: "acc-2"}
			save(t, s, b)
			if b.ID != a.ID {
				t.Fatalf("save with an unknown ID and a known user made record %q, want %q", b.ID, a.ID)
			}
			c := &tokenstore.Token{ID: "no-such-id-456", UserName: "tess", AccessToken: "acc-3"}
			save(t, s, c)
			if _, err := findByID(t, s, c.ID); err != nil {
				t.Fatalf("inserted record %q not found: %v", c.ID, err)
			}
		}},
		{"Save/RefreshTokenRotation", func(t *testing.T, s tokenstore.Store) {
			a := save(t, s, userTok("uma", clientA, secretA, "acc-1", "ref-old"))
			save(t, s, &tokenstore.Token{ID: a.ID, AccessToken: "acc-2", RefreshToken: "ref-new"})
			mustFind(t, s, &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref-new"}, a.ID)
			_, err := find(t, s, &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref-old"})
			wantErr(t, "rotated-out refresh token", err, tokenstore.ErrNotFound)
		}},
		{"Save/RefreshTokenUniquePerClient", func(t *testing.T, s tokenstore.Store) {
			save(t, s, userTok("vic", clientA, secretA, "acc-1", "ref-shared"))
			err := s.SaveToken(ctxT(t), userTok("wes", clientA, secretA, "acc-2", "ref-shared"))
			wantErr(t, "second record with the same refresh token and client", err, tokenstore.ErrConflict)
			if n := count(t, s); n != 1 {
				t.Fatalf("%d tokens after the rejected save, want 1", n)
			}
			other := userTok("wes", clientB, secretB, "acc-3", "ref-shared")
			save(t, s, other) // another client may hold the same value
		}},
		{"Save/NilTokenIsInvalid", func(t *testing.T, s tokenstore.Store) {
			wantErr(t, "SaveToken(nil)", s.SaveToken(ctxT(t), nil), tokenstore.ErrInvalidToken)
		}},
		{"Save/NoSecretIsInvalidAndStoresNothing", func(t *testing.T, s tokenstore.Store) {
			err := s.SaveToken(ctxT(t), &tokenstore.Token{UserName: "xena", ClientID: clientA, ClientSecret: secretA})
			wantErr(t, "token without access, refresh or grant token", err, tokenstore.ErrInvalidToken)
			if n := count(t, s); n != 0 {
				t.Fatalf("%d tokens stored, want 0", n)
			}
		}},
		{"Save/MalformedIDIsRejected", func(t *testing.T, s tokenstore.Store) {
			for _, id := range []string{"a/b", "..", "../escape", "has space", "tab\tid", strings.Repeat("x", 65)} {
				err := s.SaveToken(ctxT(t), &tokenstore.Token{ID: id, UserName: "yara", AccessToken: "acc"})
				wantErr(t, fmt.Sprintf("SaveToken with id %q", id), err, tokenstore.ErrInvalidID)
			}
			if n := count(t, s); n != 0 {
				t.Fatalf("%d tokens stored, want 0", n)
			}
		}},
		{"Save/ExpiryRoundTripsToTheMillisecond", func(t *testing.T, s tokenstore.Store) {
			exp := time.Date(2031, 5, 6, 7, 8, 9, 123_000_000, time.UTC)
			a := save(t, s, &tokenstore.Token{UserName: "zed", AccessToken: "acc", Expiry: exp})
			got, err := findByID(t, s, a.ID)
			if err != nil {
				t.Fatalf("FindTokenByID: %v", err)
			}
			if !got.Expiry.Equal(exp) {
				t.Fatalf("expiry %v, want %v", got.Expiry, exp)
			}
		}},
		// --- by ID, delete, list ---
		{"FindByID/NotFound", func(t *testing.T, s tokenstore.Store) {
			_, err := findByID(t, s, "doesnotexist0000000000")
			wantErr(t, "FindTokenByID of a missing id", err, tokenstore.ErrNotFound)
		}},
		{"FindByID/MalformedID", func(t *testing.T, s tokenstore.Store) {
			for _, id := range []string{"", "a/b", "../x", "with space"} {
				_, err := findByID(t, s, id)
				wantErr(t, fmt.Sprintf("FindTokenByID(%q)", id), err, tokenstore.ErrInvalidToken)
			}
		}},
		{"Delete/NotFound", func(t *testing.T, s tokenstore.Store) {
			wantErr(t, "DeleteToken of a missing id", s.DeleteToken(ctxT(t), "doesnotexist0000000000"), tokenstore.ErrNotFound)
		}},
		{"Delete/RemovesOnlyThatToken", func(t *testing.T, s tokenstore.Store) {
			a := save(t, s, userTok("amy", clientA, secretA, "acc-a", "ref-a"))
			b := save(t, s, userTok("ben", clientA, secretA, "acc-b", "ref-b"))
			if err := s.DeleteToken(ctxT(t), a.ID); err != nil {
				t.Fatal(err)
			}
			_, err := findByID(t, s, a.ID)
			wantErr(t, "deleted token by ID", err, tokenstore.ErrNotFound)
			_, err = find(t, s, &tokenstore.Token{UserName: "amy"})
			wantErr(t, "deleted token by user", err, tokenstore.ErrNotFound)
			_, err = find(t, s, &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref-a"})
			wantErr(t, "deleted token by refresh", err, tokenstore.ErrNotFound)
			mustFind(t, s, &tokenstore.Token{UserName: "ben"}, b.ID)
			wantErr(t, "second delete", s.DeleteToken(ctxT(t), a.ID), tokenstore.ErrNotFound)
		}},
		{"Delete/ThenSaveSameUser", func(t *testing.T, s tokenstore.Store) {
			a := save(t, s, userTok("cid", clientA, secretA, "acc-1", "ref-1"))
			if err := s.DeleteToken(ctxT(t), a.ID); err != nil {
				t.Fatal(err)
			}
			b := save(t, s, userTok("cid", clientA, secretA, "acc-2", "ref-1"))
			got := mustFind(t, s, &tokenstore.Token{UserName: "cid"}, b.ID)
			if got.AccessToken != "acc-2" || count(t, s) != 1 {
				t.Fatalf("re-saved token: %#v", got)
			}
		}},
		{"Tokens/EmptyStore", func(t *testing.T, s tokenstore.Store) {
			all, err := s.Tokens(ctxT(t))
			if err != nil || len(all) != 0 {
				t.Fatalf("Tokens on an empty store = %d, %v", len(all), err)
			}
		}},
		{"Tokens/ListsEveryTokenAsCopies", func(t *testing.T, s tokenstore.Store) {
			want := map[string]string{}
			for i := range 25 {
				u := fmt.Sprintf("list-%02d", i)
				want[save(t, s, userTok(u, clientA, secretA, "acc-"+u, "ref-"+u)).ID] = u
			}
			save(t, s, &tokenstore.Token{AccessToken: "keyless"}) // a token with no lookup key is listed too
			all, err := s.Tokens(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != 26 {
				t.Fatalf("Tokens returned %d, want 26", len(all))
			}
			for _, tok := range all {
				if u, ok := want[tok.ID]; ok && tok.UserName != u {
					t.Fatalf("token %q has user %q, want %q", tok.ID, tok.UserName, u)
				}
				tok.AccessToken = "tampered"
			}
			again, _ := s.Tokens(ctxT(t))
			for _, tok := range again {
				if tok.AccessToken == "tampered" {
					t.Fatalf("Tokens returned aliases of stored tokens")
				}
			}
		}},
		{"DeleteTokens/RemovesAllAndStoreStaysUsable", func(t *testing.T, s tokenstore.Store) {
			for i := range 5 {
				save(t, s, userTok(fmt.Sprintf("del-%d", i), clientA, secretA, fmt.Sprintf("a%d", i), fmt.Sprintf("r%d", i)))
			}
			if err := s.DeleteTokens(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			if n := count(t, s); n != 0 {
				t.Fatalf("%d tokens after DeleteTokens", n)
			}
			_, err := find(t, s, &tokenstore.Token{UserName: "del-1"})
			wantErr(t, "find after DeleteTokens", err, tokenstore.ErrNotFound)
			a := save(t, s, userTok("del-1", clientA, secretA, "a-new", "r-new"))
			mustFind(t, s, &tokenstore.Token{UserName: "del-1"}, a.ID)
		}},
		// --- concurrency ---
		{"Concurrency/SixteenSaversOneUser", func(t *testing.T, s tokenstore.Store) {
			ids := make([]string, 16)
			errs := make([]error, 16)
			var wg sync.WaitGroup
			for i := range 16 {
				wg.Go(func() {
					tok := userTok("racer", clientA, secretA, fmt.Sprintf("acc-%d", i), "ref-racer")
					errs[i] = s.SaveToken(ctxT(t), tok)
					ids[i] = tok.ID
				})
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("saver %d: %v", i, err)
				}
				if ids[i] != ids[0] {
					t.Fatalf("savers got different records: %q and %q", ids[0], ids[i])
				}
			}
			all, _ := s.Tokens(ctxT(t))
			if len(all) != 1 {
				t.Fatalf("%d records for one user, want 1", len(all))
			}
		}},
		{"Concurrency/SixteenSaversDistinctUsers", func(t *testing.T, s tokenstore.Store) {
			var wg sync.WaitGroup
			errs := make([]error, 16)
			for i := range 16 {
				wg.Go(func() {
					errs[i] = s.SaveToken(ctxT(t), userTok(fmt.Sprintf("par-%d", i), clientA, secretA, fmt.Sprintf("a-%d", i), fmt.Sprintf("r-%d", i)))
				})
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("saver %d: %v", i, err)
				}
			}
			if n := count(t, s); n != 16 {
				t.Fatalf("%d records, want 16", n)
			}
			for i := range 16 {
				if _, err := find(t, s, &tokenstore.Token{UserName: fmt.Sprintf("par-%d", i)}); err != nil {
					t.Fatalf("user par-%d lost: %v", i, err)
				}
			}
		}},
		// --- values ---
		{"Values/InvalidUTF8IsRejectedAndStoresNothing", func(t *testing.T, s tokenstore.Store) {
			for _, tok := range []*tokenstore.Token{
				{UserName: "bad\xff\xfe", AccessToken: "acc"},
				{UserName: "fine", ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref\xc3"},
				{UserName: "fine", AccessToken: "acc", APIDomain: "https://\xffexample.com"},
			} {
				wantErr(t, "SaveToken with invalid UTF-8", s.SaveToken(ctxT(t), tok), tokenstore.ErrInvalidToken)
			}
			_, err := s.FindToken(ctxT(t), &tokenstore.Token{UserName: "bad\xff\xfe"})
			wantErr(t, "FindToken with invalid UTF-8", err, tokenstore.ErrInvalidToken)
			if n := count(t, s); n != 0 {
				t.Fatalf("%d tokens stored, want 0", n)
			}
		}},
		{"Values/UnicodeUserName", func(t *testing.T, s tokenstore.Store) {
			for _, u := range []string{"Zoë Ångström", "東京太郎", "🚀 rocket", "名前@例え.jp"} {
				a := save(t, s, userTok(u, clientA, secretA, "acc-"+u, "ref-"+u))
				got := mustFind(t, s, &tokenstore.Token{UserName: u}, a.ID)
				if got.UserName != u {
					t.Fatalf("user name %q came back as %q", u, got.UserName)
				}
			}
		}},
		{"Values/NearSixtyKilobytes", func(t *testing.T, s tokenstore.Store) {
			big := strings.Repeat("A", 60_000)
			a := save(t, s, &tokenstore.Token{UserName: "big", AccessToken: big})
			got, err := findByID(t, s, a.ID)
			if err != nil || got.AccessToken != big {
				t.Fatalf("60 KB access token did not round-trip (%v)", err)
			}
		}},
		{"Values/OverLimitIsRejectedAndStoresNothing", func(t *testing.T, s tokenstore.Store) {
			err := s.SaveToken(ctxT(t), &tokenstore.Token{UserName: "huge", AccessToken: strings.Repeat("A", tokenstore.MaxDocumentSize)})
			wantErr(t, "document over the limit", err, tokenstore.ErrTooLarge)
			wantErr(t, "document over the limit", err, tokenstore.ErrInvalidToken)
			if n := count(t, s); n != 0 {
				t.Fatalf("%d tokens stored, want 0", n)
			}
		}},
		// --- ImportToken (stores that implement tokenstore.Importer) ---
		{"Import/KeepsIDAndValues", func(t *testing.T, s tokenstore.Store) {
			imp := importer(t, s)
			in := &tokenstore.Token{ID: "imported-0001", UserName: "ivy", ClientID: clientA, ClientSecret: secretA,
				RefreshToken: "ref-ivy", AccessToken: "acc-ivy", GrantToken: "grant-ivy",
				Expiry: time.Date(2030, 1, 2, 3, 4, 5, 6_000_000, time.UTC), RedirectURL: "https://app/cb", APIDomain: "https://api"}
			if err := imp.ImportToken(ctxT(t), in.Clone()); err != nil {
				t.Fatal(err)
			}
			got, err := findByID(t, s, in.ID)
			if err != nil || got.String() != in.String() || got.RefreshToken != in.RefreshToken || got.AccessToken != in.AccessToken || got.GrantToken != in.GrantToken || got.ClientSecret != in.ClientSecret {
				t.Fatalf("imported token read back as %v (%v), want %v", got, err, in)
			}
			mustFind(t, s, &tokenstore.Token{UserName: "ivy"}, in.ID)
			mustFind(t, s, &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref-ivy"}, in.ID)
			if err := imp.ImportToken(ctxT(t), in.Clone()); err != nil || count(t, s) != 1 {
				t.Fatalf("importing the same token again: %v, %d tokens", err, count(t, s))
			}
		}},
		{"Import/ReplacesExactly", func(t *testing.T, s tokenstore.Store) {
			imp := importer(t, s)
			a := save(t, s, userTok("jon", clientA, secretA, "acc-1", "ref-1"))
			repl := &tokenstore.Token{ID: a.ID, UserName: "jon", ClientID: clientA, AccessToken: "acc-2"}
			if err := imp.ImportToken(ctxT(t), repl); err != nil {
				t.Fatal(err)
			}
			got, err := findByID(t, s, a.ID)
			if err != nil || got.RefreshToken != "" || got.ClientSecret != "" || got.AccessToken != "acc-2" {
				t.Fatalf("import over a record must replace every field: %v (%v)", got, err)
			}
			_, err = find(t, s, &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref-1"})
			wantErr(t, "the replaced refresh token", err, tokenstore.ErrNotFound)
		}},
		{"Import/ConflictChangesNothing", func(t *testing.T, s tokenstore.Store) {
			imp := importer(t, s)
			a := save(t, s, userTok("kim", clientA, secretA, "acc-1", "ref-1"))
			err := imp.ImportToken(ctxT(t), &tokenstore.Token{ID: "other-id", UserName: "kim", ClientID: clientA, AccessToken: "acc-x"})
			wantErr(t, "import of another record with the same user", err, tokenstore.ErrConflict)
			if n := count(t, s); n != 1 {
				t.Fatalf("%d tokens after the rejected import", n)
			}
			mustFind(t, s, &tokenstore.Token{UserName: "kim"}, a.ID)
			_, err = findByID(t, s, "other-id")
			wantErr(t, "the rejected import", err, tokenstore.ErrNotFound)
		}},
		{"Import/NeedsAValidID", func(t *testing.T, s tokenstore.Store) {
			imp := importer(t, s)
			for _, id := range []string{"", "a/b"} {
				err := imp.ImportToken(ctxT(t), &tokenstore.Token{ID: id, UserName: "lou", AccessToken: "acc"})
				wantErr(t, fmt.Sprintf("import with id %q", id), err, tokenstore.ErrInvalidID)
			}
		}},
		{"Values/SecretsNeverPrinted", func(t *testing.T, s tokenstore.Store) {
			in := userTok("printer", clientA, "cs-SECRET-1", "at-SECRET-2", "rt-SECRET-3")
			in.GrantToken = "gt-SECRET-4"
			save(t, s, in)
			got := mustFind(t, s, &tokenstore.Token{UserName: "printer"}, in.ID)
			for _, out := range []string{fmt.Sprint(got), fmt.Sprintf("%+v %#v %v %s", got, got, *got, got), got.String()} {
				if strings.Contains(out, "SECRET") {
					t.Fatalf("formatted token leaks a secret: %s", out)
				}
			}
			_, err := find(t, s, &tokenstore.Token{ClientID: clientA, ClientSecret: "cs-SECRET-1", RefreshToken: "rt-SECRET-unknown"})
			if err == nil || strings.Contains(err.Error(), "SECRET") {
				t.Fatalf("error leaks a secret or is nil: %v", err)
			}
		}},
		// --- context ---
		{"Context/CanceledContextFailsEveryMethod", func(t *testing.T, s tokenstore.Store) {
			a := save(t, s, userTok("ctx", clientA, secretA, "acc", "ref"))
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			checks := map[string]error{}
			_, checks["FindToken"] = s.FindToken(ctx, &tokenstore.Token{UserName: "ctx"})
			_, checks["FindTokenByID"] = s.FindTokenByID(ctx, a.ID)
			checks["SaveToken"] = s.SaveToken(ctx, userTok("ctx2", clientA, secretA, "acc2", "ref2"))
			checks["DeleteToken"] = s.DeleteToken(ctx, a.ID)
			_, checks["Tokens"] = s.Tokens(ctx)
			checks["DeleteTokens"] = s.DeleteTokens(ctx)
			for name, err := range checks {
				wantErr(t, name+" with a canceled context", err, context.Canceled)
			}
			if n := count(t, s); n != 1 {
				t.Fatalf("%d tokens after canceled calls, want 1", n)
			}
		}},
	}
}
