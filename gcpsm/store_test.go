package gcpsm_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cloudtokens/cloudtokens/gcpsm"
	"github.com/cloudtokens/cloudtokens/gcpsm/gcpsmtest"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// TestRefreshesKeepTwoLiveVersions refreshes one token 100 times: every
// refresh destroys the version the previous alias named before it, so the
// token's secret keeps exactly 2 billed (ENABLED or DISABLED) versions,
// the current one and the one before it, which a lagging reader may still
// resolve the current alias to.
func TestRefreshesKeepTwoLiveVersions(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.store(t, newPrefix())
	tk := tok("carol")
	if err := s.SaveToken(ctx, tk); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		r := &tokenstore.Token{ID: tk.ID, AccessToken: fmt.Sprintf("access-VALUE-%d", i), Expiry: time.Now().Add(time.Hour)}
		if err := s.SaveToken(ctx, r); err != nil {
			t.Fatalf("refresh %d: %v", i, err)
		}
	}
	got, err := s.FindTokenByID(ctx, tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken != "access-VALUE-99" {
		t.Errorf("after 100 refreshes the stored access token is not the last one")
	}
	for _, id := range []string{s.SecretID(tk.ID), s.IndexSecretID(0)} {
		st := e.versionStates(t, id)
		t.Logf("%s: %v", id, st)
		if live := st[secretmanagerpb.SecretVersion_ENABLED] + st[secretmanagerpb.SecretVersion_DISABLED]; live > 2 {
			t.Errorf("%s has %d ENABLED or DISABLED versions, want at most 2", id, live)
		}
	}
	// Versions 1..101: 100 and 101 (previous and current) are kept.
	id := s.SecretID(tk.ID)
	if st := e.versionStates(t, id); st[secretmanagerpb.SecretVersion_ENABLED] != 2 || st[secretmanagerpb.SecretVersion_DESTROYED] != 99 {
		t.Errorf("token secret versions %v, want 2 ENABLED and 99 DESTROYED", st)
	}
	sec, err := e.raw.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: secretPath(id)})
	if err != nil {
		t.Fatal(err)
	}
	if a := sec.GetVersionAliases(); a[gcpsm.CurrentAlias] != 101 || a[gcpsm.PreviousAlias] != 100 {
		t.Errorf("aliases %v, want current=101 previous=100", a)
	}
	// The previous version is still readable, as a lagging reader needs.
	if _, err := e.raw.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: secretPath(id) + "/versions/" + gcpsm.PreviousAlias}); err != nil {
		t.Errorf("previous version: %v", err)
	}
}

// TestBackendCompareAndSwap runs concurrent read-increment-update loops on
// one document through two connections: no increment may be lost, and
// every loser's version must be destroyed.
func TestBackendCompareAndSwap(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	prefix := newPrefix()
	other, _ := newRecordedClient(t, e.srv)
	backends := []casstore.Backend{
		gcpsm.BackendOf(newStore(t, e.client, prefix)),
		gcpsm.BackendOf(newStore(t, other, prefix)),
	}
	const doc = "index-0"
	if _, err := backends[0].Create(ctx, doc, []byte("0")); err != nil {
		t.Fatal(err)
	}
	if _, err := backends[1].Create(ctx, doc, []byte("0")); !errors.Is(err, casstore.ErrExists) {
		t.Fatalf("second Create: %v, want ErrExists", err)
	}
	const workers, each = 8, 10
	var mismatches atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			b := backends[w%2]
			for range each {
				for {
					obj, err := b.Read(ctx, doc)
					if err != nil {
						t.Error(err)
						return
					}
					n, _ := strconv.Atoi(string(obj.Value))
					_, err = b.Update(ctx, doc, []byte(strconv.Itoa(n+1)), obj.Version)
					if err == nil {
						break
					}
					if !errors.Is(err, casstore.ErrVersionMismatch) {
						t.Error(err)
						return
					}
					mismatches.Add(1)
				}
			}
		})
	}
	wg.Wait()
	obj, err := backends[0].Read(ctx, doc)
	if err != nil {
		t.Fatal(err)
	}
	if string(obj.Value) != strconv.Itoa(workers*each) {
		t.Errorf("counter = %s, want %d: an update was lost", obj.Value, workers*each)
	}
	id := prefix + "_" + doc
	st := e.versionStates(t, id)
	t.Logf("%d updates, %d lost races; versions: %v", workers*each, mismatches.Load(), st)
	if live := e.live(t, id); live != 2 {
		t.Errorf("%d live versions after the race, want 2: current and previous (losers' versions must be destroyed)", live)
	}
	if mismatches.Load() == 0 {
		t.Log("no race was lost in this run; the loser path is covered by TestLoserDestroysItsVersion")
	}
}

