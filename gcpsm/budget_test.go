package gcpsm_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/gcpsm"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// want is an expected call count per RPC.
type want map[string]int

const (
	access  = "AccessSecretVersion"
	get     = "GetSecret"
	add     = "AddSecretVersion"
	update  = "UpdateSecret"
	destroy = "DestroySecretVersion"
	create  = "CreateSecret"
	del     = "DeleteSecret"
	list    = "ListSecrets"
)

// The cost of one compare-and-swap Update of a document (see
// backend.Update): known is a write by the store that wrote (or read the
// etag of) the secret last, steady state: AddSecretVersion, UpdateSecret
// (current and previous aliases) and DestroySecretVersion of the version
// previous named before. cold reads the etag first. A secret's first
// update has no version to destroy yet.
func known() want      { return want{add: 1, update: 1, destroy: 1} }
func cold() want       { return plus(want{get: 1}, known()) }
func firstKnown() want { return want{add: 1, update: 1} }

func plus(ws ...want) want {
	out := want{}
	for _, w := range ws {
		for k, v := range w {
			out[k] += v
		}
	}
	return out
}

func countsOf(calls []call) want {
	out := want{}
	for _, c := range calls {
		out[c.Method]++
	}
	return out
}

// TestCallBudgets measures every operation at the transport and asserts
// its exact cost; the README table is this test's log (go test -v -run
// TestCallBudgets).
func TestCallBudgets(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	prefix := newPrefix()
	s := e.store(t, prefix)

	var table []string
	// measure asserts the exact cost of an operation (one index shard, the
	// default, so every key of a token routes to it).
	measure := func(op string, expect want, fn func() error) []call {
		t.Helper()
		e.rec.take()
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		calls := e.rec.take()
		table = append(table, fmt.Sprintf("| %s | %d | %s |", op, len(calls), summary(calls)))
		if got := countsOf(calls); !maps.Equal(got, expect) {
			t.Errorf("%s: calls = {%s}, want exactly %v", op, summary(calls), expect)
		}
		return calls
	}
	// createDoc is the cost of creating a document: the secret, its first
	// version, and the current alias.
	createDoc := want{create: 1, add: 1, update: 1}

	alice, bob, carol := tok("alice"), tok("bob"), tok("carol")
	// An insert: a lookup (the index shard), the token secret, then one
	// write of the shard it read, without reading it again.
	// The index is missing: its alias read and the check of version 1,
	// then one ListSecrets to make sure it was not lost (token secrets
	// without an index are rebuilt first).
	measure("SaveToken new, first token of the store (creates the index secret)",
		plus(want{access: 2, list: 1}, createDoc, createDoc),
		func() error { return s.SaveToken(ctx, alice) })
	measure("SaveToken new, the index's first update (no version to destroy yet)", plus(want{access: 1}, createDoc, firstKnown()),
		func() error { return s.SaveToken(ctx, bob) })
	measure("SaveToken new (the store wrote the index last)", plus(want{access: 1}, createDoc, known()),
		func() error { return s.SaveToken(ctx, carol) })

	calls := measure("FindTokenByID", want{access: 1}, func() error {
		_, err := s.FindTokenByID(ctx, alice.ID)
		return err
	})
	if calls[0].Resource != secretPath(s.SecretID(alice.ID))+"/versions/"+gcpsm.CurrentAlias {
		t.Errorf("FindTokenByID accessed %s", calls[0].Resource)
	}
	measure("FindTokenByID of a missing token", want{access: 2}, func() error {
		if _, err := s.FindTokenByID(ctx, "missing"); !errors.Is(err, tokenstore.ErrNotFound) {
			return fmt.Errorf("FindTokenByID(missing) = %v", err)
		}
		return nil
	})
	queries := []struct {
		op string
		q  *tokenstore.Token
	}{
		{"FindToken by user name (cold)", &tokenstore.Token{UserName: "alice"}},
		{"FindToken by grant token (cold)", &tokenstore.Token{ClientID: "client-1", ClientSecret: "x", GrantToken: alice.GrantToken}},
		{"FindToken by refresh token (cold)", &tokenstore.Token{ClientID: "client-1", ClientSecret: "x", RefreshToken: alice.RefreshToken}},
	}
	for _, q := range queries {
		measure(q.op, want{access: 2}, func() error {
			got, err := s.FindToken(ctx, q.q)
			if err == nil && got.ID != alice.ID {
				err = fmt.Errorf("found %s, want %s", got.ID, alice.ID)
			}
			return err
		})
	}
	// The access key first (only records without grant and refresh token
	// have it), then a scan: the index and every token.
	measure("FindToken by access token (scan: index + every token)", want{access: 5}, func() error {
		_, err := s.FindToken(ctx, &tokenstore.Token{AccessToken: bob.AccessToken})
		return err
	})

	// A refresh writes the token's own secret and nothing else. The store
	// wrote alice (the insert), so it knows the version to swap from and
	// the secret's etag: no read at all.
	refresh := func(n int) *tokenstore.Token {
		return &tokenstore.Token{ID: alice.ID, AccessToken: fmt.Sprintf("access-VALUE-%d", n), Expiry: time.Now().Add(2 * time.Hour)}
	}
	measure("SaveToken refresh by ID, the token's first refresh (no version to destroy yet)", firstKnown(),
		func() error { return s.SaveToken(ctx, refresh(1)) })
	calls = measure("SaveToken refresh by ID, by the store that wrote the token last (steady state)", known(),
		func() error { return s.SaveToken(ctx, refresh(2)) })
	own := secretPath(s.SecretID(alice.ID))
	for _, c := range calls {
		if !strings.HasPrefix(c.Resource, own) {
			t.Errorf("refresh touched %s (%s), want only %s", c.Resource, c.Method, own)
		}
	}
	// A store that has not seen the token (another process) reads the
	// token and the secret's etag first.
	measure("SaveToken refresh by ID, from a store that has not read the token", plus(want{access: 1}, cold()),
		func() error { return e.store(t, prefix).SaveToken(ctx, refresh(3)) })
	// s's etag is now outdated: the lookup reads the new version, so the
	// write reads the etag first.
	measure("SaveToken refresh by user name (no ID), after another process wrote the token", plus(want{access: 2}, cold()), func() error {
		return s.SaveToken(ctx, &tokenstore.Token{UserName: "alice", AccessToken: "access-VALUE-newer"})
	})
	// Claim the new key (a write of the shard from the version this store
	// last wrote: a guess, which a failed write would correct), swap the
	// token, release the old key (a write from the version the claim left).
	measure("SaveToken rotating the refresh token (index changes)",
		plus(known(), known(), known()), func() error {
			return s.SaveToken(ctx, &tokenstore.Token{ID: alice.ID, RefreshToken: "refresh-VALUE-rotated"})
		})
	measure("Tokens (3 tokens)", want{access: 4}, func() error {
		all, err := s.Tokens(ctx)
		if err == nil && len(all) != 3 {
			err = fmt.Errorf("%d tokens", len(all))
		}
		return err
	})
	// The lease destroys the previous version (see LeaseVersion) and
	// checks by number that no newer version exists.
	measure("AcquireLease (the store wrote the token last)", want{destroy: 1, access: 1}, func() error {
		ok, err := s.AcquireLease(ctx, alice.ID, "holder-1", time.Minute)
		if err == nil && !ok {
			err = errors.New("lease not acquired")
		}
		return err
	})
	other := e.store(t, prefix)
	refused := func() error {
		ok, err := other.AcquireLease(ctx, alice.ID, "holder-2", time.Minute)
		if err == nil && ok {
			err = errors.New("a second holder got the lease")
		}
		return err
	}
	measure("AcquireLease while another process holds it (first call)", want{access: 1, get: 1, destroy: 1, "GetSecretVersion": 1}, refused)
	measure("AcquireLease while another process holds it (again: the lease is remembered)", want{access: 1}, refused)
	// Releasing writes the token again; the lease destroyed the version
	// that write would destroy.
	measure("ReleaseLease", plus(want{access: 1}, firstKnown()), func() error {
		return s.ReleaseLease(ctx, alice.ID, "holder-1")
	})

	// A warm, verified index cache answers from memory and reads the token.
	cached := e.store(t, prefix, gcpsm.WithIndexCache(true))
	measure("FindToken by user name, cache enabled, first lookup", want{access: 2}, func() error {
		_, err := cached.FindToken(ctx, &tokenstore.Token{UserName: "bob"})
		return err
	})
	measure("FindToken by user name (warm cache)", want{access: 1}, func() error {
		_, err := cached.FindToken(ctx, &tokenstore.Token{UserName: "alice"})
		return err
	})
	measure("FindToken by refresh token (warm cache)", want{access: 1}, func() error {
		_, err := cached.FindToken(ctx, &tokenstore.Token{ClientID: "client-1", ClientSecret: "x", RefreshToken: bob.RefreshToken})
		return err
	})
	// With the cache the lookup still reads the shard (a miss is never
	// trusted), and the index write starts from that read; this store
	// has not written the index, so it reads the etag.
	measure("SaveToken new, by a store that has not written the index", plus(want{access: 1}, createDoc, cold()),
		func() error { return cached.SaveToken(ctx, tok("dave")) })

	measure("Check (4 tokens)", want{list: 1, access: 5}, func() error {
		r, err := s.Check(ctx)
		if err == nil && (!r.OK() || r.Tokens != 4) {
			err = fmt.Errorf("check: %v", r)
		}
		return err
	})
	// Read the token, delete it, release its keys (the shard from the
	// version this store last saw; another store's write since costs the
	// GetSecret that learns its etag).
	measure("DeleteToken (another store wrote the index last)", plus(want{access: 1, del: 1}, cold()), func() error {
		return s.DeleteToken(ctx, bob.ID)
	})
	// The index, the secrets the project lists (an orphan too), each one
	// deleted, then the shard.
	measure("DeleteTokens (3 tokens)", plus(want{access: 1, list: 1, del: 3}, known()), func() error {
		return s.DeleteTokens(ctx)
	})

	t.Log("measured calls per operation:\n| Operation | Calls | RPCs |\n|---|---|---|\n" + strings.Join(table, "\n"))
}

