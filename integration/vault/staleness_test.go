package vault_test

import (
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/cloudtokens/cloudtokens/integration/backend"
	"github.com/cloudtokens/cloudtokens/integration/staleness"
	"github.com/cloudtokens/cloudtokens/integration/stress"
	"github.com/cloudtokens/cloudtokens/tokensource/tokensourcetest"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	ctvault "github.com/cloudtokens/cloudtokens/vault"
)

// TestStressUnderLag runs the cross-process stress workload (4 processes
// × 16 goroutines) with reads that lag writes by 2 s, as a performance
// standby may serve them: every process reads through a
// staleness.VaultStandby (half of the reads of an entry written in the
// last 2 s, by any process, answer the version before) over a stale
// layer (every read of an entry this process wrote in the last 2 s does). Nothing
// acknowledged may be lost or duplicated, the index must match the
// entries, and tokenstore.ErrConflict is the only error allowed to reach
// a caller. 128 users; 500 with CLOUDTOKENS_STALENESS_LONG=1.
func TestStressUnderLag(t *testing.T) {
	if testing.Short() && !backend.InCI() {
		t.Skip("-short")
	}
	stress.Run(t, staleness.StressConfig(stress.Config{}), func(tb testing.TB, o stress.StoreOptions) stress.Store {
		s, err := ctvault.New(tb.Context(), standbyClient(tb, o.Worker), "cloudtokens-stress/"+o.Prefix,
			ctvault.WithBackendWrapper(staleness.ProcessLayer(tb, o.Worker).Wrap))
		if err != nil {
			tb.Fatal(err)
		}
		return s
	})
}

// TestTokenSourceUnderLag: 8 processes hit one expired token while reads
// lag writes by 2 s, as in TestStressUnderLag: a child may read the token
// from before the expiry mark, a waiter may read the token from before the
// holder's lease or save. See tokensourcetest's "Eventual consistency" for
// what is asserted.
func TestTokenSourceUnderLag(t *testing.T) {
	res := tokensourcetest.Run(t, staleness.TokenSourceConfig(tokensourcetest.Config{Processes: 8}), func(tb testing.TB, o tokensourcetest.StoreOptions) tokenstore.Store {
		s, err := ctvault.New(tb.Context(), standbyClient(tb, o.Worker), o.Prefix, ctvault.WithBackendWrapper((&staleness.Layer{}).Wrap))
		if err != nil {
			tb.Fatal(err)
		}
		return s
	})
	staleness.LogTokenSource(t, res)
}

// standbyClient is a client whose KV reads go through a
// staleness.VaultStandby with probability 1/2, seeded per process; a
// child logs how many reads it answered stale.
func standbyClient(tb testing.TB, worker int) *api.Client {
	c, standby := staleness.VaultStandbyClient(tb, 0.5, uint64(worker+2))
	if worker >= 0 {
		tb.Cleanup(func() {
			staleness.LogServed(tb, worker, standby.StaleReads(), "the Vault standby")
		})
	}
	return c
}
