package gcpsmtest

import (
	"strings"
	"testing"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

// Every test talks to the emulator through the official client over TCP,
// the same code path production uses.

const testProject = "projects/test-project"

func newClient(t *testing.T, opts ...Option) (*Server, *secretmanager.Client) {
	t.Helper()
	srv := Start(t, opts...)
	c, err := secretmanager.NewClient(t.Context(), srv.ClientOptions()...)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return srv, c
}

func automatic() *secretmanagerpb.Replication {
	return &secretmanagerpb.Replication{Replication: &secretmanagerpb.Replication_Automatic_{
		Automatic: &secretmanagerpb.Replication_Automatic{},
	}}
}

func createSecret(t *testing.T, c *secretmanager.Client, id string, labels map[string]string) *secretmanagerpb.Secret {
	t.Helper()
	s, err := c.CreateSecret(t.Context(), &secretmanagerpb.CreateSecretRequest{
		Parent:   testProject,
		SecretId: id,
		Secret:   &secretmanagerpb.Secret{Replication: automatic(), Labels: labels},
	})
	if err != nil {
		t.Fatalf("CreateSecret(%s): %v", id, err)
	}
	return s
}

func addVersion(t *testing.T, c *secretmanager.Client, secret, data string) *secretmanagerpb.SecretVersion {
	t.Helper()
	v, err := c.AddSecretVersion(t.Context(), &secretmanagerpb.AddSecretVersionRequest{
		Parent:  secret,
		Payload: &secretmanagerpb.SecretPayload{Data: []byte(data)},
	})
	if err != nil {
		t.Fatalf("AddSecretVersion(%s): %v", secret, err)
	}
	return v
}

func access(t *testing.T, c *secretmanager.Client, name string) (*secretmanagerpb.AccessSecretVersionResponse, error) {
	t.Helper()
	return c.AccessSecretVersion(t.Context(), &secretmanagerpb.AccessSecretVersionRequest{Name: name})
}

func mustAccess(t *testing.T, c *secretmanager.Client, name string) string {
	t.Helper()
	r, err := access(t, c, name)
	if err != nil {
		t.Fatalf("AccessSecretVersion(%s): %v", name, err)
	}
	return string(r.GetPayload().GetData())
}

func mask(paths ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }

// wantCode fails unless err carries the gRPC code want (and, if given, a
// message containing msg).
func wantCode(t *testing.T, err error, want codes.Code, msg ...string) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("got code %v (err %v), want %v", got, err, want)
	}
	for _, m := range msg {
		if !strings.Contains(err.Error(), m) {
			t.Fatalf("error %q does not contain %q", err, m)
		}
	}
}
