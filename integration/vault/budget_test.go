package vault_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	ctvault "github.com/cloudtokens/cloudtokens/vault"
)

const (
	clientA = "1000.CLIENTAAAAAAAAAAAAAAAAAAAAAAAA"
	secretA = "client-secret-a-0123456789"
)

func alice() *tokenstore.Token {
	return &tokenstore.Token{
		UserName: "alice@example.com", ClientID: clientA, ClientSecret: secretA,
		RefreshToken: "1000.refresh-alice", GrantToken: "1000.grant-alice", AccessToken: "1000.access-alice",
		Expiry: time.Now().Add(time.Hour).Truncate(time.Millisecond), APIDomain: "https://www.zohoapis.eu",
	}
}

// measured runs op, returns its calls and fails t on error.
func measured(t *testing.T, rec *recorder, op func(ctx context.Context) error) []call {
	t.Helper()
	rec.reset()
	if err := op(ctxT(t)); err != nil {
		t.Fatalf("operation failed: %v", err)
	}
	return rec.take()
}

// wantCalls fails t unless calls are exactly want ("METHOD path" with the
// prefix shown as <p>).
func wantCalls(t *testing.T, op string, calls []call, prefix string, want ...string) {
	t.Helper()
	got := paths(calls, prefix)
	if !slices.Equal(got, want) {
		t.Errorf("%s: %d calls\n  got  %q\n  want %q", op, len(got), got, want)
	}
	t.Logf("%-46s %d calls: %s", op, len(got), strings.Join(got, ", "))
}

