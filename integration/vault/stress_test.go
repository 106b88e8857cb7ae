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

// TestStressGrowth runs the cross-process workload (4 processes × 16
// goroutines) with the default options: the index starts as one bucket
// and must grow to at least 16 while the processes insert, with no token
// lost or duplicated, Check clean, and every surviving user found by user
// name and listed exactly once (package stress verifies all of it).
func TestStressGrowth(t *testing.T) {
	if testing.Short() {
		t.Skip("stress test: skipped with -short")
	}
	cfg := stress.Config{Users: growthUsers, GrowingIndex: true, MinBuckets: 16}
	sum := stress.Run(t, cfg, func(tb testing.TB, o stress.StoreOptions) stress.Store {
		s, err := ctvault.New(tb.Context(), backend.VaultClient(tb), "cloudtokens-stress/"+o.Prefix)
		if err != nil {
			tb.Fatal(err)
		}
		return s
	})
	if sum != nil {
		t.Logf("index: %d buckets, the largest %d bytes", sum.Buckets, sum.LargestBucket)
	}
}

// growthUsers is the number of users of TestStressGrowth: enough for the
// index to pass 16 buckets by size alone (Vault has no write quota).
const growthUsers = 2400
