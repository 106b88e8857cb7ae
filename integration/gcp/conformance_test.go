package gcp_test

import (
	"testing"

	"github.com/cloudtokens/cloudtokens/gcpsm"
	"github.com/cloudtokens/cloudtokens/gcpsm/gcpsmtest"
	"github.com/cloudtokens/cloudtokens/integration/staleness"
	"github.com/cloudtokens/cloudtokens/proctest"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// TestConformanceSharedUnderLag runs the two-store cases on an emulator
// whose alias reads, GetSecret and lists lag by up to 2 s, as Secret
// Manager documents (gcpsmtest.WithEventualConsistency), and with a
// stale layer (package staleness) under both stores, which makes every
// read of a document written in the last 2 s stale: the assertions wait
// for the other store's writes to become visible, the stores' own reads
// do not. Each store has its own connection.
func TestConformanceSharedUnderLag(t *testing.T) {
	srv := gcpsmtest.Start(t, gcpsmtest.WithEventualConsistency(staleness.Lag))
	staleness.RunShared(t, func(t *testing.T, wrap staleness.Wrapper) (a, b tokenstore.Store) {
		prefix := proctest.UniqueName("shared-")
		open := func(opts ...gcpsm.Option) tokenstore.Store {
			s, err := gcpsm.New(t.Context(), newClient(t, srv.Addr()), project, prefix, append(opts, gcpsm.WithBackendWrapper(wrap))...)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		return open(), open(gcpsm.WithIndexCache(true))
	})
}
