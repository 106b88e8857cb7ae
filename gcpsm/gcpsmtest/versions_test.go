package gcpsmtest

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"strings"
	"sync"
	"testing"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc/codes"
)

// resources.proto SecretVersion.name: "SecretVersion IDs in a Secret start at
// 1 and are incremented for each subsequent version of the secret."
// service.proto AccessSecretVersionRequest.name: "`.../versions/latest` is an
// alias to the most recently created SecretVersion" (most recently created,
// not most recently created *enabled*: a disabled newest version makes
// "latest" fail).
func TestVersionNumbersAndLatest(t *testing.T) {
	_, c := newClient(t)
	s := createSecret(t, c, "latest", nil).GetName()
	for i := 1; i <= 3; i++ {
		v := addVersion(t, c, s, fmt.Sprintf("payload-%d", i))
		if want := fmt.Sprintf("%s/versions/%d", s, i); v.GetName() != want {
			t.Fatalf("version name %q, want %q", v.GetName(), want)
		}
		if v.GetState() != secretmanagerpb.SecretVersion_ENABLED || v.GetCreateTime() == nil || v.GetEtag() == "" {
			t.Fatalf("new version %v: want ENABLED with create_time and etag", v)
		}
	}
	r, err := access(t, c, s+"/versions/latest")
	if err != nil {
		t.Fatal(err)
	}
	// The response names the resolved version, not "latest".
	if string(r.GetPayload().GetData()) != "payload-3" || r.GetName() != s+"/versions/3" {
		t.Fatalf("latest = %q (%s), want payload-3 (%s/versions/3)", r.GetPayload().GetData(), r.GetName(), s)
	}
	if got := mustAccess(t, c, s+"/versions/1"); got != "payload-1" {
		t.Fatalf("version 1 = %q", got)
	}

	if _, err := c.DisableSecretVersion(t.Context(), &secretmanagerpb.DisableSecretVersionRequest{Name: s + "/versions/3"}); err != nil {
		t.Fatal(err)
	}
	_, err = access(t, c, s+"/versions/latest")
	wantCode(t, err, codes.FailedPrecondition, s+"/versions/3] is in DISABLED state")
	v, err := c.GetSecretVersion(t.Context(), &secretmanagerpb.GetSecretVersionRequest{Name: s + "/versions/latest"})
	if err != nil {
		t.Fatal(err)
	}
	if v.GetName() != s+"/versions/3" || v.GetState() != secretmanagerpb.SecretVersion_DISABLED {
		t.Fatalf("GetSecretVersion(latest) = %v, want version 3 DISABLED", v)
	}
	// A newer version becomes latest again.
	addVersion(t, c, s, "payload-4")
	if got := mustAccess(t, c, s+"/versions/latest"); got != "payload-4" {
		t.Fatalf("latest = %q, want payload-4", got)
	}
	// Version IDs start at 1.
	_, err = access(t, c, s+"/versions/0")
	wantCode(t, err, codes.InvalidArgument)
}

