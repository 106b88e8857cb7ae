package gcpsmtest

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
)

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

const testLag = 10 * time.Second

// newLaggingClient starts an emulator with WithEventualConsistency(testLag)
// on a manual clock.
func newLaggingClient(t *testing.T, opts ...Option) (*ManualClock, *secretmanager.Client) {
	t.Helper()
	clock := NewManualClock(epoch)
	_, c := newClient(t, append([]Option{WithClock(clock.Now), WithEventualConsistency(testLag)}, opts...)...)
	return clock, c
}

func setAliases(t *testing.T, c *secretmanager.Client, sec *secretmanagerpb.Secret, aliases map[string]int64) *secretmanagerpb.Secret {
	t.Helper()
	out, err := c.UpdateSecret(t.Context(), &secretmanagerpb.UpdateSecretRequest{
		Secret:     &secretmanagerpb.Secret{Name: sec.GetName(), Etag: sec.GetEtag(), VersionAliases: aliases},
		UpdateMask: mask("version_aliases"),
	})
	if err != nil {
		t.Fatalf("UpdateSecret(%v): %v", aliases, err)
	}
	return out
}

func versionNumbers(t *testing.T, c *secretmanager.Client, secret string) []string {
	t.Helper()
	var out []string
	it := c.ListSecretVersions(t.Context(), &secretmanagerpb.ListSecretVersionsRequest{Parent: secret})
	for {
		v, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v.GetName()[strings.LastIndexByte(v.GetName(), '/')+1:]+":"+v.GetState().String())
	}
}

// A write made "now" is invisible to lagging reads until the clock has
// moved past it by the lag, except where the documentation promises
// strong consistency: access by version number.
func TestEventualConsistencyLaggingReads(t *testing.T) {
	clock, c := newLaggingClient(t)
	sec := createSecret(t, c, "lagging", nil)
	s := sec.GetName()
	addVersion(t, c, s, "one")
	sec = setAliases(t, c, sec, map[string]int64{"current": 1})
	clock.Advance(time.Minute) // everything so far is visible to every reader

	addVersion(t, c, s, "two")
	fresh := setAliases(t, c, sec, map[string]int64{"current": 2})

	// The alias and "latest" resolve in the old snapshot; version 2 by
	// number is there at once.
	for _, name := range []string{s + "/versions/current", s + "/versions/latest"} {
		r, err := access(t, c, name)
		if err != nil || string(r.GetPayload().GetData()) != "one" || r.GetName() != s+"/versions/1" {
			t.Fatalf("lagging access of %s = %v, %v; want version 1", name, r, err)
		}
	}
	if got := mustAccess(t, c, s+"/versions/2"); got != "two" {
		t.Fatalf("access by number = %q, want two", got)
	}
	got, err := c.GetSecret(t.Context(), &secretmanagerpb.GetSecretRequest{Name: s})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetEtag() != sec.GetEtag() || got.GetVersionAliases()["current"] != 1 {
		t.Fatalf("lagging GetSecret = etag %s aliases %v; want the old etag %s and current=1", got.GetEtag(), got.GetVersionAliases(), sec.GetEtag())
	}
	if v := versionNumbers(t, c, s); len(v) != 1 || v[0] != "1:ENABLED" {
		t.Fatalf("lagging ListSecretVersions = %v, want only version 1", v)
	}

	// The version the stale alias names is destroyed: the read fails as
	// on the real service.
	if _, err := c.DestroySecretVersion(t.Context(), &secretmanagerpb.DestroySecretVersionRequest{Name: s + "/versions/1"}); err != nil {
		t.Fatal(err)
	}
	_, err = access(t, c, s+"/versions/current")
	wantCode(t, err, codes.FailedPrecondition, s+"/versions/1] is in DESTROYED state")
	// The lagging version list still shows version 1 as it was.
	if v := versionNumbers(t, c, s); len(v) != 1 || v[0] != "1:ENABLED" {
		t.Fatalf("lagging ListSecretVersions = %v, want version 1 still ENABLED", v)
	}

	// Once the clock has moved by the lag, every read is fresh.
	clock.Advance(testLag)
	if got := mustAccess(t, c, s+"/versions/current"); got != "two" {
		t.Fatalf("access after the lag = %q, want two", got)
	}
	got, err = c.GetSecret(t.Context(), &secretmanagerpb.GetSecretRequest{Name: s})
	if err != nil || got.GetEtag() != fresh.GetEtag() {
		t.Fatalf("GetSecret after the lag = %v, %v; want etag %s", got, err, fresh.GetEtag())
	}
	if v := versionNumbers(t, c, s); len(v) != 2 || v[0] != "2:ENABLED" || v[1] != "1:DESTROYED" {
		t.Fatalf("ListSecretVersions after the lag = %v", v)
	}
}