// TestCallBudgets measures every operation at the HTTP transport and
// asserts the exact requests; the README's table is this test's output.
func TestCallBudgets(t *testing.T) {
	prefix := newPrefix(t)
	client, rec := newClient(t, "")
	ctx := ctxT(t)

	rec.reset()
	s, err := ctvault.New(ctx, client, prefix)
	if err != nil {
		t.Fatal(err)
	}
	wantCalls(t, "New", rec.take(), prefix, "GET sys/internal/ui/mounts/secret")

	const (
		idx     = "secret/data/<p>/index-0"
		idxMeta = "secret/metadata/<p>/index-0"
	)
	a := alice()
	calls := measured(t, rec, func(ctx context.Context) error { return s.SaveToken(ctx, a) })
	tok := "secret/data/<p>/token-" + a.ID
	tokMeta := "secret/metadata/<p>/token-" + a.ID
	// The lookup reads the index (none yet), a LIST makes sure it was not
	// lost, the claim creates the index, then the token entry is created.
	wantCalls(t, "SaveToken new (first token: creates the index)", calls, prefix,
		"GET "+idx, "LIST secret/metadata/<p>", "PUT "+idx, "PUT "+idxMeta, "PUT "+tok, "PUT "+tokMeta)

	b := &tokenstore.Token{UserName: "bob", AccessToken: "1000.access-bob"}
	calls = measured(t, rec, func(ctx context.Context) error { return s.SaveToken(ctx, b) })
	tokB := "secret/data/<p>/token-" + b.ID
	// The keys are claimed before the token entry is created.
	wantCalls(t, "SaveToken new", calls, prefix,
		"GET "+idx, "PUT "+idx, "PUT "+tokB, "PUT secret/metadata/<p>/token-"+b.ID)

	calls = measured(t, rec, func(ctx context.Context) error { _, err := s.FindTokenByID(ctx, a.ID); return err })
	wantCalls(t, "FindTokenByID", calls, prefix, "GET "+tok)

	for _, q := range []struct {
		name  string
		query *tokenstore.Token
	}{
		{"user name", &tokenstore.Token{UserName: a.UserName}},
		{"user name + client ID", &tokenstore.Token{UserName: a.UserName, ClientID: clientA}},
		{"refresh token", &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, RefreshToken: a.RefreshToken}},
		{"grant token", &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, GrantToken: a.GrantToken}},
	} {
		calls = measured(t, rec, func(ctx context.Context) error {
			got, err := s.FindToken(ctx, q.query)
			if err == nil && got.ID != a.ID {
				err = fmt.Errorf("found %s, want %s", got.ID, a.ID)
			}
			return err
		})
		wantCalls(t, "FindToken by "+q.name+" (cold)", calls, prefix, "GET "+idx, "GET "+tok)
	}

	calls = measured(t, rec, func(ctx context.Context) error {
		_, err := s.FindToken(ctx, &tokenstore.Token{AccessToken: b.AccessToken})
		return err
	})
	// bob has a user name, so his access token is not a key: the lookup of
	// the access key misses, then a scan reads the index and every token.
	if len(calls) != 4 || paths(calls, prefix)[0] != "GET "+idx || paths(calls, prefix)[1] != "GET "+idx {
		t.Errorf("FindToken by access token (scan of 2 tokens): %q", paths(calls, prefix))
	}
	t.Logf("%-46s %d calls: the access key's shard, then index shards + one GET per token", "FindToken by access token (2 tokens)", len(calls))

	// A refresh: access token and expiry only, by ID. Only the token's
	// own entry is written. The store has read the token, so it knows the
	// version to swap from: the PUT alone.
	calls = measured(t, rec, func(ctx context.Context) error {
		return s.SaveToken(ctx, &tokenstore.Token{ID: a.ID, AccessToken: "1000.access-alice-2", Expiry: time.Now().Add(2 * time.Hour)})
	})
	wantCalls(t, "SaveToken refresh by ID", calls, prefix, "PUT "+tok)
	for _, w := range writes(calls) {
		if w.Path != strings.ReplaceAll(tok, "<p>", prefix) {
			t.Errorf("a refresh wrote %s, want only the token's entry", w)
		}
	}
	// Another process has not read it: GET, then PUT with cas.
	other, err := ctvault.New(ctx, client, prefix)
	if err != nil {
		t.Fatal(err)
	}
	calls = measured(t, rec, func(ctx context.Context) error {
		return other.SaveToken(ctx, &tokenstore.Token{ID: a.ID, AccessToken: "1000.access-alice-2b", Expiry: time.Now().Add(2 * time.Hour)})
	})
	wantCalls(t, "SaveToken refresh by ID, token not read before", calls, prefix, "GET "+tok, "PUT "+tok)

	calls = measured(t, rec, func(ctx context.Context) error {
		return s.SaveToken(ctx, &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, RefreshToken: a.RefreshToken, AccessToken: "1000.access-alice-3"})
	})
	wantCalls(t, "SaveToken refresh by refresh token (cold)", calls, prefix, "GET "+idx, "GET "+tok, "PUT "+tok)

	calls = measured(t, rec, func(ctx context.Context) error {
		return s.SaveToken(ctx, &tokenstore.Token{UserName: a.UserName, AccessToken: "1000.access-alice-4"})
	})
	wantCalls(t, "SaveToken refresh by user name (cold)", calls, prefix, "GET "+idx, "GET "+tok, "PUT "+tok)

	calls = measured(t, rec, func(ctx context.Context) error {
		return s.SaveToken(ctx, &tokenstore.Token{ID: a.ID, RefreshToken: "1000.refresh-alice-rotated"})
	})
	// Claim the new key (the index from the version this store last wrote:
	// a guess, which a failed write would correct with a read), swap the
	// token (the version the last save left), release the old key (from
	// the index version the claim wrote).
	wantCalls(t, "SaveToken rotating the refresh token", calls, prefix,
		"PUT "+idx, "PUT "+tok, "PUT "+idx)

	calls = measured(t, rec, func(ctx context.Context) error {
		toks, err := s.Tokens(ctx)
		if err == nil && len(toks) != 2 {
			err = fmt.Errorf("%d tokens, want 2", len(toks))
		}
		return err
	})
	if got := paths(calls, prefix); len(got) != 3 || got[0] != "GET "+idx {
		t.Errorf("Tokens: %q", got)
	}
	t.Logf("%-46s %d calls: 1 GET per index shard + 1 GET per token", "Tokens (2 tokens, 1 shard)", len(calls))

	calls = measured(t, rec, func(ctx context.Context) error {
		r, err := s.Check(ctx)
		if err == nil && !r.OK() {
			err = fmt.Errorf("check: %v", r)
		}
		return err
	})
	if got := paths(calls, prefix); len(got) != 4 || got[0] != "LIST secret/metadata/<p>" || got[3] != "GET "+idx {
		t.Errorf("Check: %q", got)
	}
	t.Logf("%-46s %d calls: LIST + 1 GET per shard + 1 GET per token", "Check (2 tokens, 1 shard)", len(calls))

	calls = measured(t, rec, func(ctx context.Context) error { return s.DeleteToken(ctx, b.ID) })
	wantCalls(t, "DeleteToken", calls, prefix,
		"GET "+tokB, "GET "+tokB, "PUT "+tokB, "DELETE secret/metadata/<p>/token-"+b.ID, "PUT "+idx)

	calls = measured(t, rec, func(ctx context.Context) error { return s.DeleteTokens(ctx) })
	wantCalls(t, "DeleteTokens (1 token, 1 shard)", calls, prefix,
		"GET "+idx, "LIST secret/metadata/<p>", "GET "+tok, "PUT "+tok, "DELETE "+tokMeta, "PUT "+idx)
}

