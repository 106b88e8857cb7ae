package aws

import (
	"testing"

	"github.com/cloudtokens/cloudtokens/awssm"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/tokenstoretest"
)

// configs are the store configurations the conformance suite runs with.
var configs = []struct {
	name string
	opts []awssm.Option
}{
	{"default", nil},
	{"cache-3shards", []awssm.Option{awssm.WithIndexCache(true), awssm.WithIndexShards(3)}},
	{"force-delete", []awssm.Option{awssm.WithForceDelete()}},
}

func TestConformance(t *testing.T) {
	for _, c := range configs {
		t.Run(c.name, func(t *testing.T) {
			tokenstoretest.Run(t, func(t *testing.T) tokenstore.Store {
				return newStore(t, nil, c.opts...)
			})
		})
	}
}

// Two stores over one prefix, each with its own client, stand in for two
// processes.
func TestConformanceShared(t *testing.T) {
	for _, c := range configs {
		t.Run(c.name, func(t *testing.T) {
			tokenstoretest.RunShared(t, func(t *testing.T) (a, b tokenstore.Store) {
				prefix := uniquePrefix(t)
				return newStoreAt(t, client(t, nil), prefix, c.opts...), newStoreAt(t, client(t, nil), prefix, c.opts...)
			})
		})
	}
}
