package gcp_test

import (
	"context"
	"os"
	"testing"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/grpc/codes"

	"github.com/cloudtokens/cloudtokens/gcpsm"
	"github.com/cloudtokens/cloudtokens/gcpsm/gcpsmtest"
	"github.com/cloudtokens/cloudtokens/integration/backend"
	"github.com/cloudtokens/cloudtokens/integration/reliability"
	"github.com/cloudtokens/cloudtokens/proctest"
)

func TestMain(m *testing.M) { os.Exit(backend.Main(m)) }

// quickAccessRetries keeps the client's retry of AccessSecretVersion
// (UNAVAILABLE, RESOURCE_EXHAUSTED) but with short waits: its default
// starts at 2 s.
func quickAccessRetries(c *secretmanager.Client) {
	c.CallOptions.AccessSecretVersion = []gax.CallOption{
		gax.WithTimeout(time.Minute),
		gax.WithRetry(func() gax.Retryer {
			return gax.OnCodes([]codes.Code{codes.Unavailable, codes.ResourceExhausted},
				gax.Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond, Multiplier: 2})
		}),
	}
}

// TestRandomFaults: 2 stores × 8 goroutines × 40 users on the emulator,
// every RPC through a seeded fault injector (p = 0.15); see package
// reliability for what is asserted.
func TestRandomFaults(t *testing.T) {
	srv := gcpsmtest.Start(t)
	reliability.RunFaults(t, reliability.FaultConfig{}, func(tb testing.TB, o reliability.StoreOptions) reliability.Store {
		return reliabilityStore(tb, srv.Addr(), o)
	})
}

// reliabilityStore opens a store on the emulator at addr whose client,
// with o.Faults, sends every RPC through the fault injector.
func reliabilityStore(tb testing.TB, addr string, o reliability.StoreOptions) reliability.Store {
	opts := gcpsmtest.ClientOptionsFor(addr)
	if o.Faults != nil {
		opts = append(opts, gcpsmtest.FaultClientOption(o.Faults))
	}
	c, err := secretmanager.NewClient(context.Background(), opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	quickAccessRetries(c)
	sopts := []gcpsm.Option{gcpsm.WithLogger(o.Logger)}
	if o.IndexShards > 0 {
		sopts = append(sopts, gcpsm.WithIndexShards(o.IndexShards))
	}
	if o.Wrap != nil {
		sopts = append(sopts, gcpsm.WithBackendWrapper(o.Wrap))
	}
	s, err := gcpsm.New(tb.Context(), c, project, o.Prefix, sopts...)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// TestSIGKILL: a child process loops inserts, updates and deletes on an
// emulator that runs in a process of its own (cmd/gcpemulator), shared by
// the parent and the children, and is killed at random moments; see
// package reliability.
func TestSIGKILL(t *testing.T) {
	reliability.SkipShort(t)
	var env []string
	if !proctest.IsChild() {
		env = append(env, envAddr+"="+backend.GCPEmulatorProcess(t))
	}
	reliability.RunKills(t, reliability.KillConfig{Env: env}, func(tb testing.TB, o reliability.StoreOptions) reliability.Store {
		addr := os.Getenv(envAddr) // the children's
		if addr == "" {
			addr = backend.GCPEmulatorProcess(tb) // the parent's: started above
		}
		return reliabilityStore(tb, addr, o)
	})
}

// BenchmarkRepair measures Repair on 1,000 tokens on the emulator (see
// reliability.BenchRepair).
func BenchmarkRepair(b *testing.B) {
	srv := gcpsmtest.Start(b)
	reliability.BenchRepair(b, 1000, func(tb testing.TB, o reliability.StoreOptions) reliability.Store {
		return reliabilityStore(tb, srv.Addr(), o)
	})
}
