package gcpsmtest

import (
	"fmt"
	"testing"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/grpc/codes"
)

// noRetry turns off the client's own retry of RESOURCE_EXHAUSTED (the
// official client retries AccessSecretVersion by default), so that a
// test sees each rejection.
var noRetry = gax.WithRetry(nil)

func add(c *secretmanager.Client, t *testing.T, secret string) error {
	_, err := c.AddSecretVersion(t.Context(), &secretmanagerpb.AddSecretVersionRequest{
		Parent: secret, Payload: &secretmanagerpb.SecretPayload{Data: []byte("x")},
	})
	return err
}

// The documented per-secret soft limit: 2 AddSecretVersion + UpdateSecret
// per second on a global secret. The third write in a second is
// RESOURCE_EXHAUSTED and not applied; other secrets are not affected; a
// second later the secret takes writes again.
func TestSecretWriteRate(t *testing.T) {
	clock := NewManualClock(epoch)
	srv, c := newClient(t, WithClock(clock.Now), WithSecretWriteRate(DocumentedSecretWriteRate()))
	sec := createSecret(t, c, "rated", nil)
	s := sec.GetName()
	other := createSecret(t, c, "other", nil).GetName()

	if err := add(c, t, s); err != nil {
		t.Fatal(err)
	}
	setAliases(t, c, sec, map[string]int64{"current": 1}) // the second write of this second
	err := add(c, t, s)
	wantCode(t, err, codes.ResourceExhausted, "per second")
	_, err = c.UpdateSecret(t.Context(), &secretmanagerpb.UpdateSecretRequest{
		Secret: &secretmanagerpb.Secret{Name: s, Labels: map[string]string{"a": "b"}}, UpdateMask: mask("labels"),
	})
	wantCode(t, err, codes.ResourceExhausted)
	if v := versionNumbers(t, c, s); len(v) != 1 {
		t.Fatalf("versions %v: a rejected AddSecretVersion was applied", v)
	}
	// Reads, other write kinds and other secrets are not limited.
	mustAccess(t, c, s+"/versions/1")
	if _, err := c.DisableSecretVersion(t.Context(), &secretmanagerpb.DisableSecretVersionRequest{Name: s + "/versions/1"}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := add(c, t, other); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(999 * time.Millisecond)
	wantCode(t, add(c, t, s), codes.ResourceExhausted)
	clock.Advance(time.Millisecond) // one second after the first two
	if err := add(c, t, s); err != nil {
		t.Fatalf("a second later: %v", err)
	}
	if n := srv.Throttled(); n != 3 {
		t.Errorf("Throttled() = %d, want 3", n)
	}
}

// The per-minute part of a SecretRate is a sliding minute.
func TestSecretWriteRatePerMinute(t *testing.T) {
	clock := NewManualClock(epoch)
	_, c := newClient(t, WithClock(clock.Now), WithSecretWriteRate(SecretRate{PerMinute: 3}))
	s := createSecret(t, c, "minute", nil).GetName()
	for i := range 3 {
		if err := add(c, t, s); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		clock.Advance(10 * time.Second)
	}
	// Writes at 0 s, 10 s and 20 s; now is 30 s.
	wantCode(t, add(c, t, s), codes.ResourceExhausted, "per minute")
	clock.Set(epoch.Add(time.Minute)) // the write at 0 s is a minute old
	if err := add(c, t, s); err != nil {
		t.Fatal(err)
	}
	wantCode(t, add(c, t, s), codes.ResourceExhausted)
}

// The documented project quotas: 600 writes per minute per project; the
// 601st is RESOURCE_EXHAUSTED, reads have their own quota, and the next
// minute has room again.
func TestProjectWriteQuota(t *testing.T) {
	clock := NewManualClock(epoch)
	srv, c := newClient(t, WithClock(clock.Now), WithProjectQuotas(DocumentedProjectQuotas()))
	s := createSecret(t, c, "quota", nil).GetName() // write 1
	for i := 2; i <= DocumentedWritePerMinute; i++ {
		if err := add(c, t, s); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	wantCode(t, add(c, t, s), codes.ResourceExhausted, "Write requests")
	if _, err := c.CreateSecret(t.Context(), &secretmanagerpb.CreateSecretRequest{
		Parent: testProject, SecretId: "late", Secret: &secretmanagerpb.Secret{Replication: automatic()},
	}); err == nil {
		t.Fatal("CreateSecret past the write quota succeeded")
	}
	// Reads and another project are unaffected.
	if _, err := c.GetSecret(t.Context(), &secretmanagerpb.GetSecretRequest{Name: s}); err != nil {
		t.Fatal(err)
	}
	mustAccess(t, c, s+"/versions/1")
	if _, err := c.CreateSecret(t.Context(), &secretmanagerpb.CreateSecretRequest{
		Parent: "projects/other", SecretId: "elsewhere", Secret: &secretmanagerpb.Secret{Replication: automatic()},
	}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	if err := add(c, t, s); err != nil {
		t.Fatalf("next minute: %v", err)
	}
	if n := srv.Throttled(); n != 2 {
		t.Errorf("Throttled() = %d, want 2", n)
	}
}

// Read and access quotas count their own kinds of requests.
func TestProjectReadAndAccessQuotas(t *testing.T) {
	clock := NewManualClock(epoch)
	_, c := newClient(t, WithClock(clock.Now), WithProjectQuotas(ProjectQuotas{AccessPerMinute: 3, ReadPerMinute: 2}))
	s := createSecret(t, c, "reads", nil).GetName()
	addVersion(t, c, s, "x")
	ctx := t.Context()
	for i := range 3 {
		if _, err := c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: s + "/versions/1"}, noRetry); err != nil {
			t.Fatalf("access %d: %v", i, err)
		}
	}
	_, err := c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: s + "/versions/1"}, noRetry)
	wantCode(t, err, codes.ResourceExhausted, "Access requests")
	if _, err := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: s}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListSecrets(ctx, &secretmanagerpb.ListSecretsRequest{Parent: testProject}).Next(); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: s + "/versions/1"})
	wantCode(t, err, codes.ResourceExhausted, "Read requests")
	// Writes have no quota here.
	for i := range 5 {
		if err := add(c, t, s); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	clock.Advance(time.Minute)
	if _, err := c.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: s + "/versions/1"}); err != nil {
		t.Fatal(fmt.Errorf("next minute: %w", err))
	}
}