// TestLoserDestroysItsVersion forces a lost compare-and-swap: the alias
// moves between the store's GetSecret and its UpdateSecret.
func TestLoserDestroysItsVersion(t *testing.T) {
	var e *env
	var interfere atomic.Bool
	var secretID string
	// Just before the store's UpdateSecret reaches the server, another
	// writer moves the alias, so the store's etag is stale.
	hook := grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if r, ok := req.(*secretmanagerpb.UpdateSecretRequest); ok && interfere.Load() && strings.HasSuffix(r.GetSecret().GetName(), "/"+secretID) {
			if interfere.CompareAndSwap(true, false) { // once; the nested UpdateSecret passes
				e.setCurrentAsync(secretID, []byte(`{"format":1}`))
			}
		}
		return h(ctx, req)
	})
	e = newEnv(t, gcpsmtest.WithServerOptions(hook))
	ctx := context.Background()
	prefix := newPrefix()
	b := gcpsm.BackendOf(e.store(t, prefix))
	v1, err := b.Create(ctx, "token-x", []byte(`{"format":1,"n":1}`))
	if err != nil {
		t.Fatal(err)
	}
	secretID = prefix + "_token-x"
	interfere.Store(true)
	e.rec.take()
	_, err = b.Update(ctx, "token-x", []byte(`{"format":1,"n":2}`), v1)
	if !errors.Is(err, casstore.ErrVersionMismatch) {
		t.Fatalf("Update under interference: %v, want ErrVersionMismatch", err)
	}
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("the cause %v is not kept", err)
	}
	st := e.versionStates(t, secretID)
	// v1 (the alias target before the interference) and the interfering
	// version are live; the store's version is destroyed.
	if st[secretmanagerpb.SecretVersion_DESTROYED] != 1 {
		t.Errorf("versions %v: the loser's version was not destroyed", st)
	}
	// The store remembered the etag from its create: no GetSecret before
	// the write, one after the failed move to see what happened.
	if c := e.rec.take(); summary(c) != "AddSecretVersion×1, DestroySecretVersion×1, GetSecret×1, UpdateSecret×1" {
		t.Errorf("a race lost at the move made calls {%s}", summary(c))
	}
	// That GetSecret showed a newer current version: a write from the
	// stale expected version is refused before any call.
	e.rec.take()
	if _, err := b.Update(ctx, "token-x", []byte(`{}`), v1); !errors.Is(err, casstore.ErrVersionMismatch) {
		t.Fatalf("Update with a stale version: %v, want ErrVersionMismatch", err)
	}
	if c := e.rec.take(); len(c) != 0 {
		t.Errorf("stale Update made calls {%s}, want none", summary(c))
	}
	// Another store, which has not seen the secret, reads the etag and
	// refuses before adding a version.
	other := gcpsm.BackendOf(e.store(t, prefix))
	if _, err := other.Update(ctx, "token-x", []byte(`{}`), v1); !errors.Is(err, casstore.ErrVersionMismatch) {
		t.Fatalf("Update with a stale version: %v, want ErrVersionMismatch", err)
	}
	if c := e.rec.take(); summary(c) != "GetSecret×1" {
		t.Errorf("stale Update by another store made calls {%s}, want only GetSecret", summary(c))
	}
	if _, err := b.Update(ctx, "token-x", []byte(`{}`), "not-a-number"); !errors.Is(err, casstore.ErrVersionMismatch) {
		t.Errorf("Update with a foreign version: %v, want ErrVersionMismatch", err)
	}
}

// setCurrentAsync is setCurrent for use inside a server interceptor (no
// *testing.T; failures surface as the test's own assertions failing).
func (e *env) setCurrentAsync(id string, data []byte) {
	ctx := context.Background()
	v, err := e.raw.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{
		Parent: secretPath(id), Payload: &secretmanagerpb.SecretPayload{Data: data},
	})
	if err != nil {
		return
	}
	sec, err := e.raw.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: secretPath(id)})
	if err != nil {
		return
	}
	n, _ := strconv.ParseInt(v.GetName()[strings.LastIndexByte(v.GetName(), '/')+1:], 10, 64)
	aliases := sec.GetVersionAliases()
	aliases[gcpsm.CurrentAlias] = n
	_, _ = e.raw.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
		Secret:     &secretmanagerpb.Secret{Name: sec.GetName(), Etag: sec.GetEtag(), VersionAliases: aliases},
		UpdateMask: fieldMask("version_aliases"),
	})
}

