package gcpsmtest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"cloud.google.com/go/iam/apiv1/iampb"
	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestCallCounts(t *testing.T) {
	srv, c := newClient(t)
	s := createSecret(t, c, "counted", nil).GetName()
	addVersion(t, c, s, "x")
	for range 3 {
		mustAccess(t, c, s+"/versions/latest")
	}
	_, _ = access(t, c, s+"/versions/9") // failed calls count too
	want := map[string]int{"CreateSecret": 1, "AddSecretVersion": 1, "AccessSecretVersion": 4}
	got := srv.Calls()
	for m, n := range want {
		if got[m] != n || srv.CallCount(m) != n {
			t.Errorf("%s: Calls()=%d CallCount=%d, want %d", m, got[m], srv.CallCount(m), n)
		}
	}
	if len(got) != len(want) {
		t.Errorf("Calls() = %v, want only %v", got, want)
	}
	srv.ResetCalls()
	if n := srv.CallCount("AccessSecretVersion"); n != 0 {
		t.Errorf("after ResetCalls: %d", n)
	}
}

// WithServerOptions lets a test add its own interceptor (here: a fault
// injector); the built-in counter still sees the call.
func TestWithServerOptionsInterceptor(t *testing.T) {
	var fail atomic.Bool
	inject := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if fail.Load() && info.FullMethod == secretmanagerpb.SecretManagerService_AccessSecretVersion_FullMethodName {
			return nil, status.Error(codes.PermissionDenied, "injected")
		}
		return h(ctx, req)
	}
	srv, c := newClient(t, WithServerOptions(grpc.UnaryInterceptor(inject)))
	s := createSecret(t, c, "faulty", nil).GetName()
	addVersion(t, c, s, "x")
	fail.Store(true)
	_, err := access(t, c, s+"/versions/1")
	wantCode(t, err, codes.PermissionDenied, "injected")
	fail.Store(false)
	mustAccess(t, c, s+"/versions/1")
	if n := srv.CallCount("AccessSecretVersion"); n != 2 {
		t.Errorf("AccessSecretVersion count = %d, want 2", n)
	}
}

// Secret Manager returns resource names with the project number; with
// WithProjectNumber the emulator does too and accepts either spelling.
func TestWithProjectNumber(t *testing.T) {
	_, c := newClient(t, WithProjectNumber("test-project", 123456789))
	s := createSecret(t, c, "numbered", nil)
	if want := "projects/123456789/secrets/numbered"; s.GetName() != want {
		t.Fatalf("name = %q, want %q", s.GetName(), want)
	}
	addVersion(t, c, testProject+"/secrets/numbered", "x")
	r, err := access(t, c, testProject+"/secrets/numbered/versions/latest")
	if err != nil || r.GetName() != "projects/123456789/secrets/numbered/versions/1" {
		t.Fatalf("access via project ID = %v, %v", r, err)
	}
	_, err = c.CreateSecret(t.Context(), &secretmanagerpb.CreateSecretRequest{
		Parent: "projects/123456789", SecretId: "numbered", Secret: &secretmanagerpb.Secret{Replication: automatic()},
	})
	wantCode(t, err, codes.AlreadyExists)
}

// RPCs outside the emulated set answer UNIMPLEMENTED.
func TestUnimplemented(t *testing.T) {
	_, c := newClient(t)
	s := createSecret(t, c, "iam", nil).GetName()
	_, err := c.GetIamPolicy(t.Context(), &iampb.GetIamPolicyRequest{Resource: s})
	wantCode(t, err, codes.Unimplemented)
}

func TestCloseIsIdempotent(t *testing.T) {
	srv, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
}

// Many independent clients (separate TCP connections, as separate processes
// would have via ClientOptionsFor(Addr())) hammering shared and private
// secrets concurrently: version numbers stay dense and every read sees a
// committed version.
func TestManyClientsConcurrently(t *testing.T) {
	srv := Start(t)
	const clients, workers, rounds = 4, 16, 3
	setup := newClientFor(t, srv.Addr())
	shared := createSecret(t, setup, "shared", nil).GetName()
	addVersion(t, setup, shared, "seed")

	var wg sync.WaitGroup
	errs := make(chan error, clients*workers)
	for ci := range clients {
		c := newClientFor(t, srv.Addr())
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx := t.Context()
				own, err := c.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{
					Parent: testProject, SecretId: fmt.Sprintf("c%d-w%d", ci, w),
					Secret: &secretmanagerpb.Secret{Replication: automatic(), Labels: map[string]string{"client": fmt.Sprint(ci)}},
				})
				if err != nil {
					errs <- err
					return
				}
				for r := range rounds {
					for _, parent := range []string{own.GetName(), shared} {
						if _, err := c.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{
							Parent: parent, Payload: &secretmanagerpb.SecretPayload{Data: fmt.Appendf(nil, "%d", r)},
						}); err != nil {
							errs <- err
							return
						}
						if _, err := c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: parent + "/versions/latest"}); err != nil {
							errs <- err
							return
						}
					}
					if _, err := c.ListSecrets(ctx, &secretmanagerpb.ListSecretsRequest{Parent: testProject, Filter: fmt.Sprintf("labels.client=%d", ci)}).Next(); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%s/versions/%d", shared, 1+clients*workers*rounds)
	v, err := setup.GetSecretVersion(t.Context(), &secretmanagerpb.GetSecretVersionRequest{Name: shared + "/versions/latest"})
	if err != nil || v.GetName() != want {
		t.Fatalf("latest shared version = %v (%v), want %s", v.GetName(), err, want)
	}
	if n := srv.CallCount("AddSecretVersion"); n != 1+2*clients*workers*rounds {
		t.Fatalf("AddSecretVersion calls = %d", n)
	}
}

func newClientFor(t *testing.T, addr string) *secretmanager.Client {
	t.Helper()
	c, err := secretmanager.NewClient(t.Context(), ClientOptionsFor(addr)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}