// Conditional writes are checked against the real state: a stale etag
// fails, the real one succeeds, and CreateSecret sees a secret that
// lagging reads do not.
func TestEventualConsistencyWritesAreFresh(t *testing.T) {
	clock, c := newLaggingClient(t)
	ctx := t.Context()
	sec := createSecret(t, c, "fresh-writes", nil)
	s := sec.GetName()

	// Just created: lagging reads miss it, writes see it.
	_, err := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: s})
	wantCode(t, err, codes.NotFound)
	_, err = c.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{
		Parent: testProject, SecretId: "fresh-writes", Secret: &secretmanagerpb.Secret{Replication: automatic()},
	})
	wantCode(t, err, codes.AlreadyExists)
	addVersion(t, c, s, "one")
	addVersion(t, c, s, "two")
	moved := setAliases(t, c, sec, map[string]int64{"current": 2})
	if ids, _ := listAll(t, c, "", 100); len(ids) != 0 {
		t.Fatalf("lagging ListSecrets lists %v before the lag has passed", ids)
	}
	_, err = access(t, c, s+"/versions/current")
	wantCode(t, err, codes.NotFound)

	clock.Advance(time.Minute)
	// A stale etag (the creation's) is refused; the real one works.
	_, err = c.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
		Secret:     &secretmanagerpb.Secret{Name: s, Etag: sec.GetEtag(), VersionAliases: map[string]int64{"current": 1}},
		UpdateMask: mask("version_aliases"),
	})
	wantCode(t, err, codes.FailedPrecondition)
	moved = setAliases(t, c, moved, map[string]int64{"current": 1})
	// Lagging reads still see current=2 and its etag; a delete under that
	// etag is refused.
	lagging, err := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: s})
	if err != nil {
		t.Fatal(err)
	}
	if lagging.GetVersionAliases()["current"] != 2 {
		t.Fatalf("lagging aliases %v, want current=2", lagging.GetVersionAliases())
	}
	err = c.DeleteSecret(ctx, &secretmanagerpb.DeleteSecretRequest{Name: s, Etag: lagging.GetEtag()})
	wantCode(t, err, codes.FailedPrecondition)
	if err := c.DeleteSecret(ctx, &secretmanagerpb.DeleteSecretRequest{Name: s, Etag: moved.GetEtag()}); err != nil {
		t.Fatal(err)
	}
	// Deleted: writes see it gone at once, lagging reads still see it.
	_, err = c.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{Parent: s, Payload: &secretmanagerpb.SecretPayload{Data: []byte("x")}})
	wantCode(t, err, codes.NotFound)
	if got := mustAccess(t, c, s+"/versions/current"); got != "two" {
		t.Fatalf("lagging access after delete = %q, want two", got)
	}
	if ids, _ := listAll(t, c, "", 100); len(ids) != 1 {
		t.Fatalf("lagging ListSecrets after delete = %v, want the deleted secret", ids)
	}
	clock.Advance(testLag)
	_, err = c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: s})
	wantCode(t, err, codes.NotFound)
	if ids, _ := listAll(t, c, "", 100); len(ids) != 0 {
		t.Fatalf("ListSecrets after the lag = %v", ids)
	}
}