// TestConcurrentInsertsShareOneIndex saves 40 users from 8 goroutines over
// two connections: every insert claims keys in the one index shard, so
// this is a compare-and-swap race on one document through the public API.
func TestConcurrentInsertsShareOneIndex(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	prefix := newPrefix()
	other, _ := newRecordedClient(t, e.srv)
	stores := []*gcpsm.Store{e.store(t, prefix), newStore(t, other, prefix)}
	const users = 40
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for u := g; u < users; u += 8 {
				if err := stores[u%2].SaveToken(ctx, tok(fmt.Sprintf("u%02d", u))); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	for u := range users {
		if _, err := stores[(u+1)%2].FindToken(ctx, &tokenstore.Token{UserName: fmt.Sprintf("u%02d", u)}); err != nil {
			t.Errorf("user u%02d: %v", u, err)
		}
	}
	r, err := stores[0].Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() || r.Tokens != users {
		t.Errorf("Check: %v", r)
	}
	if live := e.live(t, stores[0].IndexSecretID(0)); live != 2 {
		t.Errorf("index secret has %d live versions, want 2 (current and previous)", live)
	}
}

func TestNewValidation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cases := []struct {
		name, project, prefix string
		opts                  []gcpsm.Option
		want                  error
	}{
		{"empty prefix", testProject, "", nil, gcpsm.ErrInvalidPrefix},
		{"slash in prefix", testProject, "a/b", nil, gcpsm.ErrInvalidPrefix},
		{"dot in prefix", testProject, "a.b", nil, gcpsm.ErrInvalidPrefix},
		{"space in prefix", testProject, "a b", nil, gcpsm.ErrInvalidPrefix},
		{"long prefix", testProject, strings.Repeat("p", gcpsm.MaxPrefixLength+1), nil, gcpsm.ErrInvalidPrefix},
		{"empty project", "", "p", nil, gcpsm.ErrInvalidConfig},
		{"project with slash", "a/secrets/b", "p", nil, gcpsm.ErrInvalidConfig},
		{"zero shards", testProject, "p", []gcpsm.Option{gcpsm.WithIndexShards(0)}, gcpsm.ErrInvalidConfig},
		{"zero attempts", testProject, "p", []gcpsm.Option{gcpsm.WithMaxAttempts(0)}, gcpsm.ErrInvalidConfig},
		{"zero workers", testProject, "p", []gcpsm.Option{gcpsm.WithReadWorkers(0)}, gcpsm.ErrInvalidConfig},
		{"nil logger", testProject, "p", []gcpsm.Option{gcpsm.WithLogger(nil)}, gcpsm.ErrInvalidConfig},
		{"reserved label", testProject, "p", []gcpsm.Option{gcpsm.WithLabels(map[string]string{gcpsm.PrefixLabel: "x"})}, gcpsm.ErrInvalidConfig},
		{"uppercase label", testProject, "p", []gcpsm.Option{gcpsm.WithLabels(map[string]string{"Team": "x"})}, gcpsm.ErrInvalidConfig},
		{"label value", testProject, "p", []gcpsm.Option{gcpsm.WithLabels(map[string]string{"team": "A B"})}, gcpsm.ErrInvalidConfig},
		{"empty replication", testProject, "p", []gcpsm.Option{gcpsm.WithReplication(&secretmanagerpb.Replication{})}, gcpsm.ErrInvalidConfig},
	}
	for _, c := range cases {
		if _, err := gcpsm.New(ctx, e.client, c.project, c.prefix, c.opts...); !errors.Is(err, c.want) {
			t.Errorf("%s: New error %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := gcpsm.New(ctx, nil, testProject, "p"); !errors.Is(err, gcpsm.ErrInvalidConfig) {
		t.Errorf("nil client: %v", err)
	}
	if !errors.Is(gcpsm.ErrInvalidPrefix, gcpsm.ErrInvalidConfig) {
		t.Error("ErrInvalidPrefix does not wrap ErrInvalidConfig")
	}
	// The longest prefix with the longest token ID is still a valid secret ID.
	long := strings.Repeat("P", gcpsm.MaxPrefixLength)
	s := e.store(t, long, gcpsm.WithLabels(map[string]string{"team": "billing"}))
	if err := s.SaveToken(ctx, tok("long")); err != nil {
		t.Fatalf("save under the longest prefix: %v", err)
	}
	longID := strings.Repeat("i", tokenstore.MaxIDLength)
	if n := len(s.SecretID(longID)); n != 255 {
		t.Errorf("longest secret ID is %d characters, want 255", n)
	}
	if _, err := gcpsm.BackendOf(s).Create(ctx, casstore.TokenName(longID), []byte("{}")); err != nil {
		t.Fatalf("create the longest secret ID: %v", err)
	}
	sec, err := e.raw.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: secretPath(s.SecretID(longID))})
	if err != nil {
		t.Fatal(err)
	}
	if sec.GetLabels()["team"] != "billing" || !strings.HasPrefix(sec.GetLabels()[gcpsm.PrefixLabel], "h-") {
		t.Errorf("labels %v", sec.GetLabels())
	}
	if sec.GetReplication().GetAutomatic() == nil {
		t.Errorf("replication %v, want automatic", sec.GetReplication())
	}
}

