package gcpsmtest

import (
	"context"
	"sync/atomic"
	"testing"

	"cloud.google.com/go/iam/apiv1/iampb"
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
