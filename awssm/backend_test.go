package awssm

// White-box tests of the compare-and-swap against a real Secrets Manager
// API: moto_server (or LocalStack) at CLOUDTOKENS_AWS_ENDPOINT. Without
// it they skip on a laptop and fail in CI. The store-level suites are in
// the integration module (integration/aws).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go/middleware"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// opCounter counts a client's API calls by operation, and separately the
// HTTP requests it sends for them (a call the SDK retries is one call and
// several requests). Tests that count what the backend asks for count
// calls, so that a transport retry under load (moto_server answering 500,
// a closed connection) does not change the figure; tests of lost
// responses count requests.
type opCounter struct {
	mu       sync.Mutex
	ops      map[string]int
	requests map[string]int
}

func (c *opCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ops, c.requests = map[string]int{}, map[string]int{}
}

// snapshot returns the API calls by operation since the last reset.
func (c *opCounter) snapshot() map[string]int { return c.copy(&c.ops) }

// sent returns the HTTP requests by operation since the last reset.
func (c *opCounter) sent() map[string]int { return c.copy(&c.requests) }

func (c *opCounter) copy(m *map[string]int) map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(*m)
}

func (c *opCounter) count(m *map[string]int, ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if *m == nil {
		*m = map[string]int{}
	}
	(*m)[awsmiddleware.GetOperationName(ctx)]++
}

func (c *opCounter) add(stack *middleware.Stack) error {
	err := stack.Initialize.Add(middleware.InitializeMiddlewareFunc("test.opCounter.calls",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			c.count(&c.ops, ctx)
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
	if err != nil {
		return err
	}
	return stack.Finalize.Insert(middleware.FinalizeMiddlewareFunc("test.opCounter.requests",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			c.count(&c.requests, ctx)
			return next.HandleFinalize(ctx, in)
		}), "Retry", middleware.After)
}

func testClient(t *testing.T, optFns ...func(*secretsmanager.Options)) (*secretsmanager.Client, *opCounter) {
	t.Helper()
	ep := os.Getenv("CLOUDTOKENS_AWS_ENDPOINT")
	if ep == "" {
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatal("CLOUDTOKENS_AWS_ENDPOINT is not set; CI must provide moto_server")
		}
		t.Skip("CLOUDTOKENS_AWS_ENDPOINT is not set (start moto_server -H 127.0.0.1 -p PORT and export it)")
	}
	opts := []func(*config.LoadOptions) error{}
	if os.Getenv("AWS_REGION") == "" {
		opts = append(opts, config.WithRegion("us-east-1"))
	}
	if os.Getenv("AWS_ACCESS_KEY_ID") == "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")))
	}
	cfg, err := config.LoadDefaultConfig(t.Context(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	cnt := &opCounter{}
	return secretsmanager.NewFromConfig(cfg, append([]func(*secretsmanager.Options){func(o *secretsmanager.Options) {
		o.BaseEndpoint = aws.String(ep)
		o.APIOptions = append(o.APIOptions, cnt.add)
	}}, optFns...)...), cnt
}

func testBackend(t *testing.T, optFns ...func(*secretsmanager.Options)) (*backend, *opCounter) {
	t.Helper()
	c, cnt := testClient(t, optFns...)
	var r [6]byte
	rand.Read(r[:])
	s, err := New(t.Context(), c, "awssm-test/"+hex.EncodeToString(r[:]))
	if err != nil {
		t.Fatal(err)
	}
	return s.b, cnt
}

// Twenty writers that read the same version race to replace it: exactly
// one wins, the others get ErrVersionMismatch, the winner's value is the
// current one, and only one version keeps the pending label. Repeated for
// several rounds on the same secret. Each Update is exactly two calls.
func TestCASRace(t *testing.T) {
	b, cnt := testBackend(t)
	ctx := t.Context()
	const name, racers, rounds = "index-0", 20, 5
	version, err := b.Create(ctx, name, []byte(`{"round":0}`))
	if err != nil {
		t.Fatal(err)
	}
	for round := 1; round <= rounds; round++ {
		cnt.reset()
		var wg sync.WaitGroup
		start := make(chan struct{})
		type result struct {
			value, version string
			err            error
		}
		results := make([]result, racers)
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				v := fmt.Sprintf(`{"round":%d,"racer":%d}`, round, i)
				nv, err := b.Update(ctx, name, []byte(v), version)
				results[i] = result{v, nv, err}
			}()
		}
		close(start)
		wg.Wait()
		var winner *result
		for i := range results {
			r := &results[i]
			switch {
			case r.err == nil:
				if winner != nil {
					t.Fatalf("round %d: two winners: %q and %q", round, winner.value, r.value)
				}
				winner = r
			case !errors.Is(r.err, casstore.ErrVersionMismatch):
				t.Fatalf("round %d: racer %d: %v, want ErrVersionMismatch", round, i, r.err)
			}
		}
		if winner == nil {
			t.Fatalf("round %d: no winner", round)
		}
		if got := cnt.snapshot(); got["PutSecretValue"] != racers || got["UpdateSecretVersionStage"] != racers || len(got) != 2 {
			t.Errorf("round %d: calls %v, want %d PutSecretValue + %d UpdateSecretVersionStage", round, got, racers, racers)
		}
		obj, err := b.Read(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if string(obj.Value) != winner.value || obj.Version != winner.version {
			t.Fatalf("round %d: current is %s@%s, winner wrote %s@%s", round, obj.Value, obj.Version, winner.value, winner.version)
		}
		// The labels: AWSCURRENT on the winner, AWSPREVIOUS on the old
		// version, the pending label on at most one version.
		d, err := b.c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(b.prefix + name)})
		if err != nil {
			t.Fatal(err)
		}
		pending := 0
		for v, stages := range d.VersionIdsToStages {
			if slices.Contains(stages, stagePending) {
				pending++
			}
			if slices.Contains(stages, stageCurrent) != (v == winner.version) {
				t.Errorf("round %d: version %s has stages %v", round, v, stages)
			}
			if slices.Contains(stages, "AWSPREVIOUS") != (v == version) {
				t.Errorf("round %d: version %s has stages %v; AWSPREVIOUS belongs to %s", round, v, stages, version)
			}
		}
		if pending != 1 {
			t.Errorf("round %d: %d versions carry %s, want 1", round, pending, stagePending)
		}
		version = winner.version
	}
}