// TestRefreshCostsThreeCalls: every refresh of a token by the store that
// wrote it last is exactly AddSecretVersion, UpdateSecret and
// DestroySecretVersion, on the token's own secret (after the first,
// which has nothing to destroy), and the secret never holds more than 2
// billed versions.
func TestRefreshCostsThreeCalls(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.store(t, newPrefix())
	tk := tok("erin")
	if err := s.SaveToken(ctx, tk); err != nil {
		t.Fatal(err)
	}
	id := s.SecretID(tk.ID)
	for i := range 100 {
		e.rec.take()
		if err := s.SaveToken(ctx, &tokenstore.Token{ID: tk.ID, AccessToken: fmt.Sprintf("access-VALUE-%d", i)}); err != nil {
			t.Fatalf("refresh %d: %v", i, err)
		}
		calls := e.rec.take()
		w := known()
		if i == 0 {
			w = firstKnown()
		}
		if got := countsOf(calls); !maps.Equal(got, w) {
			t.Fatalf("refresh %d: calls {%s}, want %v", i, summary(calls), w)
		}
		for _, c := range calls {
			if !strings.Contains(c.Resource, id) {
				t.Fatalf("refresh %d touched %s", i, c.Resource)
			}
		}
		if i%25 == 0 {
			if live := e.live(t, id); live > 2 {
				t.Fatalf("after refresh %d: %d billed versions", i, live)
			}
		}
	}
}