// TestPrefixesAreIsolated: stores whose prefixes differ (even when one is
// a prefix of the other, or they differ only in case) see only their own
// secrets.
func TestPrefixesAreIsolated(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	base := newPrefix()
	prefixes := []string{base, base + "_token-a", strings.ToUpper(base), base + "-x"}
	for i, p := range prefixes {
		s := e.store(t, p)
		for j := 0; j <= i; j++ {
			if err := s.SaveToken(ctx, tok(fmt.Sprintf("%d-%d", i, j))); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, p := range prefixes {
		s := e.store(t, p)
		all, err := s.Tokens(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != i+1 {
			t.Errorf("prefix %s: %d tokens, want %d", p, len(all), i+1)
		}
		r, err := s.Check(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !r.OK() || r.Tokens != i+1 {
			t.Errorf("prefix %s: Check %v", p, r)
		}
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.store(t, newPrefix())
	if err := s.SaveToken(ctx, tok("dave")); err != nil {
		t.Fatal(err)
	}
	e.rec.take()
	checks := []struct {
		name string
		err  error
		want error
	}{
		{"SaveToken(nil)", s.SaveToken(ctx, nil), tokenstore.ErrInvalidToken},
		{"SaveToken(empty)", s.SaveToken(ctx, &tokenstore.Token{UserName: "x"}), tokenstore.ErrInvalidToken},
		{"SaveToken(bad ID)", s.SaveToken(ctx, &tokenstore.Token{ID: "a/b", AccessToken: "access-VALUE"}), tokenstore.ErrInvalidID},
		{"SaveToken(huge)", s.SaveToken(ctx, &tokenstore.Token{UserName: "big", AccessToken: strings.Repeat("a", tokenstore.MaxDocumentSize)}), tokenstore.ErrTooLarge},
		{"FindToken(nil)", second(s.FindToken(ctx, nil)), tokenstore.ErrInvalidToken},
		{"FindToken(empty)", second(s.FindToken(ctx, &tokenstore.Token{})), tokenstore.ErrInvalidToken},
		{"FindToken(client only)", second(s.FindToken(ctx, &tokenstore.Token{ClientID: "c"})), tokenstore.ErrInvalidToken},
		{"FindTokenByID(empty)", second(s.FindTokenByID(ctx, "")), tokenstore.ErrInvalidID},
		{"FindTokenByID(slash)", second(s.FindTokenByID(ctx, "../x")), tokenstore.ErrInvalidID},
		{"FindTokenByID(too long)", second(s.FindTokenByID(ctx, strings.Repeat("a", 65))), tokenstore.ErrInvalidID},
		{"DeleteToken(bad)", s.DeleteToken(ctx, "a b"), tokenstore.ErrInvalidID},
	}
	for _, c := range checks {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, c.err, c.want)
		}
		if c.err != nil {
			assertNoSecrets(t, c.name, c.err.Error())
		}
	}
	if calls := e.rec.take(); len(calls) != 0 {
		t.Errorf("invalid input reached the service: {%s}", summary(calls))
	}
	// Unknown IDs are not found, in one call.
	if _, err := s.FindTokenByID(ctx, "unknown"); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Errorf("FindTokenByID(unknown): %v", err)
	}
	if err := s.DeleteToken(ctx, "unknown"); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Errorf("DeleteToken(unknown): %v", err)
	}
	// The backend refuses an oversized document before calling the service.
	b := gcpsm.BackendOf(s)
	e.rec.take()
	big := bytes.Repeat([]byte("x"), tokenstore.MaxDocumentSize+1)
	if _, err := b.Create(ctx, "token-big", big); !errors.Is(err, tokenstore.ErrTooLarge) {
		t.Errorf("Create(64 KiB + 1): %v", err)
	}
	if _, err := b.Update(ctx, "index-0", big, "1"); !errors.Is(err, tokenstore.ErrTooLarge) {
		t.Errorf("Update(64 KiB + 1): %v", err)
	}
	if calls := e.rec.take(); len(calls) != 0 {
		t.Errorf("oversized documents reached the service: {%s}", summary(calls))
	}
	// Exactly 64 KiB is accepted.
	if _, err := b.Create(ctx, "token-max", bytes.Repeat([]byte("x"), tokenstore.MaxDocumentSize)); err != nil {
		t.Errorf("Create(64 KiB): %v", err)
	}
}

func second[T any](_ T, err error) error { return err }

// TestCorruptSecret plants invalid JSON as the current version of one
// token's secret: that token reads as ErrMalformed, the others and Tokens
// are unaffected, Check reports it, and nothing logs the planted value.
func TestCorruptSecret(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var logs bytes.Buffer
	s := e.store(t, newPrefix(), gcpsm.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	toks := []*tokenstore.Token{tok("erin"), tok("frank"), tok("grace")}
	for _, tk := range toks {
		if err := s.SaveToken(ctx, tk); err != nil {
			t.Fatal(err)
		}
	}
	e.setCurrent(t, s.SecretID(toks[1].ID), []byte(`{"format":1,"access_token":"planted-SECRET"`))
	_, err := s.FindTokenByID(ctx, toks[1].ID)
	if !errors.Is(err, tokenstore.ErrMalformed) {
		t.Fatalf("corrupt token: %v, want ErrMalformed", err)
	}
	assertNoSecrets(t, "error", err.Error())
	for _, i := range []int{0, 2} {
		if _, err := s.FindTokenByID(ctx, toks[i].ID); err != nil {
			t.Errorf("token %d: %v", i, err)
		}
		if _, err := s.FindToken(ctx, &tokenstore.Token{UserName: toks[i].UserName}); err != nil {
			t.Errorf("token %d by user: %v", i, err)
		}
	}
	all, err := s.Tokens(ctx)
	if err != nil {
		t.Fatalf("Tokens with a corrupt secret: %v", err)
	}
	if len(all) != 2 {
		t.Errorf("Tokens returned %d tokens, want the 2 intact ones", len(all))
	}
	r, err := s.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Corrupt) != 1 || r.Corrupt[0] != toks[1].ID {
		t.Errorf("Check: %v", r)
	}
	if !strings.Contains(logs.String(), toks[1].ID) {
		t.Errorf("the corrupt token was not logged: %q", logs.String())
	}
	assertNoSecrets(t, "log", logs.String())
	// The corrupt token can still be deleted.
	if err := s.DeleteToken(ctx, toks[1].ID); err != nil {
		t.Errorf("DeleteToken(corrupt): %v", err)
	}
	if r, err := s.Check(ctx); err != nil || !r.OK() {
		t.Errorf("Check after deleting the corrupt token: %v, %v", r, err)
	}
}

// TestErrorMapping: gRPC status codes map onto the sentinels with the
// cause kept, and PERMISSION_DENIED is never ErrNotFound.
func TestErrorMapping(t *testing.T) {
	var deny atomic.Value // method name to fail, or ""
	deny.Store("")
	hook := grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if m := deny.Load().(string); m != "" && strings.HasSuffix(info.FullMethod, "/"+m) {
			return nil, status.Error(codes.PermissionDenied, "Permission 'secretmanager.versions.access' denied")
		}
		return h(ctx, req)
	})
	e := newEnv(t, gcpsmtest.WithServerOptions(hook))
	ctx := context.Background()
	prefix := newPrefix()
	s := e.store(t, prefix)
	tk := tok("heidi")
	if err := s.SaveToken(ctx, tk); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{access, get, add, del} {
		deny.Store(m)
		var err error
		switch m {
		case access:
			_, err = s.FindTokenByID(ctx, tk.ID)
		case get:
			// Only a store that does not know the etag reads it.
			err = e.store(t, prefix).SaveToken(ctx, &tokenstore.Token{ID: tk.ID, AccessToken: "access-VALUE-x"})
		case add:
			err = s.SaveToken(ctx, &tokenstore.Token{ID: tk.ID, AccessToken: "access-VALUE-x"})
		case del:
			err = s.DeleteToken(ctx, tk.ID)
		}
		deny.Store("")
		if err == nil {
			t.Fatalf("%s denied: no error", m)
		}
		if errors.Is(err, tokenstore.ErrNotFound) {
			t.Errorf("%s denied: %v is ErrNotFound", m, err)
		}
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s denied: status %v not kept in %v", m, status.Code(err), err)
		}
		assertNoSecrets(t, m, err.Error())
	}
	if _, err := s.FindTokenByID(ctx, tk.ID); err != nil {
		t.Fatalf("token lost after denied writes: %v", err)
	}
	// NOT_FOUND keeps its cause too.
	_, err := s.FindTokenByID(ctx, "missing")
	if !errors.Is(err, tokenstore.ErrNotFound) || status.Code(err) != codes.NotFound {
		t.Errorf("missing token: %v", err)
	}
}

