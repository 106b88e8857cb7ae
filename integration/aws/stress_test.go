package aws

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/cloudtokens/cloudtokens/awssm"
	"github.com/cloudtokens/cloudtokens/integration/backend"
	"github.com/cloudtokens/cloudtokens/integration/stress"
)

// The cross-process stress test: 4 OS processes × 16 goroutines save,
// find, refresh and delete 500 users through one prefix; then no token
// may be lost or duplicated and the index must match the secrets exactly
// (see package stress).
func TestStress(t *testing.T) {
	runStress(t, stress.Config{Timeout: 8 * time.Minute}, awssm.WithIndexCache(true))
}

// TestStressGrowth runs the workload with the default options: the index
// starts as one bucket and must grow to at least 16 while 4 processes ×
// 16 goroutines insert (250 users, each signed up by every process at
// once), with nothing lost or duplicated, Check clean and every surviving
// user found by user name and listed once (package stress verifies it);
// and within AWS's quota of 100 versions per secret in 24 hours, counted
// on moto_server, which keeps every version (64–72 in three runs, 24–28
// buckets; 300 users reached 83 and 90: a burst of many more users from
// several processes at once is past what the index's one-at-a-time
// splits keep up with, see RELIABILITY.md finding 11). The margin needs
// moto_server's usual pace: under the race detector on 2 cores (every
// process 5–10 times slower) more compare-and-swaps are lost, each a
// version, and one secret reached 111, so scripts/test.sh runs this
// package without -race.
func TestStressGrowth(t *testing.T) {
	sum := runStress(t, stress.Config{Users: 250, GrowingIndex: true, MinBuckets: 16, Timeout: 8 * time.Minute})
	if sum != nil {
		t.Logf("index: %d buckets, the largest %d bytes", sum.Buckets, sum.LargestBucket)
	}
}

// runStress runs the workload on moto_server with opts, then checks that
// no secret of the run got more versions than AWS takes in 24 hours.
func runStress(t *testing.T, cfg stress.Config, opts ...awssm.Option) *stress.Summary {
	if testing.Short() && !backend.InCI() {
		t.Skip("-short")
	}
	var prefix string
	sum := stress.Run(t, cfg, func(tb testing.TB, o stress.StoreOptions) stress.Store {
		prefix = "cloudtokens-it/" + o.Prefix
		all := opts
		if o.IndexShards > 0 {
			all = append([]awssm.Option{awssm.WithIndexShards(o.IndexShards)}, opts...)
		}
		s, err := awssm.New(tb.Context(), stressClient(tb), prefix, all...)
		if err != nil {
			tb.Fatal(err)
		}
		return s
	})
	if sum == nil {
		return nil // a child: its worker is done
	}
	most, name := mostVersions(t, stressClient(t), prefix)
	t.Logf("most versions of one secret: %d (%s)", most, name)
	if most > awsVersionsPerDay {
		t.Errorf("secret %s got %d versions within the run; AWS refuses a secret's version past %d in 24 hours", name, most, awsVersionsPerDay)
	}
	return sum
}

// awsVersionsPerDay is AWS Secrets Manager's quota of versions created
// per secret in 24 hours.
const awsVersionsPerDay = 100

// mostVersions returns the most versions any secret whose name starts
// with prefix has, and its name. moto_server keeps every version a
// secret ever got (AWS drops old ones past 100), so within a run shorter
// than a day this is the count AWS's quota limits.
func mostVersions(t *testing.T, c *secretsmanager.Client, prefix string) (int, string) {
	ctx := t.Context()
	most, name := 0, ""
	secrets := secretsmanager.NewListSecretsPaginator(c, &secretsmanager.ListSecretsInput{
		Filters: []types.Filter{{Key: types.FilterNameStringTypeName, Values: []string{prefix}}},
	})
	for secrets.HasMorePages() {
		page, err := secrets.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, sec := range page.SecretList {
			n := 0
			versions := secretsmanager.NewListSecretVersionIdsPaginator(c, &secretsmanager.ListSecretVersionIdsInput{
				SecretId: sec.ARN, IncludeDeprecated: aws.Bool(true),
			})
			for versions.HasMorePages() {
				vp, err := versions.NextPage(ctx)
				if err != nil {
					t.Fatal(err)
				}
				n += len(vp.Versions)
			}
			if n > most {
				most, name = n, aws.ToString(sec.Name)
			}
		}
	}
	return most, name
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
