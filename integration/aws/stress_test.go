package aws

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/cloudtokens/cloudtokens/awssm"
	"github.com/cloudtokens/cloudtokens/integration/backend"
	"github.com/cloudtokens/cloudtokens/integration/stress"
)

// The cross-process stress test: 4 OS processes × 16 goroutines save,
// find, refresh and delete 500 users through one prefix; then no token
// may be lost or duplicated and the index must match the secrets exactly
// (see package stress).
func TestStress(t *testing.T) {
	if testing.Short() && !backend.InCI() {
		t.Skip("-short")
	}
	stress.Run(t, stress.Config{Timeout: 8 * time.Minute}, func(tb testing.TB, o stress.StoreOptions) stress.Store {
		s, err := awssm.New(tb.Context(), stressClient(tb), "cloudtokens-it/"+o.Prefix,
			awssm.WithIndexShards(o.IndexShards), awssm.WithIndexCache(true))
		if err != nil {
			tb.Fatal(err)
		}
		return s
	})
}

// stressClient is a client for the stress workload. moto_server answers
// some requests under this load with HTTP 500 (its secret store is not
// thread-safe: "dictionary changed size during iteration"); the SDK
// retryer gets more attempts than its default 3, as an application would
// give it for a busy endpoint.
func stressClient(tb testing.TB) *secretsmanager.Client {
	return client(tb, nil, func(o *secretsmanager.Options) {
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) { so.MaxAttempts = 10 })
	})
}