// The warm index cache answers a lookup with the token's entry alone.
func TestCallBudgetsWarmCache(t *testing.T) {
	prefix := newPrefix(t)
	w := newEnv(t, prefix)
	a := alice()
	mustSave(t, w.store, a)

	e := newEnv(t, prefix, ctvault.WithIndexCache(true))
	tok := "secret/data/<p>/token-" + a.ID
	idx := "secret/data/<p>/index-0"
	q := &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, RefreshToken: a.RefreshToken}
	calls := measured(t, e.rec, func(ctx context.Context) error { _, err := e.store.FindToken(ctx, q); return err })
	wantCalls(t, "FindToken by refresh token (cache cold)", calls, prefix, "GET "+idx, "GET "+tok)
	for _, q := range []*tokenstore.Token{
		q,
		{UserName: a.UserName},
		{ClientID: clientA, ClientSecret: secretA, GrantToken: a.GrantToken},
	} {
		calls = measured(t, e.rec, func(ctx context.Context) error { _, err := e.store.FindToken(ctx, q); return err })
		wantCalls(t, fmt.Sprintf("FindToken by %s (cache warm)", mustRule(t, q)), calls, prefix, "GET "+tok)
	}
	calls = measured(t, e.rec, func(ctx context.Context) error {
		return e.store.SaveToken(ctx, &tokenstore.Token{UserName: a.UserName, AccessToken: "1000.access-warm"})
	})
	wantCalls(t, "SaveToken refresh by user name (cache warm)", calls, prefix, "GET "+tok, "PUT "+tok)

	// A stale cache entry (the token was deleted through the other store)
	// costs the stale read, the index and no wrong answer.
	if err := w.store.DeleteToken(ctxT(t), a.ID); err != nil {
		t.Fatal(err)
	}
	e.rec.reset()
	_, err := e.store.FindToken(ctxT(t), &tokenstore.Token{UserName: a.UserName})
	if !errors.Is(err, tokenstore.ErrNotFound) {
		t.Fatalf("FindToken after delete through the other store: %v, want ErrNotFound", err)
	}
	wantCalls(t, "FindToken by user name (cache stale, deleted)", e.rec.take(), prefix, "GET "+tok, "GET "+idx)

	b := &tokenstore.Token{UserName: "bob", AccessToken: "1000.access-bob"}
	calls = measured(t, e.rec, func(ctx context.Context) error { return e.store.SaveToken(ctx, b) })
	wantCalls(t, "SaveToken new (cache warm)", calls, prefix,
		"GET "+idx, "PUT "+idx, "PUT secret/data/<p>/token-"+b.ID, "PUT secret/metadata/<p>/token-"+b.ID)
}

func mustRule(t *testing.T, q *tokenstore.Token) tokenstore.Rule {
	t.Helper()
	r, err := tokenstore.QueryRuleOf(q)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Tokens reads the token entries in parallel, never more than the
// configured number at once.
func TestTokensParallelBounded(t *testing.T) {
	prefix := newPrefix(t)
	w := newEnv(t, prefix, ctvault.WithIndexShards(2))
	const n = 40
	for i := range n {
		mustSave(t, w.store, &tokenstore.Token{UserName: fmt.Sprintf("user-%d", i), AccessToken: fmt.Sprintf("acc-%d", i)})
	}
	for _, workers := range []int{0, 1, 4} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			opts := []ctvault.Option{ctvault.WithIndexShards(2)}
			bound := ctvault.DefaultReadWorkers
			if workers > 0 {
				opts = append(opts, ctvault.WithReadWorkers(workers))
				bound = workers
			}
			e := newEnv(t, prefix, opts...)
			e.rec.setDelay(20 * time.Millisecond)
			calls := measured(t, e.rec, func(ctx context.Context) error {
				toks, err := e.store.Tokens(ctx)
				if err == nil && len(toks) != n {
					err = fmt.Errorf("%d tokens, want %d", len(toks), n)
				}
				return err
			})
			maxIn := e.rec.max()
			if len(calls) != 2+n {
				t.Errorf("Tokens: %d calls, want %d (2 shards + %d tokens)", len(calls), 2+n, n)
			}
			if maxIn > bound {
				t.Errorf("Tokens: %d requests in flight, the bound is %d", maxIn, bound)
			}
			if bound > 1 && maxIn < 2 {
				t.Errorf("Tokens: at most %d request in flight, want parallel reads (bound %d)", maxIn, bound)
			}
			t.Logf("Tokens of %d tokens: %d calls, at most %d in flight (bound %d)", n, len(calls), maxIn, bound)
		})
	}
}