// resources.proto SecretVersion.State: DISABLED "may not be accessed, but the
// secret data is still available and can be placed back into the ENABLED
// state"; DESTROYED "the secret data is no longer stored. A version may not
// leave this state once entered." The real service answers
// "FAILED_PRECONDITION: Secret Version [...] is in DISABLED state.".
// SecretVersion.destroy_time: "Only present if state is DESTROYED."
func TestAccessDisabledAndDestroyed(t *testing.T) {
	_, c := newClient(t)
	ctx := t.Context()
	s := createSecret(t, c, "states", nil).GetName()
	addVersion(t, c, s, "keep")
	v1 := s + "/versions/1"

	if _, err := c.DisableSecretVersion(ctx, &secretmanagerpb.DisableSecretVersionRequest{Name: v1}); err != nil {
		t.Fatal(err)
	}
	_, err := access(t, c, v1)
	wantCode(t, err, codes.FailedPrecondition, "Secret Version ["+v1+"] is in DISABLED state.")

	// Re-enabling restores access: the data was kept.
	if _, err := c.EnableSecretVersion(ctx, &secretmanagerpb.EnableSecretVersionRequest{Name: v1}); err != nil {
		t.Fatal(err)
	}
	if got := mustAccess(t, c, v1); got != "keep" {
		t.Fatalf("after enable: %q", got)
	}

	d, err := c.DestroySecretVersion(ctx, &secretmanagerpb.DestroySecretVersionRequest{Name: v1})
	if err != nil {
		t.Fatal(err)
	}
	if d.GetState() != secretmanagerpb.SecretVersion_DESTROYED || d.GetDestroyTime() == nil {
		t.Fatalf("destroyed version %v: want DESTROYED with destroy_time", d)
	}
	_, err = access(t, c, v1)
	wantCode(t, err, codes.FailedPrecondition, "is in DESTROYED state")
	g, err := c.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: v1})
	if err != nil || g.GetState() != secretmanagerpb.SecretVersion_DESTROYED || g.GetDestroyTime() == nil {
		t.Fatalf("GetSecretVersion(destroyed) = %v, %v", g, err)
	}
	// DESTROYED is terminal.
	_, err = c.EnableSecretVersion(ctx, &secretmanagerpb.EnableSecretVersionRequest{Name: v1})
	wantCode(t, err, codes.FailedPrecondition)
	_, err = c.DisableSecretVersion(ctx, &secretmanagerpb.DisableSecretVersionRequest{Name: v1})
	wantCode(t, err, codes.FailedPrecondition)
	_, err = c.DestroySecretVersion(ctx, &secretmanagerpb.DestroySecretVersionRequest{Name: v1})
	wantCode(t, err, codes.FailedPrecondition)
}

// https://cloud.google.com/secret-manager/docs/etags: Enable/Disable/Destroy
// accept an optional etag that must match ("otherwise, it fails with a
// FAILED_PRECONDITION error"); "Even when an update doesn't change a
// resource's state, it still updates the resource ETag"; "updating a secret
// version doesn't affect the secret ETag". AddSecretVersion takes no etag.
func TestVersionEtag(t *testing.T) {
	_, c := newClient(t)
	ctx := t.Context()
	sec := createSecret(t, c, "vetag", nil)
	v := addVersion(t, c, sec.GetName(), "x")

	_, err := c.DisableSecretVersion(ctx, &secretmanagerpb.DisableSecretVersionRequest{Name: v.GetName(), Etag: `"not-the-etag"`})
	wantCode(t, err, codes.FailedPrecondition)

	d, err := c.DisableSecretVersion(ctx, &secretmanagerpb.DisableSecretVersionRequest{Name: v.GetName(), Etag: v.GetEtag()})
	if err != nil {
		t.Fatalf("disable with current etag: %v", err)
	}
	if d.GetEtag() == v.GetEtag() {
		t.Fatal("state change kept the etag")
	}
	// A no-op disable still issues a new etag, so the previous one is stale.
	d2, err := c.DisableSecretVersion(ctx, &secretmanagerpb.DisableSecretVersionRequest{Name: v.GetName(), Etag: d.GetEtag()})
	if err != nil {
		t.Fatal(err)
	}
	if d2.GetEtag() == d.GetEtag() {
		t.Fatal("no-op disable kept the etag")
	}
	_, err = c.EnableSecretVersion(ctx, &secretmanagerpb.EnableSecretVersionRequest{Name: v.GetName(), Etag: d.GetEtag()})
	wantCode(t, err, codes.FailedPrecondition)
	_, err = c.DestroySecretVersion(ctx, &secretmanagerpb.DestroySecretVersionRequest{Name: v.GetName(), Etag: v.GetEtag()})
	wantCode(t, err, codes.FailedPrecondition)
	if _, err := c.DestroySecretVersion(ctx, &secretmanagerpb.DestroySecretVersionRequest{Name: v.GetName(), Etag: d2.GetEtag()}); err != nil {
		t.Fatalf("destroy with current etag: %v", err)
	}
	got, _ := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: sec.GetName()})
	if got.GetEtag() != sec.GetEtag() {
		t.Fatal("version state changes altered the secret etag")
	}
}

