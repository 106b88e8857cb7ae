package vault_test

import (
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/cloudtokens/cloudtokens/faultinject"
	"github.com/cloudtokens/cloudtokens/integration/backend"
	"github.com/cloudtokens/cloudtokens/integration/reliability"
	ctvault "github.com/cloudtokens/cloudtokens/vault"
)

// reliabilityStore opens a store whose client retries like an application
// on a flaky network would (4 retries, short waits) and, with o.Faults,
// sends every request through the fault injector.
func reliabilityStore(tb testing.TB, o reliability.StoreOptions) reliability.Store {
	tb.Helper()
	addr, token := backend.Vault(tb)
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		tb.Fatal(cfg.Error)
	}
	cfg.Address = addr
	cfg.MaxRetries = 4
	cfg.MinRetryWait, cfg.MaxRetryWait = 20*time.Millisecond, 200*time.Millisecond
	if o.Faults != nil {
		cfg.HttpClient.Transport = &faultinject.Transport{Base: cfg.HttpClient.Transport, Injector: o.Faults, Protocol: faultinject.Vault}
	}
	client, err := api.NewClient(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	client.SetToken(token)
	opts := []ctvault.Option{ctvault.WithLogger(o.Logger)}
	if o.IndexShards > 0 {
		opts = append(opts, ctvault.WithIndexShards(o.IndexShards))
	}
	if o.Wrap != nil {
		opts = append(opts, ctvault.WithBackendWrapper(o.Wrap))
	}
	s, err := ctvault.New(tb.Context(), client, "cloudtokens-reliability/"+o.Prefix, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// TestRandomFaults: 2 stores × 8 goroutines × 40 users on the Vault dev
// server, every request through a seeded fault injector (p = 0.15); see
// package reliability for what is asserted.
func TestRandomFaults(t *testing.T) {
	reliability.RunFaults(t, reliability.FaultConfig{}, reliabilityStore)
}

// TestSIGKILL: a child process loops inserts, updates and deletes on the
// Vault dev server and is killed at random moments; see package
// reliability.
func TestSIGKILL(t *testing.T) {
	reliability.RunKills(t, reliability.KillConfig{}, reliabilityStore)
}

// BenchmarkRepair measures Repair on 1,000 tokens on the Vault dev server
// (see reliability.BenchRepair).
func BenchmarkRepair(b *testing.B) {
	reliability.BenchRepair(b, 1000, reliabilityStore)
}
