package casstore_test

import (
	"fmt"
	"testing"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/index"
)

// legacyStore writes, by hand, what the first version of this package
// left with WithIndexShards(n): format-1 shards routed by FixedRoute, and
// token documents without generations.
func legacyStore(t *testing.T, b *casstore.MemoryBackend, n, tokens int) []*tokenstore.Token {
	t.Helper()
	shards := make([]*index.Bucket, n)
	for i := range shards {
		shards[i] = index.NewFixedShard(i, n)
	}
	var out []*tokenstore.Token
	for i := range tokens {
		tok := zohoToken(i)
		tok.ID = tokenstore.NewID()
		doc, err := tokenstore.MarshalDocument(tok)
		if err != nil {
			t.Fatal(err)
		}
		b.Put(casstore.TokenName(tok.ID), doc)
		for _, k := range index.KeysOf(tok) {
			shards[index.FixedRoute(k, n)].Put(k, tok.ID, 0)
		}
		out = append(out, tok)
	}
	for i, sh := range shards {
		doc, err := sh.Encode()
		if err != nil {
			t.Fatal(err)
		}
		b.Put(casstore.IndexName(i), doc)
	}
	return out
}

// A store made by the first version keeps working: lookups, listing,
// updates, rotations, inserts and deletes, in its fixed layout; with one
// shard, its first write makes the index one that grows; with a power of
// two, Migrate moves it in place.
func TestLegacyLayouts(t *testing.T) {
	for _, n := range []int{1, 4, 6} {
		t.Run(fmt.Sprint("shards=", n), func(t *testing.T) {
			ctx := t.Context()
			b := casstore.NewMemoryBackend()
			toks := legacyStore(t, b, n, 40)
			s := casstore.New(b, crashOptions(1))
			if rep := mustCheck(t, s); !rep.OK() || rep.Tokens != 40 || rep.Layout != "fixed" {
				t.Fatalf("the legacy store as read: %s", rep)
			}
			for _, tok := range toks[:5] {
				got, err := s.FindToken(ctx, &tokenstore.Token{UserName: tok.UserName})
				if err != nil || got.ID != tok.ID {
					t.Fatalf("FindToken(%s): %v %v", tok.UserName, got, err)
				}
			}
			rotated := &tokenstore.Token{ID: toks[1].ID, RefreshToken: "rotated", AccessToken: "a2"}
			if err := s.SaveToken(ctx, rotated); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteToken(ctx, toks[2].ID); err != nil {
				t.Fatal(err)
			}
			for i := 100; i < 110; i++ {
				if err := s.SaveToken(ctx, zohoToken(i)); err != nil {
					t.Fatal(err)
				}
			}
			other := casstore.New(b, crashOptions(1))
			if got, err := other.FindToken(ctx, &tokenstore.Token{ClientID: "cid", ClientSecret: "cs", RefreshToken: "rotated"}); err != nil || got.ID != toks[1].ID {
				t.Fatalf("rotated refresh token: %v %v", got, err)
			}
			if rep := mustCheck(t, other); !rep.OK() || rep.Tokens != 49 {
				t.Fatalf("after writes: %s", rep)
			}
			migrated, err := other.Migrate(ctx)
			switch {
			case n == 6:
				if err == nil {
					t.Fatal("Migrate of 6 fixed shards must be refused")
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			rep := mustCheck(t, casstore.New(b, crashOptions(1)))
			if !rep.OK() || rep.Layout != "linear" || rep.Tokens != 49 {
				t.Fatalf("after Migrate (%v): %s", migrated, rep)
			}
			for i := 200; i < 400; i++ {
				if err := s.SaveToken(ctx, zohoToken(i)); err != nil {
					t.Fatal(err)
				}
			}
			if rep := mustCheck(t, other); !rep.OK() || rep.Buckets <= n {
				t.Fatalf("the migrated index did not grow: %s", rep)
			}
		})
	}
}