// resources.proto Secret.version_aliases: "A version alias is a string with a
// maximum length of 63 characters and can contain uppercase and lowercase
// letters, numerals, and the hyphen (`-`) and underscore ('_') characters. An
// alias string must start with a letter and cannot be the string 'latest' or
// 'NEW'. No more than 50 aliases ... Version-Alias pairs will be viewable via
// GetSecret and modifiable via UpdateSecret. Access by alias is only be
// supported on GetSecretVersion and AccessSecretVersion."
// https://cloud.google.com/secret-manager/docs/assign-alias-to-secret-version
func TestVersionAliases(t *testing.T) {
	_, c := newClient(t)
	ctx := t.Context()
	s := createSecret(t, c, "aliases", nil).GetName()
	addVersion(t, c, s, "one")
	addVersion(t, c, s, "two")

	setAliases := func(a map[string]int64) error {
		_, err := c.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
			Secret: &secretmanagerpb.Secret{Name: s, VersionAliases: a}, UpdateMask: mask("version_aliases"),
		})
		return err
	}
	if err := setAliases(map[string]int64{"current": 1, "Next_v-2": 2}); err != nil {
		t.Fatal(err)
	}
	got, _ := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: s})
	if got.GetVersionAliases()["current"] != 1 || got.GetVersionAliases()["Next_v-2"] != 2 {
		t.Fatalf("GetSecret aliases = %v", got.GetVersionAliases())
	}
	if v := mustAccess(t, c, s+"/versions/current"); v != "one" {
		t.Fatalf("access by alias current = %q, want one", v)
	}
	r, err := access(t, c, s+"/versions/Next_v-2")
	if err != nil || string(r.GetPayload().GetData()) != "two" || r.GetName() != s+"/versions/2" {
		t.Fatalf("access by alias Next_v-2 = %v, %v", r, err)
	}
	gv, err := c.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: s + "/versions/current"})
	if err != nil || gv.GetName() != s+"/versions/1" {
		t.Fatalf("GetSecretVersion(alias) = %v, %v", gv, err)
	}
	// An alias follows its version's state.
	if _, err := c.DisableSecretVersion(ctx, &secretmanagerpb.DisableSecretVersionRequest{Name: s + "/versions/1"}); err != nil {
		t.Fatal(err)
	}
	_, err = access(t, c, s+"/versions/current")
	wantCode(t, err, codes.FailedPrecondition, "is in DISABLED state")
	// State changes need a version number.
	_, err = c.EnableSecretVersion(ctx, &secretmanagerpb.EnableSecretVersionRequest{Name: s + "/versions/current"})
	wantCode(t, err, codes.InvalidArgument)
	_, err = c.DisableSecretVersion(ctx, &secretmanagerpb.DisableSecretVersionRequest{Name: s + "/versions/latest"})
	wantCode(t, err, codes.InvalidArgument)

	tooMany := map[string]int64{}
	for i := range 51 {
		tooMany[fmt.Sprintf("a%d", i)] = 1
	}
	for _, tt := range []struct {
		name    string
		aliases map[string]int64
	}{
		{"missing version", map[string]int64{"future": 3}},
		{"version zero", map[string]int64{"zero": 0}},
		{"latest reserved", map[string]int64{"latest": 1}},
		{"NEW reserved", map[string]int64{"NEW": 1}},
		{"starts with digit", map[string]int64{"1st": 1}},
		{"dot", map[string]int64{"a.b": 1}},
		{"64 chars", map[string]int64{"a" + strings.Repeat("b", 63): 1}},
		{"51 aliases", tooMany},
	} {
		t.Run(tt.name, func(t *testing.T) { wantCode(t, setAliases(tt.aliases), codes.InvalidArgument) })
	}
	if err := setAliases(map[string]int64{"a" + strings.Repeat("b", 62): 2}); err != nil {
		t.Fatalf("63-char alias: %v", err)
	}
	// Replacing the map removes the old aliases.
	_, err = access(t, c, s+"/versions/current")
	wantCode(t, err, codes.NotFound)
}

