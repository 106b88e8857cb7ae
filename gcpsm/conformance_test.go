package gcpsm_test

import (
	"testing"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/tokenstoretest"
)

// TestConformance runs the tokenstore conformance suite against stores on
// the emulator, over TCP through the official client.
func TestConformance(t *testing.T) {
	e := newEnv(t)
	tokenstoretest.Run(t, func(t *testing.T) tokenstore.Store {
		return newStore(t, e.client, newPrefix())
	})
}

// TestConformanceShared runs the two-instance cases: each store has its
// own gRPC connection, standing in for two processes.
func TestConformanceShared(t *testing.T) {
	e := newEnv(t)
	tokenstoretest.RunShared(t, func(t *testing.T) (a, b tokenstore.Store) {
		prefix := newPrefix()
		other, _ := newRecordedClient(t, e.srv)
		return newStore(t, e.client, prefix), newStore(t, other, prefix)
	})
}

// TestConformanceCached runs the suite with the index cache enabled.
func TestConformanceCached(t *testing.T) {
	e := newEnv(t)
	tokenstoretest.Run(t, func(t *testing.T) tokenstore.Store {
		return newStore(t, e.client, newPrefix(), gcpsmWithCache())
	})
}
