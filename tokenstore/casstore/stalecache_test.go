package casstore_test

import (
	"context"
	"testing"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// TestStaleCacheRelease: two processes (stores) share a backend, both with CacheIndex. Process A
// deletes a token that process B inserted after A last read the shard.
func TestStaleCacheRelease(t *testing.T) {
	ctx := context.Background()
	b := casstore.NewMemoryBackend()
	a := casstore.New(b, casstore.Options{CacheIndex: true})
	other := casstore.New(b, casstore.Options{CacheIndex: true})
	if err := a.SaveToken(ctx, &tokenstore.Token{UserName: "alice", AccessToken: "x"}); err != nil { // A caches shard 0
		t.Fatal(err)
	}
	bob := &tokenstore.Token{UserName: "bob", AccessToken: "y"}
	if err := other.SaveToken(ctx, bob); err != nil { // A's cached shard 0 is now stale
		t.Fatal(err)
	}
	if err := a.DeleteToken(ctx, bob.ID); err != nil {
		t.Fatal(err)
	}
	rep, err := a.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Errorf("after DeleteToken: %s", rep)
	}
}
