package vault_test

import (
	"testing"

	"github.com/cloudtokens/cloudtokens/integration/backend"
	"github.com/cloudtokens/cloudtokens/integration/staleness"
	"github.com/cloudtokens/cloudtokens/integration/stress"
	"github.com/cloudtokens/cloudtokens/tokensource/tokensourcetest"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	ctvault "github.com/cloudtokens/cloudtokens/vault"
)

// TestStressUnderLag runs the cross-process stress workload (4 processes
// × 16 goroutines) with every process's reads lagging its writes by 2 s
// (package staleness), as a performance standby may serve them. Nothing
// acknowledged may be lost or duplicated, the index must match the
// entries, and tokenstore.ErrConflict is the only error allowed to reach
// a caller. 128 users; 500 with CLOUDTOKENS_STALENESS_LONG=1.
func TestStressUnderLag(t *testing.T) {
	if testing.Short() && !backend.InCI() {
		t.Skip("-short")
	}
	stress.Run(t, staleness.StressConfig(stress.Config{}), func(tb testing.TB, o stress.StoreOptions) stress.Store {
		s, err := ctvault.New(tb.Context(), backend.VaultClient(tb), "cloudtokens-stress/"+o.Prefix,
			ctvault.WithBackendWrapper(staleness.ProcessLayer(tb, o.Worker).Wrap))
		if err != nil {
			tb.Fatal(err)
		}
		return s
	})
}

// TestTokenSourceUnderLag: 8 processes hit one expired token while every
// process's reads lag its writes by 2 s (package staleness); see
// tokensourcetest's "Eventual consistency" for what is asserted.
func TestTokenSourceUnderLag(t *testing.T) {
	res := tokensourcetest.Run(t, staleness.TokenSourceConfig(tokensourcetest.Config{Processes: 8}), func(tb testing.TB, o tokensourcetest.StoreOptions) tokenstore.Store {
		s, err := ctvault.New(tb.Context(), backend.VaultClient(tb), o.Prefix, ctvault.WithBackendWrapper((&staleness.Layer{}).Wrap))
		if err != nil {
			tb.Fatal(err)
		}
		return s
	})
	staleness.LogTokenSource(t, res)
}
