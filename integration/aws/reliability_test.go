package aws

import (
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/cloudtokens/cloudtokens/awssm"
	"github.com/cloudtokens/cloudtokens/faultinject"
	"github.com/cloudtokens/cloudtokens/integration/reliability"
)

// busyRetryer is what an application on a busy or flaky network sets: more
// attempts than the default 3, short backoffs, no shared retry quota.
func busyRetryer(o *secretsmanager.Options) {
	o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
		so.MaxAttempts = 6
		so.MaxBackoff = 200 * time.Millisecond
		so.RateLimiter = ratelimit.None
	})
}

// TestRandomFaults: 2 stores × 8 goroutines × 40 users on moto_server,
// every request through a seeded fault injector (p = 0.15); see package
// reliability for what is asserted.
func TestRandomFaults(t *testing.T) {
	reliability.RunFaults(t, reliability.FaultConfig{}, reliabilityStore)
}

// reliabilityStore opens a store whose client retries like an
// application on a busy network and, with o.Faults, sends every request
// through the fault injector.
func reliabilityStore(tb testing.TB, o reliability.StoreOptions) reliability.Store {
	opts := []func(*secretsmanager.Options){busyRetryer}
	if o.Faults != nil {
		opts = append(opts, func(so *secretsmanager.Options) {
			so.HTTPClient = &http.Client{Transport: &faultinject.Transport{Base: http.DefaultTransport, Injector: o.Faults, Protocol: faultinject.AWSJSON}}
		})
	}
	sopts := []awssm.Option{awssm.WithLogger(o.Logger)}
	if o.IndexShards > 0 {
		sopts = append(sopts, awssm.WithIndexShards(o.IndexShards))
	}
	if o.Wrap != nil {
		sopts = append(sopts, awssm.WithBackendWrapper(o.Wrap))
	}
	return newStoreAt(tb, client(tb, nil, opts...), "cloudtokens-it/"+o.Prefix, sopts...)
}

// BenchmarkRepair measures Repair on 1,000 tokens on moto_server (see
// reliability.BenchRepair). The index is lost with WithForceDelete: a
// secret deleted with a recovery window keeps its name taken, and Repair
// cannot create the index there (TestRepairLostIndexRecoveryWindow).
func BenchmarkRepair(b *testing.B) {
	reliability.BenchRepair(b, 1000, func(tb testing.TB, o reliability.StoreOptions) reliability.Store {
		return newStoreAt(tb, client(tb, nil, busyRetryer), "cloudtokens-it/"+o.Prefix,
			awssm.WithLogger(o.Logger), awssm.WithBackendWrapper(o.Wrap), awssm.WithForceDelete())
	})
}

// TestSIGKILL: a child process loops inserts, updates and deletes on
// moto_server and is killed at random moments; see package reliability.
func TestSIGKILL(t *testing.T) {
	reliability.RunKills(t, reliability.KillConfig{}, reliabilityStore)
}