// TestChecksums: every AddSecretVersion carries the payload's CRC32C, and
// a payload whose returned checksum does not match is refused.
func TestChecksums(t *testing.T) {
	var corrupt atomic.Bool
	var adds, unchecked atomic.Int64
	table := crc32.MakeTable(crc32.Castagnoli)
	hook := grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if r, ok := req.(*secretmanagerpb.AddSecretVersionRequest); ok {
			adds.Add(1)
			p := r.GetPayload()
			if p.DataCrc32C == nil || *p.DataCrc32C != int64(crc32.Checksum(p.GetData(), table)) {
				unchecked.Add(1)
			}
		}
		resp, err := h(ctx, req)
		if a, ok := resp.(*secretmanagerpb.AccessSecretVersionResponse); ok && corrupt.Load() {
			bad := *a.GetPayload().DataCrc32C + 1
			a.Payload.DataCrc32C = &bad
		}
		return resp, err
	})
	e := newEnv(t, gcpsmtest.WithServerOptions(hook))
	ctx := context.Background()
	s := e.store(t, newPrefix())
	tk := tok("ivan")
	if err := s.SaveToken(ctx, tk); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveToken(ctx, &tokenstore.Token{ID: tk.ID, AccessToken: "access-VALUE-2"}); err != nil {
		t.Fatal(err)
	}
	if adds.Load() == 0 || unchecked.Load() != 0 {
		t.Errorf("%d of %d AddSecretVersion calls had no valid data_crc32c", unchecked.Load(), adds.Load())
	}
	corrupt.Store(true)
	_, err := s.FindTokenByID(ctx, tk.ID)
	corrupt.Store(false)
	if !errors.Is(err, gcpsm.ErrChecksum) || !errors.Is(err, tokenstore.ErrMalformed) {
		t.Errorf("checksum mismatch: %v, want ErrChecksum", err)
	}
}

