package gcpsmtest

import (
	"fmt"
	"maps"
	"strings"
	"testing"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"
)

// resources.proto Secret.name: "Output only. The resource name of the Secret
// in the format `projects/*/secrets/*`"; Secret.create_time "Output only";
// Secret.replication "Immutable" and returned as created.
func TestCreateSecretFillsOutputFields(t *testing.T) {
	_, c := newClient(t)
	userManaged := &secretmanagerpb.Replication{Replication: &secretmanagerpb.Replication_UserManaged_{
		UserManaged: &secretmanagerpb.Replication_UserManaged{Replicas: []*secretmanagerpb.Replication_UserManaged_Replica{
			{Location: "us-east1"}, {Location: "europe-west1"},
		}},
	}}
	s, err := c.CreateSecret(t.Context(), &secretmanagerpb.CreateSecretRequest{
		Parent:   testProject,
		SecretId: "user-managed",
		Secret: &secretmanagerpb.Secret{
			Name:        "ignored/output/only",
			Replication: userManaged,
			Labels:      map[string]string{"env": "test"},
			Annotations: map[string]string{"owner.example.com": "tokens"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := testProject + "/secrets/user-managed"; s.GetName() != want {
		t.Errorf("name = %q, want %q", s.GetName(), want)
	}
	if s.GetCreateTime() == nil {
		t.Error("create_time not set")
	}
	if len(s.GetReplication().GetUserManaged().GetReplicas()) != 2 {
		t.Errorf("replication = %v, want the two user-managed replicas", s.GetReplication())
	}
	if s.GetLabels()["env"] != "test" || s.GetAnnotations()["owner.example.com"] != "tokens" {
		t.Errorf("labels/annotations not stored: %v %v", s.GetLabels(), s.GetAnnotations())
	}
	// https://cloud.google.com/secret-manager/docs/etags: an etag value
	// includes its surrounding quotes (the etag "abc" is sent as "\"abc\"").
	if e := s.GetEtag(); len(e) < 3 || e[0] != '"' || e[len(e)-1] != '"' {
		t.Errorf("etag %q is not a quoted string", e)
	}
	got, err := c.GetSecret(t.Context(), &secretmanagerpb.GetSecretRequest{Name: s.GetName()})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetEtag() != s.GetEtag() || got.GetName() != s.GetName() {
		t.Errorf("GetSecret = %v, want %v", got, s)
	}
	// A version of a user-managed secret reports per-replica status
	// (resources.proto SecretVersion.replication_status).
	v := addVersion(t, c, s.GetName(), "x")
	if n := len(v.GetReplicationStatus().GetUserManaged().GetReplicas()); n != 2 {
		t.Errorf("replication_status has %d replicas, want 2", n)
	}
}

// service.proto CreateSecretRequest.secret_id: "Required. This must be unique
// within the project." A duplicate create is ALREADY_EXISTS; the same ID in
// another project is a different secret.
func TestCreateSecretAlreadyExists(t *testing.T) {
	_, c := newClient(t)
	createSecret(t, c, "dup", nil)
	_, err := c.CreateSecret(t.Context(), &secretmanagerpb.CreateSecretRequest{
		Parent: testProject, SecretId: "dup", Secret: &secretmanagerpb.Secret{Replication: automatic()},
	})
	wantCode(t, err, codes.AlreadyExists, "already exists")
	if _, err := c.CreateSecret(t.Context(), &secretmanagerpb.CreateSecretRequest{
		Parent: "projects/other", SecretId: "dup", Secret: &secretmanagerpb.Secret{Replication: automatic()},
	}); err != nil {
		t.Fatalf("same ID in another project: %v", err)
	}
}

// Create-time validation, each case citing its rule.
func TestCreateSecretValidation(t *testing.T) {
	_, c := newClient(t)
	many := func(n int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[fmt.Sprintf("k%d", i)] = "v"
		}
		return m
	}
	tests := []struct {
		name   string
		parent string
		id     string
		secret *secretmanagerpb.Secret
		noSec  bool // send no Secret at all
		want   codes.Code
	}{
		// service.proto CreateSecretRequest.secret_id: "maximum length of 255
		// characters and can contain uppercase and lowercase letters,
		// numerals, and the hyphen (`-`) and underscore (`_`) characters."
		{name: "id 255 chars ok", id: strings.Repeat("a", 255), want: codes.OK},
		{name: "id all allowed chars", id: "Az09_-", want: codes.OK},
		{name: "id 256 chars", id: strings.Repeat("a", 256), want: codes.InvalidArgument},
		{name: "id empty", id: "", want: codes.InvalidArgument},
		{name: "id dot", id: "a.b", want: codes.InvalidArgument},
		{name: "id slash", id: "a/b", want: codes.InvalidArgument},
		{name: "id space", id: "a b", want: codes.InvalidArgument},
		{name: "id non-ascii", id: "sécret", want: codes.InvalidArgument},
		// service.proto CreateSecretRequest.secret: "Required."
		{name: "no secret", id: "nosecret", noSec: true, want: codes.InvalidArgument},
		// Global secrets need a replication policy; UserManaged.replicas
		// "Cannot be empty." (resources.proto).
		{name: "no replication", id: "norepl", secret: &secretmanagerpb.Secret{}, want: codes.InvalidArgument},
		{name: "empty user-managed", id: "emptyum", secret: &secretmanagerpb.Secret{Replication: &secretmanagerpb.Replication{
			Replication: &secretmanagerpb.Replication_UserManaged_{UserManaged: &secretmanagerpb.Replication_UserManaged{}},
		}}, want: codes.InvalidArgument},
		// resources.proto Secret.labels: keys
		// `[\p{Ll}\p{Lo}][\p{Ll}\p{Lo}\p{N}_-]{0,62}`, values
		// `[\p{Ll}\p{Lo}\p{N}_-]{0,63}`, "No more than 64 labels".
		{name: "label key 63 ok", id: "l1", secret: withLabels(map[string]string{"k" + strings.Repeat("x", 62): "v"}), want: codes.OK},
		{name: "label value 63 ok", id: "l2", secret: withLabels(map[string]string{"k": strings.Repeat("v", 63)}), want: codes.OK},
		{name: "label empty value ok", id: "l3", secret: withLabels(map[string]string{"k": ""}), want: codes.OK},
		{name: "64 labels ok", id: "l4", secret: withLabels(many(64)), want: codes.OK},
		{name: "label key 64", id: "l5", secret: withLabels(map[string]string{"k" + strings.Repeat("x", 63): "v"}), want: codes.InvalidArgument},
		{name: "label key uppercase", id: "l6", secret: withLabels(map[string]string{"Env": "v"}), want: codes.InvalidArgument},
		{name: "label key digit first", id: "l7", secret: withLabels(map[string]string{"1env": "v"}), want: codes.InvalidArgument},
		{name: "label key empty", id: "l8", secret: withLabels(map[string]string{"": "v"}), want: codes.InvalidArgument},
		{name: "label key dot", id: "l9", secret: withLabels(map[string]string{"a.b": "v"}), want: codes.InvalidArgument},
		{name: "label value uppercase", id: "l10", secret: withLabels(map[string]string{"k": "Prod"}), want: codes.InvalidArgument},
		{name: "label value 64", id: "l11", secret: withLabels(map[string]string{"k": strings.Repeat("v", 64)}), want: codes.InvalidArgument},
		{name: "65 labels", id: "l12", secret: withLabels(many(65)), want: codes.InvalidArgument},
		// resources.proto Secret.annotations: keys "begin and end with an
		// alphanumeric character".
		{name: "annotation key bad", id: "a1", secret: &secretmanagerpb.Secret{Replication: automatic(), Annotations: map[string]string{"-x": "v"}}, want: codes.InvalidArgument},
		{name: "annotations 16KiB", id: "a2", secret: &secretmanagerpb.Secret{Replication: automatic(), Annotations: map[string]string{"k": strings.Repeat("v", 16*1024)}}, want: codes.InvalidArgument},
		// A new secret has no versions for an alias to point at.
		{name: "alias on create", id: "al", secret: &secretmanagerpb.Secret{Replication: automatic(), VersionAliases: map[string]int64{"cur": 1}}, want: codes.InvalidArgument},
		// Not emulated: rejected loudly rather than ignored.
		{name: "ttl unimplemented", id: "ttl", secret: &secretmanagerpb.Secret{Replication: automatic(), Expiration: &secretmanagerpb.Secret_Ttl{Ttl: durationpb.New(3600e9)}}, want: codes.Unimplemented},
		// service.proto CreateSecretRequest.parent: "in the format `projects/*`".
		{name: "bad parent", parent: "project/x", id: "p1", want: codes.InvalidArgument},
		{name: "regional parent", parent: "projects/x/locations/us-east1", id: "p2", want: codes.Unimplemented},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := tt.parent
			if parent == "" {
				parent = testProject
			}
			secret := tt.secret
			if secret == nil {
				secret = &secretmanagerpb.Secret{Replication: automatic()}
			}
			if tt.noSec {
				secret = nil
			}
			_, err := c.CreateSecret(t.Context(), &secretmanagerpb.CreateSecretRequest{Parent: parent, SecretId: tt.id, Secret: secret})
			wantCode(t, err, tt.want)
		})
	}
}

func withLabels(l map[string]string) *secretmanagerpb.Secret {
	return &secretmanagerpb.Secret{Replication: automatic(), Labels: l}
}

// NOT_FOUND for every RPC addressing something that does not exist.
func TestNotFound(t *testing.T) {
	_, c := newClient(t)
	empty := createSecret(t, c, "empty", nil).GetName()
	one := createSecret(t, c, "one", nil).GetName()
	addVersion(t, c, one, "v1")
	missing := testProject + "/secrets/missing"
	ctx := t.Context()
	tests := []struct {
		name string
		call func() error
	}{
		{"GetSecret", func() error {
			_, err := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: missing})
			return err
		}},
		{"UpdateSecret", func() error {
			_, err := c.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{Secret: &secretmanagerpb.Secret{Name: missing}, UpdateMask: mask("labels")})
			return err
		}},
		{"DeleteSecret", func() error {
			return c.DeleteSecret(ctx, &secretmanagerpb.DeleteSecretRequest{Name: missing})
		}},
		{"AddSecretVersion", func() error {
			_, err := c.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{Parent: missing, Payload: &secretmanagerpb.SecretPayload{Data: []byte("x")}})
			return err
		}},
		{"AccessSecretVersion missing secret", func() error { _, err := access(t, c, missing+"/versions/1"); return err }},
		{"AccessSecretVersion latest no versions", func() error { _, err := access(t, c, empty+"/versions/latest"); return err }},
		{"AccessSecretVersion missing version", func() error { _, err := access(t, c, one+"/versions/2"); return err }},
		{"AccessSecretVersion unknown alias", func() error { _, err := access(t, c, one+"/versions/nope"); return err }},
		{"GetSecretVersion missing version", func() error {
			_, err := c.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: one + "/versions/9"})
			return err
		}},
		{"DisableSecretVersion missing version", func() error {
			_, err := c.DisableSecretVersion(ctx, &secretmanagerpb.DisableSecretVersionRequest{Name: one + "/versions/9"})
			return err
		}},
		{"ListSecretVersions missing secret", func() error {
			_, err := c.ListSecretVersions(ctx, &secretmanagerpb.ListSecretVersionsRequest{Parent: missing}).Next()
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantCode(t, tt.call(), codes.NotFound) })
	}
	// The real service's message for "latest" on an empty secret.
	_, err := access(t, c, empty+"/versions/latest")
	wantCode(t, err, codes.NotFound, "not found or has no versions")
}