// Each lagging read draws its own staleness: halfway through the lag,
// reads of one alias answer both the old and the new version, in an
// order fixed by the seed.
func TestEventualConsistencyDraws(t *testing.T) {
	sequence := func(seed uint64) string {
		clock, c := newLaggingClient(t, WithConsistencySeed(seed))
		sec := createSecret(t, c, "draws", nil)
		s := sec.GetName()
		addVersion(t, c, s, "old")
		sec = setAliases(t, c, sec, map[string]int64{"current": 1})
		clock.Advance(time.Minute)
		addVersion(t, c, s, "new")
		setAliases(t, c, sec, map[string]int64{"current": 2})
		clock.Advance(testLag / 2)
		var b strings.Builder
		for range 64 {
			r, err := access(t, c, s+"/versions/current")
			if err != nil {
				t.Fatal(err)
			}
			b.WriteString(strings.TrimPrefix(r.GetName(), s+"/versions/"))
		}
		return b.String()
	}
	a, again, other := sequence(7), sequence(7), sequence(8)
	if !strings.Contains(a, "1") || !strings.Contains(a, "2") {
		t.Errorf("64 reads halfway through the lag answered %s: want both versions", a)
	}
	if strings.Contains(a, "21") {
		t.Logf("non-monotonic: a read of version 2 was followed by one of version 1 (%s)", a)
	} else {
		t.Errorf("reads %s are monotonic; independent draws should go back sometimes", a)
	}
	if a != again {
		t.Errorf("seed 7 gave %s then %s", a, again)
	}
	if a == other {
		t.Errorf("seeds 7 and 8 gave the same sequence %s", a)
	}
	n1 := strings.Count(a, "1")
	t.Logf("seed 7: %d of %d reads stale: %s", n1, len(a), a)
}

func TestOptionValidation(t *testing.T) {
	bad := []Option{
		nil,
		WithEventualConsistency(0),
		WithEventualConsistency(-time.Second),
		WithClock(nil),
		WithSecretWriteRate(SecretRate{}),
		WithSecretWriteRate(SecretRate{PerSecond: -1, PerMinute: 5}),
		WithProjectQuotas(ProjectQuotas{}),
		WithProjectQuotas(ProjectQuotas{ReadPerMinute: -1, WritePerMinute: 1}),
		WithProjectNumber("", 1),
		WithProjectNumber("p", 0),
	}
	for i, o := range bad {
		srv, err := New(o)
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("option %d: New = %v, want ErrInvalidConfig", i, err)
		}
		if srv != nil {
			srv.Close()
		}
	}
}

// The clock stamps create_time and destroy_time.
func TestClockStampsTimes(t *testing.T) {
	clock := NewManualClock(epoch)
	_, c := newClient(t, WithClock(clock.Now))
	sec := createSecret(t, c, "clocked", nil)
	if !sec.GetCreateTime().AsTime().Equal(epoch) {
		t.Errorf("create_time %v, want %v", sec.GetCreateTime().AsTime(), epoch)
	}
	clock.Advance(time.Hour)
	v := addVersion(t, c, sec.GetName(), "x")
	if !v.GetCreateTime().AsTime().Equal(epoch.Add(time.Hour)) {
		t.Errorf("version create_time %v", v.GetCreateTime().AsTime())
	}
	clock.Advance(time.Hour)
	d, err := c.DestroySecretVersion(t.Context(), &secretmanagerpb.DestroySecretVersionRequest{Name: v.GetName()})
	if err != nil {
		t.Fatal(err)
	}
	if !d.GetDestroyTime().AsTime().Equal(epoch.Add(2 * time.Hour)) {
		t.Errorf("destroy_time %v", d.GetDestroyTime().AsTime())
	}
	// create_time filters use the same clock.
	ids, _ := listAll(t, c, "create_time<"+strconv.Quote(epoch.Add(time.Minute).Format(time.RFC3339)), 100)
	if len(ids) != 1 {
		t.Errorf("create_time filter listed %v", ids)
	}
}