// TestTokensParallelBounded checks that Tokens reads the token secrets in
// parallel, never with more calls in flight than WithReadWorkers allows.
func TestTokensParallelBounded(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const workers, n = 4, 24
	s := e.store(t, newPrefix(), gcpsm.WithReadWorkers(workers))
	for i := range n {
		if err := s.SaveToken(ctx, tok(fmt.Sprintf("user-%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	// 24 saves within a second may have grown the index: Tokens reads
	// every bucket, then every token.
	rep, err := s.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.rec.accessDelay.Store(int64(20 * time.Millisecond))
	e.rec.take()
	e.rec.resetPeak()
	all, err := s.Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != n {
		t.Fatalf("Tokens returned %d tokens, want %d", len(all), n)
	}
	calls := e.rec.take()
	if got := countsOf(calls); !maps.Equal(got, want{access: rep.Buckets + n}) {
		t.Errorf("Tokens: calls {%s}, want %d AccessSecretVersion (%d buckets, %d tokens)", summary(calls), rep.Buckets+n, rep.Buckets, n)
	}
	peak := e.rec.peak(access)
	t.Logf("Tokens over %d tokens: %d calls, peak %d in flight (bound %d)", n, len(calls), peak, workers)
	if peak > workers {
		t.Errorf("peak concurrency %d exceeds the bound %d", peak, workers)
	}
	if peak < 2 {
		t.Errorf("peak concurrency %d: the reads did not run in parallel", peak)
	}
}
