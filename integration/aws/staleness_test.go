package aws

import (
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/awssm"
	"github.com/cloudtokens/cloudtokens/integration/backend"
	"github.com/cloudtokens/cloudtokens/integration/staleness"
	"github.com/cloudtokens/cloudtokens/integration/stress"
	"github.com/cloudtokens/cloudtokens/tokensource/tokensourcetest"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// TestStressUnderLag runs the cross-process stress workload (4 processes
// × 16 goroutines) with every process's reads lagging its writes by 2 s
// (package staleness). Nothing acknowledged may be lost or duplicated,
// the index must match the secrets, and tokenstore.ErrConflict is the
// only error allowed to reach a caller. 128 users; 500 with
// CLOUDTOKENS_STALENESS_LONG=1. WithForceDelete: see
// TestConformanceSharedUnderLag.
func TestStressUnderLag(t *testing.T) {
	if testing.Short() && !backend.InCI() {
		t.Skip("-short")
	}
	stress.Run(t, staleness.StressConfig(stress.Config{Timeout: 8 * time.Minute}), func(tb testing.TB, o stress.StoreOptions) stress.Store {
		s, err := awssm.New(tb.Context(), stressClient(tb), "cloudtokens-it/"+o.Prefix, awssm.WithForceDelete(),
			awssm.WithBackendWrapper(staleness.ProcessLayer(tb, o.Worker).Wrap))
		if err != nil {
			tb.Fatal(err)
		}
		return s
	})
}

// TestTokenSourceUnderLag: 8 processes hit one expired token while every
// process's reads lag its writes by 2 s (package staleness); see
// tokensourcetest's "Eventual consistency" for what is asserted: one
// refresh at the provider, no refresh token reuse, every child a token
// the store held and the provider accepts.
func TestTokenSourceUnderLag(t *testing.T) {
	res := tokensourcetest.Run(t, staleness.TokenSourceConfig(tokensourcetest.Config{Processes: 8}), func(tb testing.TB, o tokensourcetest.StoreOptions) tokenstore.Store {
		s, err := awssm.New(tb.Context(), backend.SecretsManager(tb), o.Prefix, awssm.WithForceDelete(),
			awssm.WithBackendWrapper((&staleness.Layer{}).Wrap))
		if err != nil {
			tb.Fatal(err)
		}
		return s
	})
	staleness.LogTokenSource(t, res)
}
