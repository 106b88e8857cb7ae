package vault_test

import (
	"testing"

	"github.com/cloudtokens/cloudtokens/integration/staleness"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/tokenstoretest"
	ctvault "github.com/cloudtokens/cloudtokens/vault"
)

func TestConformance(t *testing.T) {
	tokenstoretest.Run(t, func(t *testing.T) tokenstore.Store {
		return newEnv(t, "").store
	})
}

// Several index shards, the index cache and soft delete change the paths
// the engine and the backend take; the rules must not change.
func TestConformanceShardsCacheSoftDelete(t *testing.T) {
	tokenstoretest.Run(t, func(t *testing.T) tokenstore.Store {
		return newEnv(t, "", ctvault.WithIndexShards(3), ctvault.WithIndexCache(true), ctvault.WithSoftDelete(), ctvault.WithMaxVersions(2)).store
	})
}

func TestConformanceShared(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []ctvault.Option
	}{
		{"Default", nil},
		{"SoftDelete", []ctvault.Option{ctvault.WithSoftDelete()}},
		{"Shards", []ctvault.Option{ctvault.WithIndexShards(4)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tokenstoretest.RunShared(t, func(t *testing.T) (a, b tokenstore.Store) {
				prefix := newPrefix(t)
				a = newEnv(t, prefix, tc.opts...).store
				b = newEnv(t, prefix, append(tc.opts, ctvault.WithIndexCache(true))...).store
				return a, b
			})
		})
	}
}

// TestConformanceSharedUnderLag runs the two-store cases with reads that
// lag writes by 2 s (package staleness), as a performance standby may
// serve them: the assertions wait for the other store's writes to become
// visible, the stores' own reads do not.
func TestConformanceSharedUnderLag(t *testing.T) {
	staleness.RunShared(t, func(t *testing.T, wrap staleness.Wrapper) (a, b tokenstore.Store) {
		prefix := newPrefix(t)
		return newEnv(t, prefix, ctvault.WithBackendWrapper(wrap)).store,
			newEnv(t, prefix, ctvault.WithBackendWrapper(wrap), ctvault.WithIndexCache(true)).store
	})
}