// An update against an old version fails and changes nothing; against the
// current version it succeeds.
func TestUpdateStaleVersion(t *testing.T) {
	b, _ := testBackend(t)
	ctx := t.Context()
	v1, err := b.Create(ctx, "token-stale", []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	v2, err := b.Update(ctx, "token-stale", []byte("two"), v1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Update(ctx, "token-stale", []byte("three"), v1); !errors.Is(err, casstore.ErrVersionMismatch) {
		t.Fatalf("stale update: %v, want ErrVersionMismatch", err)
	}
	if _, err := b.Update(ctx, "token-stale", []byte("three"), "00000000-0000-0000-0000-000000000000"); !errors.Is(err, casstore.ErrVersionMismatch) {
		t.Fatalf("unknown version: %v, want ErrVersionMismatch", err)
	}
	obj, err := b.Read(ctx, "token-stale")
	if err != nil || string(obj.Value) != "two" || obj.Version != v2 {
		t.Fatalf("Read = %q@%s, %v; want two@%s", obj.Value, obj.Version, err, v2)
	}
	if _, err := b.Update(ctx, "token-missing", []byte("x"), v1); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Fatalf("update of a missing secret: %v, want ErrNotFound", err)
	}
	if _, err := b.Create(ctx, "token-stale", []byte("again")); !errors.Is(err, casstore.ErrExists) {
		t.Fatalf("create of an existing secret: %v, want ErrExists", err)
	}
}

// moto_server's BatchGetSecretValue returns the version that was current
// before the last stage move. ReadMany notices (no AWSCURRENT label) and
// reads those secrets again; secrets never updated cost nothing extra.
func TestReadManyAfterStageMoves(t *testing.T) {
	b, cnt := testBackend(t)
	ctx := t.Context()
	const n = 45
	names := make([]string, n)
	want := map[string]string{}
	for i := range n {
		names[i] = fmt.Sprintf("token-r%03d", i)
		v, err := b.Create(ctx, names[i], []byte("created"))
		if err != nil {
			t.Fatal(err)
		}
		want[names[i]] = "created"
		if i%3 == 0 {
			if _, err := b.Update(ctx, names[i], []byte("updated"), v); err != nil {
				t.Fatal(err)
			}
			want[names[i]] = "updated"
		}
	}
	if err := b.Delete(ctx, names[1]); err != nil {
		t.Fatal(err)
	}
	names = append(names, "token-never-created", names[2])
	cnt.reset()
	res, err := b.ReadMany(ctx, names)
	if err != nil {
		t.Fatal(err)
	}
	calls := cnt.snapshot()
	if len(res) != len(names) {
		t.Fatalf("%d results for %d names", len(res), len(names))
	}
	for i, r := range res {
		switch {
		case r.Name != names[i]:
			t.Errorf("result %d is %q, want %q", i, r.Name, names[i])
		case names[i] == names[1] || names[i] == "token-never-created":
			if !errors.Is(r.Err, tokenstore.ErrNotFound) {
				t.Errorf("%s: %v, want ErrNotFound", r.Name, r.Err)
			}
		case r.Err != nil:
			t.Errorf("%s: %v", r.Name, r.Err)
		case string(r.Value) != want[r.Name]:
			t.Errorf("%s = %q, want %q", r.Name, r.Value, want[r.Name])
		}
	}
	if calls["BatchGetSecretValue"] != 3 {
		t.Errorf("BatchGetSecretValue calls = %d, want 3 for %d names", calls["BatchGetSecretValue"], len(names))
	}
	t.Logf("ReadMany of %d names (15 updated, so stale in moto's batch reads): %v", len(names), calls)
	if stale := calls["GetSecretValue"]; stale != 0 && stale != 15 {
		t.Errorf("GetSecretValue re-reads = %d, want 0 (AWS) or 15 (moto)", stale)
	}
}

// Delete, with the recovery window and forced: a second delete finds
// nothing, reads find nothing, and the name cannot be created again while
// the window runs (ErrExists, so the engine picks another ID).
func TestDeleteModes(t *testing.T) {
	for _, force := range []bool{false, true} {
		t.Run(fmt.Sprintf("force=%v", force), func(t *testing.T) {
			b, cnt := testBackend(t)
			b.forceDelete = force
			ctx := t.Context()
			if _, err := b.Create(ctx, "token-del", []byte("x")); err != nil {
				t.Fatal(err)
			}
			cnt.reset()
			if err := b.Delete(ctx, "token-del"); err != nil {
				t.Fatal(err)
			}
			wantCalls := 1
			if force {
				wantCalls = 2
			}
			if got := cnt.snapshot()["DeleteSecret"]; got != wantCalls {
				t.Errorf("DeleteSecret calls = %d, want %d", got, wantCalls)
			}
			if err := b.Delete(ctx, "token-del"); !errors.Is(err, tokenstore.ErrNotFound) {
				t.Errorf("second delete: %v, want ErrNotFound", err)
			}
			if _, err := b.Read(ctx, "token-del"); !errors.Is(err, tokenstore.ErrNotFound) {
				t.Errorf("read after delete: %v, want ErrNotFound", err)
			}
			names, err := b.List(ctx)
			if err != nil || len(names) != 0 {
				t.Errorf("List after delete = %v, %v", names, err)
			}
			_, err = b.Create(ctx, "token-del", []byte("y"))
			if force {
				if err != nil {
					t.Errorf("create after forced delete: %v", err)
				}
			} else if !errors.Is(err, casstore.ErrExists) {
				t.Errorf("create in the recovery window: %v, want ErrExists", err)
			}
			if err := b.Delete(ctx, "token-never"); !errors.Is(err, tokenstore.ErrNotFound) {
				t.Errorf("delete of a missing secret: %v, want ErrNotFound", err)
			}
		})
	}
}
