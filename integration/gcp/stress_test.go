// Package gcp_test runs the cross-process stress workload against the
// gcpsm adapter on one gcpsmtest emulator, served over TCP by the parent
// test process; every child process connects to it through the official
// client.
package gcp_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/iterator"

	"github.com/cloudtokens/cloudtokens/gcpsm"
	"github.com/cloudtokens/cloudtokens/gcpsm/gcpsmtest"
	"github.com/cloudtokens/cloudtokens/integration/staleness"
	"github.com/cloudtokens/cloudtokens/integration/stress"
)

const (
	project = "stress-project"
	// envAddr passes the parent's emulator address to the children.
	envAddr = "CLOUDTOKENS_GCP_EMULATOR_ADDR"
)

// TestStress runs 4 processes × 16 goroutines × 500 users on one prefix.
func TestStress(t *testing.T) {
	runStress(t, stress.Config{}, nil, nil)
}

// TestStressCached runs the same workload with the index cache enabled.
func TestStressCached(t *testing.T) {
	runStress(t, stress.Config{}, nil, nil, gcpsm.WithIndexCache(true))
}

// TestStressUnderLag runs the workload on an emulator as weakly consistent
// as Secret Manager documents: alias and "latest" reads, GetSecret and the
// lists answer from a state up to 2 s old (gcpsmtest.WithEventualConsistency),
// while access by version number and every conditional write see the real
// state; and with a stale layer under every process's store (package
// staleness), which makes every read of a document that process wrote in
// the last 2 s stale. Nothing acknowledged may be lost or duplicated and
// the index must match the documents; tokenstore.ErrConflict (ErrStaleAlias
// after the read retries) is the only error allowed to reach callers. 128
// users; 500 with CLOUDTOKENS_STALENESS_LONG=1.
func TestStressUnderLag(t *testing.T) {
	runStress(t, staleness.StressConfig(stress.Config{}), []gcpsmtest.Option{gcpsmtest.WithEventualConsistency(staleness.Lag)}, layered)
}

// layered adds a process's stale layer to its store's options.
func layered(tb testing.TB, o stress.StoreOptions) []gcpsm.Option {
	return []gcpsm.Option{gcpsm.WithBackendWrapper(staleness.ProcessLayer(tb, o.Worker).Wrap)}
}

// TestStressGrowth runs the workload with the default options on an
// emulator that enforces Secret Manager's documented write rate per
// secret (2 a second, 120 a minute): the index starts as one bucket and
// must grow to at least 16 while 4 processes × 16 goroutines insert, with
// nothing lost or duplicated, no operation failed, Check clean and every
// surviving user found by user name and listed once (package stress
// verifies it).
func TestStressGrowth(t *testing.T) {
	t.Parallel() // it waits on the write rate most of the time: overlap it with TestGrowsToManyTokens
	sum := runStress(t, stress.Config{Users: 2400, GrowingIndex: true, MinBuckets: 16, Timeout: 12 * time.Minute},
		[]gcpsmtest.Option{gcpsmtest.WithSecretWriteRate(gcpsmtest.DocumentedSecretWriteRate())}, nil)
	if sum != nil {
		t.Logf("index: %d buckets, the largest %d bytes", sum.Buckets, sum.LargestBucket)
	}
}

// runStress runs the workload on a new emulator; every store gets opts and
// what perStore returns for it (perStore may be nil).
func runStress(t *testing.T, cfg stress.Config, emulator []gcpsmtest.Option, perStore func(testing.TB, stress.StoreOptions) []gcpsm.Option, opts ...gcpsm.Option) *stress.Summary {
	if testing.Short() {
		t.Skip("stress test: skipped with -short")
	}
	var env []string
	var srv *gcpsmtest.Server
	if !stress.IsChild() {
		srv = gcpsmtest.Start(t, emulator...) // only the parent serves
		env = append(env, envAddr+"="+srv.Addr())
	}
	var prefix string
	cfg.Env = env
	sum := stress.Run(t, cfg, func(tb testing.TB, o stress.StoreOptions) stress.Store {
		prefix = o.Prefix
		client := newClient(tb, o.Getenv(envAddr))
		all := slices.Clone(opts)
		if o.IndexShards > 0 {
			all = append([]gcpsm.Option{gcpsm.WithIndexShards(o.IndexShards)}, all...)
		}
		if perStore != nil {
			all = append(all, perStore(tb, o)...)
		}
		s, err := gcpsm.New(tb.Context(), client, project, o.Prefix, all...)
		if err != nil {
			tb.Fatal(err)
		}
		return s
	})
	if sum == nil {
		return nil // a child: its worker is done
	}
	// Every write destroyed the version its previous alias named before,
	// and every lost race destroyed its own: each remaining secret (tokens
	// and index shards) holds at most two billed versions, the current
	// one and the previous one (kept for readers that lag).
	client := newClient(t, srv.Addr())
	ctx := t.Context()
	secrets, extra := 0, 0
	it := client.ListSecrets(ctx, &secretmanagerpb.ListSecretsRequest{
		Parent: "projects/" + project,
		Filter: "labels." + gcpsm.PrefixLabel + "=\"" + prefix + "\"",
	})
	for {
		sec, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		secrets++
		live := 0
		vit := client.ListSecretVersions(ctx, &secretmanagerpb.ListSecretVersionsRequest{Parent: sec.GetName()})
		for {
			v, err := vit.Next()
			if errors.Is(err, iterator.Done) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.GetState() != secretmanagerpb.SecretVersion_DESTROYED {
				live++
			}
		}
		if live > 2 {
			extra++
			if extra <= 10 {
				t.Errorf("%s has %d ENABLED or DISABLED versions after the run, want at most 2", sec.GetName(), live)
			}
		}
	}
	t.Logf("%d secrets under the prefix, %d with more than two live versions; emulator calls: %v", secrets, extra, srv.Calls())
	if secrets == 0 {
		t.Error("no secret found under the run's prefix")
	}
	return sum
}

func newClient(tb testing.TB, addr string) *secretmanager.Client {
	tb.Helper()
	if addr == "" {
		tb.Fatalf("%s is not set", envAddr)
	}
	c, err := secretmanager.NewClient(context.Background(), gcpsmtest.ClientOptionsFor(addr)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}
