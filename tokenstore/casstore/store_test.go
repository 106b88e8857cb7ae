package casstore_test

import (
	"fmt"
	"testing"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/tokenstoretest"
)

func TestConformance(t *testing.T) {
	for _, shards := range []int{1, 3} {
		t.Run(map[int]string{1: "OneShard", 3: "ThreeShards"}[shards], func(t *testing.T) {
			tokenstoretest.Run(t, func(t *testing.T) tokenstore.Store {
				return casstore.New(casstore.NewMemoryBackend(), casstore.Options{IndexShards: shards, CacheIndex: true})
			})
		})
	}
}

func TestShared(t *testing.T) {
	tokenstoretest.RunShared(t, func(t *testing.T) (tokenstore.Store, tokenstore.Store) {
		b := casstore.NewMemoryBackend()
		return casstore.New(b, casstore.Options{IndexShards: 2}), casstore.New(b, casstore.Options{IndexShards: 2, CacheIndex: true})
	})
}

// TestDeleteTokensDeletesEachDocumentOnce: a token's keys spread over
// several shards, but DeleteTokens deletes its document once and writes
// each shard once.
func TestDeleteTokensDeletesEachDocumentOnce(t *testing.T) {
	ctx := t.Context()
	b := casstore.NewMemoryBackend()
	s := casstore.New(b, casstore.Options{IndexShards: 8})
	for i := range 20 {
		tok := &tokenstore.Token{UserName: fmt.Sprint("user-", i), ClientID: "cid", ClientSecret: "cs",
			RefreshToken: fmt.Sprint("rt-", i), GrantToken: fmt.Sprint("gt-", i)}
		if err := s.SaveToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	b.ResetCalls()
	if err := s.DeleteTokens(ctx); err != nil {
		t.Fatal(err)
	}
	calls := b.Calls()
	if calls["Delete"] != 20 || calls["Update"] > 8 || calls["Read"] > 16 {
		t.Fatalf("DeleteTokens of 20 tokens over 8 shards made %v; want 20 Deletes, at most 8 Updates", calls)
	}
	if all, _ := s.Tokens(ctx); len(all) != 0 {
		t.Fatalf("%d tokens left", len(all))
	}
}