// resources.proto SecretPayload.data: "The secret data. Must be no larger than
// 64KiB." AddSecretVersionRequest.payload: "Required."
func TestPayloadSizeLimit(t *testing.T) {
	_, c := newClient(t)
	s := createSecret(t, c, "big", nil).GetName()
	for _, tt := range []struct {
		size int
		want codes.Code
	}{
		{0, codes.OK},
		{65536, codes.OK},
		{65537, codes.InvalidArgument},
	} {
		t.Run(fmt.Sprint(tt.size), func(t *testing.T) {
			data := bytes.Repeat([]byte{0xA5}, tt.size)
			v, err := c.AddSecretVersion(t.Context(), &secretmanagerpb.AddSecretVersionRequest{
				Parent: s, Payload: &secretmanagerpb.SecretPayload{Data: data},
			})
			wantCode(t, err, tt.want)
			if err == nil {
				r, err := access(t, c, v.GetName())
				if err != nil || !bytes.Equal(r.GetPayload().GetData(), data) {
					t.Fatalf("round trip of %d bytes failed: %v", tt.size, err)
				}
			}
		})
	}
	_, err := c.AddSecretVersion(t.Context(), &secretmanagerpb.AddSecretVersionRequest{Parent: s})
	wantCode(t, err, codes.InvalidArgument)
}

// resources.proto SecretPayload.data_crc32c: "If specified, SecretManagerService
// will verify the integrity of the received data on AddSecretVersion calls
// using the crc32c checksum and store it to include in future
// AccessSecretVersion responses. If a checksum is not provided ... will
// generate and store one for you." SecretVersion.client_specified_payload_checksum:
// "True if payload checksum specified in SecretPayload object has been
// received". https://cloud.google.com/secret-manager/docs/data-integrity
func TestPayloadCRC32C(t *testing.T) {
	_, c := newClient(t)
	s := createSecret(t, c, "crc", nil).GetName()
	data := []byte("refresh-token-value")
	sum := int64(crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)))
	bad := sum ^ 1

	v, err := c.AddSecretVersion(t.Context(), &secretmanagerpb.AddSecretVersionRequest{
		Parent: s, Payload: &secretmanagerpb.SecretPayload{Data: data, DataCrc32C: &sum},
	})
	if err != nil {
		t.Fatalf("good checksum: %v", err)
	}
	if !v.GetClientSpecifiedPayloadChecksum() {
		t.Error("client_specified_payload_checksum = false, want true")
	}
	r, err := access(t, c, v.GetName())
	if err != nil || r.GetPayload().GetDataCrc32C() != sum {
		t.Fatalf("access crc = %v (%v), want %d", r.GetPayload().DataCrc32C, err, sum)
	}

	_, err = c.AddSecretVersion(t.Context(), &secretmanagerpb.AddSecretVersionRequest{
		Parent: s, Payload: &secretmanagerpb.SecretPayload{Data: data, DataCrc32C: &bad},
	})
	wantCode(t, err, codes.InvalidArgument)

	// Without a client checksum the server computes one.
	v2 := addVersion(t, c, s, string(data))
	if v2.GetClientSpecifiedPayloadChecksum() {
		t.Error("client_specified_payload_checksum = true without a checksum")
	}
	if !strings.HasSuffix(v2.GetName(), "/versions/2") {
		t.Errorf("rejected add consumed a version number: got %s", v2.GetName())
	}
	r, err = access(t, c, v2.GetName())
	if err != nil || r.GetPayload().DataCrc32C == nil || r.GetPayload().GetDataCrc32C() != sum {
		t.Fatalf("server-computed crc = %v (%v), want %d", r.GetPayload().DataCrc32C, err, sum)
	}
}

// The emulator must hand out distinct, gap-free version numbers under
// concurrency (32 goroutines adding, others reading latest).
func TestConcurrentAddSecretVersion(t *testing.T) {
	_, c := newClient(t)
	s := createSecret(t, c, "race", nil).GetName()
	addVersion(t, c, s, "seed")
	const n = 32
	var wg sync.WaitGroup
	names := make(chan string, n)
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			v, err := c.AddSecretVersion(t.Context(), &secretmanagerpb.AddSecretVersionRequest{
				Parent: s, Payload: &secretmanagerpb.SecretPayload{Data: fmt.Appendf(nil, "p%d", i)},
			})
			if err != nil {
				errs <- err
				return
			}
			names <- v.GetName()
		}()
		go func() {
			defer wg.Done()
			if _, err := access(t, c, s+"/versions/latest"); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(names)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for name := range names {
		if seen[name] {
			t.Fatalf("version %s handed out twice", name)
		}
		seen[name] = true
	}
	for i := 2; i <= n+1; i++ {
		if !seen[fmt.Sprintf("%s/versions/%d", s, i)] {
			t.Fatalf("version %d missing; got %v", i, seen)
		}
	}
}
