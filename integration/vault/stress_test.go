package vault_test

import (
	"testing"

	"github.com/cloudtokens/cloudtokens/integration/backend"
	"github.com/cloudtokens/cloudtokens/integration/stress"
	ctvault "github.com/cloudtokens/cloudtokens/vault"
)

// TestStress runs the cross-process workload (4 processes × 16
// goroutines × 500 users) on one prefix of the Vault server.
func TestStress(t *testing.T) {
	runStress(t)
}

// TestStressCachedSoftDelete runs it with the index cache and soft delete.
func TestStressCachedSoftDelete(t *testing.T) {
	runStress(t, ctvault.WithIndexCache(true), ctvault.WithSoftDelete())
}

func runStress(t *testing.T, opts ...ctvault.Option) {
	if testing.Short() {
		t.Skip("stress test: skipped with -short")
	}
	stress.Run(t, stress.Config{}, func(tb testing.TB, o stress.StoreOptions) stress.Store {
		s, err := ctvault.New(tb.Context(), backend.VaultClient(tb), "cloudtokens-stress/"+o.Prefix,
			append([]ctvault.Option{ctvault.WithIndexShards(o.IndexShards)}, opts...)...)
		if err != nil {
			tb.Fatal(err)
		}
		return s
	})
}