// TestUnfinishedCreate: a secret whose creation stopped before the alias
// was set (its process died) reads as missing, and the next Create of the
// same document takes it over.
func TestUnfinishedCreate(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	prefix := newPrefix()
	// Until a create takes it over, each read of the secret waits for
	// the alias (it might lag) for WithStaleReadWait.
	s := e.store(t, prefix, gcpsm.WithStaleReadWait(200*time.Millisecond))
	b := gcpsm.BackendOf(s)
	// A crashed creator: the secret exists, with a version, but no alias.
	id := s.IndexSecretID(0)
	if _, err := e.raw.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{
		Parent: "projects/" + testProject, SecretId: id,
		Secret: &secretmanagerpb.Secret{
			Replication: &secretmanagerpb.Replication{Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}}},
			Labels:      map[string]string{gcpsm.PrefixLabel: prefix},
		},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.raw.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{
		Parent: secretPath(id), Payload: &secretmanagerpb.SecretPayload{Data: []byte("half")},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Read(ctx, "index-0"); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Fatalf("Read of an unfinished secret: %v, want ErrNotFound", err)
	}
	// Version 1 was never current, so an Update from it is refused: the
	// secret has no current alias, which GetSecret could show only by
	// lagging (the Backend contract allows either error).
	if _, err := b.Update(ctx, "index-0", []byte("x"), "1"); !errors.Is(err, tokenstore.ErrNotFound) && !errors.Is(err, casstore.ErrVersionMismatch) {
		t.Fatalf("Update of an unfinished secret: %v, want ErrNotFound or ErrVersionMismatch", err)
	}
	names, err := b.(casstore.Lister).List(ctx)
	if err != nil || len(names) != 0 {
		t.Fatalf("List with only an unfinished secret: %v, %v", names, err)
	}
	// The store's first save creates the index: it takes the secret over.
	tk := tok("judy")
	if err := s.SaveToken(ctx, tk); err != nil {
		t.Fatalf("SaveToken over an unfinished index secret: %v", err)
	}
	if _, err := s.FindToken(ctx, &tokenstore.Token{UserName: "judy"}); err != nil {
		t.Fatal(err)
	}
	// The crashed creator's version stays behind (version 1, below the
	// current one): DestroyStaleVersions removes it.
	if live := e.live(t, id); live != 2 {
		t.Errorf("index secret has %d live versions, want 2 (current + the crashed creator's)", live)
	}
	// A second leak: a version added to a token secret by a writer that
	// died before moving the alias, followed by a normal refresh.
	if _, err := e.raw.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{
		Parent: secretPath(s.SecretID(tk.ID)), Payload: &secretmanagerpb.SecretPayload{Data: []byte("orphan")},
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveToken(ctx, &tokenstore.Token{ID: tk.ID, AccessToken: "access-VALUE-2"}); err != nil {
		t.Fatal(err)
	}
	n, err := s.DestroyStaleVersions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("DestroyStaleVersions destroyed %d versions, want 2", n)
	}
	// The index keeps its current version (it has no previous one yet),
	// the token its current and previous versions.
	for sid, want := range map[string]int{id: 1, s.SecretID(tk.ID): 2} {
		if live := e.live(t, sid); live != want {
			t.Errorf("%s: %d live versions after DestroyStaleVersions, want %d", sid, live, want)
		}
	}
	if got, err := s.FindTokenByID(ctx, tk.ID); err != nil || got.AccessToken != "access-VALUE-2" {
		t.Errorf("token after DestroyStaleVersions: %v", err)
	}
	if n, err := s.DestroyStaleVersions(ctx); err != nil || n != 0 {
		t.Errorf("second DestroyStaleVersions: %d, %v", n, err)
	}
}

