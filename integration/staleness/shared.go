package staleness

import (
	"testing"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/tokenstoretest"
)

// Wrapper is the type of the adapters' WithBackendWrapper argument.
type Wrapper = func(casstore.Backend) casstore.Backend

// RunShared runs the conformance cases for two stores
// (tokenstoretest.RunShared) with tokenstoretest.WithVisibilityLag(Lag).
// newPair opens the two stores on one new prefix and passes wrap to both
// through WithBackendWrapper: a new [Layer] per case, shared by the pair.
// RunShared fails t if the layers served no stale read over all the
// cases, which would mean the stores ran without staleness.
func RunShared(t *testing.T, newPair func(t *testing.T, wrap Wrapper) (a, b tokenstore.Store)) {
	t.Helper()
	staleReads := 0
	tokenstoretest.RunShared(t, func(t *testing.T) (a, b tokenstore.Store) {
		layer := &Layer{}
		t.Cleanup(func() { staleReads += layer.StaleReads() })
		return newPair(t, layer.Wrap)
	}, tokenstoretest.WithVisibilityLag(Lag))
	t.Logf("staleness: %d stale reads served over the shared cases", staleReads)
	if staleReads == 0 {
		t.Error("staleness: no stale read was served: the cases ran without staleness")
	}
}
