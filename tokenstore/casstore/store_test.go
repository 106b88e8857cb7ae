package casstore_test

import (
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