// TestSharedProcesses: two stores on separate connections (two processes)
// see each other's writes, including through a warm index cache.
func TestSharedProcesses(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	prefix := newPrefix()
	other, _ := newRecordedClient(t, e.srv)
	a := e.store(t, prefix, gcpsm.WithIndexCache(true))
	b := newStore(t, other, prefix, gcpsm.WithIndexCache(true))
	tk := tok("mallory")
	if err := a.SaveToken(ctx, tk); err != nil {
		t.Fatal(err)
	}
	if _, err := b.FindToken(ctx, &tokenstore.Token{UserName: "mallory"}); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteToken(ctx, tk.ID); err != nil {
		t.Fatal(err)
	}
	// b's cache still maps the user to the deleted token: the answer is
	// verified against the token, so it is not found rather than stale.
	if _, err := b.FindToken(ctx, &tokenstore.Token{UserName: "mallory"}); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Errorf("after delete in another process: %v, want ErrNotFound", err)
	}
	tk2 := tok("mallory")
	if err := a.SaveToken(ctx, tk2); err != nil {
		t.Fatal(err)
	}
	got, err := b.FindToken(ctx, &tokenstore.Token{UserName: "mallory"})
	if err != nil || got.ID != tk2.ID {
		t.Errorf("after re-insert in another process: %v, %v", got, err)
	}
}