// https://cloud.google.com/secret-manager/docs/etags: "If an ETag is provided
// and matches the current resource ETag, the request succeeds; otherwise, it
// fails with a FAILED_PRECONDITION error"; "In a secrets.patch request, the
// request ETag is embedded in the Secret data"; "updating a secret version
// doesn't affect the secret ETag".
func TestSecretEtag(t *testing.T) {
	_, c := newClient(t)
	ctx := t.Context()
	s := createSecret(t, c, "etag", nil)
	stale := s.GetEtag()

	addVersion(t, c, s.GetName(), "v1") // versions do not touch the secret etag
	if got, _ := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: s.GetName()}); got.GetEtag() != stale {
		t.Fatalf("AddSecretVersion changed the secret etag: %q -> %q", stale, got.GetEtag())
	}

	up, err := c.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
		Secret:     &secretmanagerpb.Secret{Name: s.GetName(), Etag: stale, Labels: map[string]string{"a": "1"}},
		UpdateMask: mask("labels"),
	})
	if err != nil {
		t.Fatalf("update with current etag: %v", err)
	}
	if up.GetEtag() == stale {
		t.Fatal("update did not change the etag")
	}
	// Stale etag on update and delete.
	_, err = c.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
		Secret:     &secretmanagerpb.Secret{Name: s.GetName(), Etag: stale, Labels: map[string]string{"a": "2"}},
		UpdateMask: mask("labels"),
	})
	wantCode(t, err, codes.FailedPrecondition)
	err = c.DeleteSecret(ctx, &secretmanagerpb.DeleteSecretRequest{Name: s.GetName(), Etag: stale})
	wantCode(t, err, codes.FailedPrecondition)
	// The failed calls changed nothing.
	got, _ := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: s.GetName()})
	if got.GetLabels()["a"] != "1" || got.GetEtag() != up.GetEtag() {
		t.Fatalf("failed update modified the secret: %v", got)
	}
	// No etag: the request proceeds without checking.
	if _, err := c.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
		Secret: &secretmanagerpb.Secret{Name: s.GetName(), Labels: map[string]string{"a": "3"}}, UpdateMask: mask("labels"),
	}); err != nil {
		t.Fatalf("update without etag: %v", err)
	}
	got, _ = c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: s.GetName()})
	if err := c.DeleteSecret(ctx, &secretmanagerpb.DeleteSecretRequest{Name: s.GetName(), Etag: got.GetEtag()}); err != nil {
		t.Fatalf("delete with current etag: %v", err)
	}
}

