package vault_test

import (
	"fmt"
	"math/bits"
	"strings"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/index"
	ctvault "github.com/cloudtokens/cloudtokens/vault"
)

// TestNewStoreFindsInThreeRequests: a process that knows nothing of the
// index layout (a cold start) finds a token by user name with 3 GETs
// (index-0, the key's bucket, the token) on a store that grew by itself
// with default options and stands in the middle of a round of splits:
// Vault has no write quota, so bucket 0 records the bucket count after
// every split, and no key is ever in a bucket it does not know of. The
// test stops right after a sign-up that split a bucket without writing
// index-0 for its own keys.
func TestNewStoreFindsInThreeRequests(t *testing.T) {
	ctx := ctxT(t)
	prefix := newPrefix(t)
	client, rec := newClient(t, "")
	s, err := ctvault.New(ctx, client, prefix)
	if err != nil {
		t.Fatal(err)
	}
	const workers, most = 16, 2000
	var toks []*tokenstore.Token
	buckets := func() int {
		rep, err := s.Check(ctx)
		if err != nil || !rep.OK() || rep.Tokens != len(toks) {
			t.Fatalf("Check: %v (%v), want %d tokens", rep, err, len(toks))
		}
		return rep.Buckets
	}
	// Sign-ups, 160 at a time, until at least 2 splits into a round.
	m := 1
	for len(toks) < most && (m < 4 || m-1<<(bits.Len(uint(m))-1) < 2) {
		start := len(toks)
		for i := start; i < start+10*workers; i++ {
			toks = append(toks, &tokenstore.Token{UserName: fmt.Sprintf("user-%d@example.com", i), ClientID: clientA, ClientSecret: secretA,
				RefreshToken: fmt.Sprintf("1000.refresh-%d", i), AccessToken: fmt.Sprintf("1000.access-%d", i)})
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(workers)
		for _, tk := range toks[start:] {
			g.Go(func() error { return s.SaveToken(gctx, tk) })
		}
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
		m = buckets()
	}
	// Then one at a time, until a sign-up splits a bucket without
	// writing index-0 for its keys: only the count's own write can then
	// have told index-0 of the last split.
	for n := 0; ; n++ {
		if n == 1000 {
			t.Fatalf("no split without a write of index-0 in %d sign-ups", n)
		}
		i := len(toks)
		tk := &tokenstore.Token{UserName: fmt.Sprintf("user-%d@example.com", i), ClientID: clientA, ClientSecret: secretA,
			RefreshToken: fmt.Sprintf("1000.refresh-%d", i), AccessToken: fmt.Sprintf("1000.access-%d", i)}
		if err := s.SaveToken(ctx, tk); err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tk)
		before := m
		for {
			if _, err := s.Backend().Read(ctx, casstore.IndexName(m)); err != nil {
				break
			}
			m++
		}
		elsewhere := m > before
		for _, k := range index.KeysOf(tk) {
			if k.Kind != index.KindID && index.LinearBucket(index.Hash(k), before) == 0 {
				elsewhere = false
			}
		}
		if elsewhere {
			break
		}
	}
	if got := buckets(); got != m {
		t.Fatalf("the index has %d buckets, counted %d", got, m)
	}
	obj, err := s.Backend().Read(ctx, casstore.IndexName(0))
	if err != nil {
		t.Fatal(err)
	}
	zero, err := index.Decode(obj.Value, 0)
	if err != nil {
		t.Fatal(err)
	}
	if zero.Buckets != m {
		t.Errorf("index-0 records %d buckets, the index has %d", zero.Buckets, m)
	}

	worst := 0
	for i, tk := range toks {
		if i%4 != 0 {
			continue
		}
		fresh, err := ctvault.New(ctx, client, prefix)
		if err != nil {
			t.Fatal(err)
		}
		rec.reset()
		got, err := fresh.FindToken(ctx, &tokenstore.Token{UserName: tk.UserName})
		if err != nil || got.ID != tk.ID {
			t.Fatalf("user %d: %v, %v", i, got, err)
		}
		calls := rec.take()
		worst = max(worst, len(calls))
		if len(calls) > 3 {
			var paths []string
			for _, c := range calls {
				paths = append(paths, c.String())
			}
			t.Errorf("user %d, found by a new Store: %d requests, want at most 3: %s", i, len(calls), strings.Join(paths, ", "))
		}
	}
	t.Logf("%d tokens, %d buckets, index-0 records %d: a new Store's find took at most %d requests", len(toks), m, zero.Buckets, worst)
}