// TestAmbiguousMove: when UpdateSecret fails in a way that does not say
// whether the alias moved, the store finds out (GetSecret, then a fence
// when the answer is not conclusive) and never destroys a version that is
// (or may become) current; a move that did not happen is retried.
func TestAmbiguousMove(t *testing.T) {
	type fault struct {
		apply bool       // run the real UpdateSecret first
		code  codes.Code // then fail with this code
	}
	var next atomic.Pointer[fault]
	hook := grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if _, ok := req.(*secretmanagerpb.UpdateSecretRequest); ok {
			if f := next.Swap(nil); f != nil {
				if f.apply {
					if _, err := h(ctx, req); err != nil {
						return nil, err
					}
				}
				return nil, status.Error(f.code, "injected")
			}
		}
		return h(ctx, req)
	})
	e := newEnv(t, gcpsmtest.WithServerOptions(hook))
	ctx := context.Background()
	prefix := newPrefix()
	s := e.store(t, prefix)
	b := gcpsm.BackendOf(s)
	const doc = "token-amb"
	id := prefix + "_" + doc
	v, err := b.Create(ctx, doc, []byte("v1"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		f     fault
		calls string
	}{
		// The move happened but the answer was lost: the store retries
		// UNAVAILABLE, the retry meets its own etag change, and GetSecret
		// shows the move.
		{"applied, then UNAVAILABLE", fault{true, codes.Unavailable},
			"AddSecretVersion×1, GetSecret×1, UpdateSecret×2"},
		// A retry (by a layer the store does not see) of an UpdateSecret
		// whose first attempt succeeded reports the etag mismatch.
		{"applied, then FAILED_PRECONDITION", fault{true, codes.FailedPrecondition},
			"AddSecretVersion×1, DestroySecretVersion×1, GetSecret×1, UpdateSecret×1"},
		// Not applied, no definitive answer, and GetSecret shows the old
		// state: the fence (an UpdateSecret that changes nothing) makes
		// sure the move can never apply, the version is destroyed and the
		// write is made again from the fence's etag.
		{"not applied, DEADLINE_EXCEEDED", fault{false, codes.DeadlineExceeded},
			"AddSecretVersion×2, DestroySecretVersion×2, GetSecret×1, UpdateSecret×3"},
		// Throttled (RESOURCE_EXHAUSTED): after a pause the store checks
		// that the alias still names the version it writes from, and
		// tries again.
		{"not applied, RESOURCE_EXHAUSTED", fault{false, codes.ResourceExhausted},
			"AddSecretVersion×1, DestroySecretVersion×1, GetSecret×1, UpdateSecret×2"},
	}
	for i, c := range cases {
		value := fmt.Sprintf("v%d", i+2)
		next.Store(&c.f)
		e.rec.take()
		nv, err := b.Update(ctx, doc, []byte(value), v)
		calls := e.rec.take()
		if err != nil {
			t.Fatalf("%s: Update = %v, want success", c.name, err)
		}
		obj, err := b.Read(ctx, doc)
		if err != nil {
			t.Fatalf("%s: the document is unreadable: %v", c.name, err)
		}
		if string(obj.Value) != value || obj.Version != nv {
			t.Errorf("%s: read %q version %s, want %q version %s", c.name, obj.Value, obj.Version, value, nv)
		}
		if live := e.live(t, id); live != 2 {
			t.Errorf("%s: %d live versions, want 2 (current and previous)", c.name, live)
		}
		if summary(calls) != c.calls {
			t.Errorf("%s: calls {%s}, want {%s}", c.name, summary(calls), c.calls)
		}
		v = nv
	}
}

// TestUnsettledMoveIsCleanedUp: when neither the move nor the GetSecret
// that should settle it gets an answer, the store keeps its version
// (it might still become current) and reports the error; once a later
// write has succeeded, DestroyStaleVersions proves the version dead with a
// fence and destroys it.
func TestUnsettledMoveIsCleanedUp(t *testing.T) {
	var fail atomic.Bool
	hook := grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		switch req.(type) {
		case *secretmanagerpb.UpdateSecretRequest, *secretmanagerpb.GetSecretRequest:
			if fail.Load() {
				return nil, status.Error(codes.Unavailable, "injected")
			}
		}
		return h(ctx, req)
	})
	e := newEnv(t, gcpsmtest.WithServerOptions(hook))
	ctx := context.Background()
	prefix := newPrefix()
	s := e.store(t, prefix, gcpsm.WithTransientRetries(0))
	b := gcpsm.BackendOf(s)
	const doc = "token-unsettled"
	id := prefix + "_" + doc
	v, err := b.Create(ctx, doc, []byte("v1"))
	if err != nil {
		t.Fatal(err)
	}
	fail.Store(true)
	_, err = b.Update(ctx, doc, []byte("v2"), v)
	fail.Store(false)
	if err == nil || errors.Is(err, casstore.ErrVersionMismatch) || status.Code(err) != codes.Unavailable {
		t.Fatalf("Update = %v, want the UNAVAILABLE error", err)
	}
	if live := e.live(t, id); live != 2 {
		t.Fatalf("%d live versions, want 2 (v1 current, v2 kept)", live)
	}
	// Nothing is destroyed while v2 may still become current.
	if n, err := s.DestroyStaleVersions(ctx); err != nil || n != 1 {
		t.Fatalf("DestroyStaleVersions = %d, %v; want 1 (the fence proves v2 dead)", n, err)
	}
	obj, err := b.Read(ctx, doc)
	if err != nil || string(obj.Value) != "v1" {
		t.Fatalf("Read = %q, %v; want v1", obj.Value, err)
	}
	if live := e.live(t, id); live != 1 {
		t.Errorf("%d live versions after DestroyStaleVersions, want 1", live)
	}
	// The store writes on from the state the fence left.
	if _, err := b.Update(ctx, doc, []byte("v3"), obj.Version); err != nil {
		t.Fatal(err)
	}
}