// service.proto UpdateSecretRequest.update_mask: "Required. Specifies the
// fields to be updated." Only the listed fields change; unknown or immutable
// paths are rejected.
func TestUpdateMask(t *testing.T) {
	_, c := newClient(t)
	ctx := t.Context()
	orig, err := c.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{Parent: testProject, SecretId: "mask", Secret: &secretmanagerpb.Secret{
		Replication: automatic(),
		Labels:      map[string]string{"keep": "me"},
		Annotations: map[string]string{"note": "original"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	name := orig.GetName()

	// Only labels listed: annotations in the request are ignored.
	up, err := c.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
		Secret: &secretmanagerpb.Secret{
			Name:        name,
			Labels:      map[string]string{"new": "label"},
			Annotations: map[string]string{"note": "changed"},
		},
		UpdateMask: mask("labels"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(up.GetLabels(), map[string]string{"new": "label"}) {
		t.Errorf("labels = %v, want replaced by {new:label}", up.GetLabels())
	}
	if up.GetAnnotations()["note"] != "original" {
		t.Errorf("annotations changed without being in the mask: %v", up.GetAnnotations())
	}
	// Both listed.
	up, err = c.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
		Secret:     &secretmanagerpb.Secret{Name: name, Annotations: map[string]string{"note": "changed"}},
		UpdateMask: mask("labels", "annotations"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(up.GetLabels()) != 0 || up.GetAnnotations()["note"] != "changed" {
		t.Errorf("labels %v (want cleared), annotations %v", up.GetLabels(), up.GetAnnotations())
	}
	if !up.GetCreateTime().AsTime().Equal(orig.GetCreateTime().AsTime()) || up.GetReplication().GetAutomatic() == nil {
		t.Errorf("unlisted output fields changed: %v", up)
	}

	for _, tt := range []struct {
		name   string
		secret *secretmanagerpb.Secret
		mask   []string
		want   codes.Code
	}{
		{"no mask", &secretmanagerpb.Secret{Name: name}, nil, codes.InvalidArgument},
		{"unknown path", &secretmanagerpb.Secret{Name: name}, []string{"colour"}, codes.InvalidArgument},
		{"immutable replication", &secretmanagerpb.Secret{Name: name, Replication: automatic()}, []string{"replication"}, codes.InvalidArgument},
		{"output-only create_time", &secretmanagerpb.Secret{Name: name}, []string{"create_time"}, codes.InvalidArgument},
		{"invalid label value", &secretmanagerpb.Secret{Name: name, Labels: map[string]string{"k": "UPPER"}}, []string{"labels"}, codes.InvalidArgument},
		{"topics not emulated", &secretmanagerpb.Secret{Name: name}, []string{"topics"}, codes.Unimplemented},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := &secretmanagerpb.UpdateSecretRequest{Secret: tt.secret}
			if tt.mask != nil {
				req.UpdateMask = mask(tt.mask...)
			}
			_, err := c.UpdateSecret(ctx, req)
			wantCode(t, err, tt.want)
		})
	}
	got, _ := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: name})
	if got.GetEtag() != up.GetEtag() {
		t.Error("a rejected update changed the etag")
	}
}

// Deleting a secret deletes its versions; re-creating the ID starts again at
// version 1.
func TestDeleteSecret(t *testing.T) {
	_, c := newClient(t)
	s := createSecret(t, c, "gone", nil)
	addVersion(t, c, s.GetName(), "v1")
	addVersion(t, c, s.GetName(), "v2")
	if err := c.DeleteSecret(t.Context(), &secretmanagerpb.DeleteSecretRequest{Name: s.GetName()}); err != nil {
		t.Fatal(err)
	}
	_, err := access(t, c, s.GetName()+"/versions/1")
	wantCode(t, err, codes.NotFound)
	createSecret(t, c, "gone", nil)
	if v := addVersion(t, c, s.GetName(), "again"); !strings.HasSuffix(v.GetName(), "/versions/1") {
		t.Fatalf("re-created secret's first version is %s", v.GetName())
	}
}
