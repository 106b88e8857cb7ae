package aws

import (
	"testing"

	"github.com/cloudtokens/cloudtokens/awssm"
	"github.com/cloudtokens/cloudtokens/integration/staleness"
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

// TestConformanceSharedUnderLag runs the two-store cases with reads that
// lag writes by 2 s (package staleness): the assertions wait for the
// other store's writes to become visible, the stores' own reads do not.
//
// With WithForceDelete: moto_server applies PutSecretValue and
// UpdateSecretVersionStage to a secret scheduled for deletion, which AWS
// refuses with InvalidRequestException (awssm: tokenstore.ErrNotFound).
// A store that reads a token deleted by the other store stale would then
// write into the deleted secret and be told it succeeded. A forced
// delete removes the secret at once, and the write gets
// ResourceNotFoundException, the same ErrNotFound as on AWS.
func TestConformanceSharedUnderLag(t *testing.T) {
	staleness.RunShared(t, func(t *testing.T, wrap staleness.Wrapper) (a, b tokenstore.Store) {
		prefix := uniquePrefix(t)
		opts := []awssm.Option{awssm.WithBackendWrapper(wrap), awssm.WithForceDelete()}
		return newStoreAt(t, client(t, nil), prefix, opts...),
			newStoreAt(t, client(t, nil), prefix, append(opts, awssm.WithIndexCache(true))...)
	})
}
