package vault

// A purge (DELETE <mount>/metadata/...) cut short. KV v2 deletes an
// entry's versions one by one and then its metadata, under the request's
// context, so a client killed while the request is in flight leaves the
// metadata and some versions; when the current version went first, every
// read of the entry answers HTTP 500 "could not find version data". A
// killed child of integration/vault's TestSIGKILL left exactly that, and
// its user was locked out. The tests plant the state through sys/raw on a
// mount of their own.

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// rawMount is a KV v2 mount of the test's own, with sys/raw access to its
// storage.
type rawMount struct {
	t      *testing.T
	client *api.Client
	path   string
	root   string // sys/raw path of the KV engine's storage, with a trailing "/"
	salt   string // the engine's salt, which names version keys
}

// newRawMount mounts a fresh KV v2 engine and checks that the server
// serves sys/raw (raw_storage_endpoint, which scripts/backends.sh turns
// on and announces with CLOUDTOKENS_VAULT_RAW=1). Without it the test is
// skipped, or fails when CLOUDTOKENS_VAULT_RAW says the server has it.
func newRawMount(t *testing.T) *rawMount {
	t.Helper()
	addr, token := vaultServer(t)
	cfg := api.DefaultConfig()
	cfg.Address = addr
	cfg.MaxRetries = 0 // the test's own probes see the server's first answer
	client, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	client.SetToken(token)
	if _, err := client.Logical().List("sys/raw/logical/"); err != nil {
		if raw, _ := strconv.ParseBool(os.Getenv("CLOUDTOKENS_VAULT_RAW")); raw {
			t.Fatalf("CLOUDTOKENS_VAULT_RAW is set but sys/raw fails: %v", err)
		}
		t.Skipf("the Vault server does not serve sys/raw (start it with raw_storage_endpoint = true, as scripts/backends.sh does): %v", err)
	}
	path := "cut-purge-" + randomID()[:8]
	if err := client.Sys().Mount(path, &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Sys().Unmount(path) })
	m := &rawMount{t: t, client: client, path: path}
	mount, err := client.Logical().Read("sys/mounts/" + path)
	if err != nil || mount == nil {
		t.Fatalf("reading the mount: %v", err)
	}
	uuid, _ := mount.Data["uuid"].(string)
	// The engine keeps everything under its backend UUID, the one folder
	// of the mount's storage; the salt is written on the first write.
	if _, err := client.Logical().Write(path+"/data/salt-probe", map[string]any{"data": map[string]any{"x": "y"}}); err != nil {
		t.Fatal(err)
	}
	ls, err := client.Logical().List("sys/raw/logical/" + uuid + "/")
	if err != nil || ls == nil {
		t.Fatalf("listing the mount's storage: %v", err)
	}
	ks, _ := ls.Data["keys"].([]any)
	if len(ks) != 1 {
		t.Fatalf("the mount's storage holds %v; want the engine's folder alone", ks)
	}
	m.root = "sys/raw/logical/" + uuid + "/" + ks[0].(string)
	salt, err := m.read("salt")
	if err != nil || salt == nil || salt.Data["value"] == nil {
		t.Fatalf("reading the engine's salt: %v", err)
	}
	m.salt, _ = salt.Data["value"].(string)
	return m
}

// versionKey is the storage key of version n of the entry at the KV path
// key (as KV v2 names it: getVersionKey).
func (m *rawMount) versionKey(key string, n uint64) string {
	h := sha256.Sum256([]byte(m.salt + key + "|" + strconv.FormatUint(n, 10)))
	x := hex.EncodeToString(h[:])
	return "versions/" + x[:3] + "/" + x[3:]
}

// read reads the storage entry key as stored (sys/raw would otherwise
// try to decompress a value whose first byte looks like a compression
// header, such as a salt that starts with "4").
func (m *rawMount) read(key string) (*api.Secret, error) {
	return m.client.Logical().ReadWithData(m.root+key, map[string][]string{"compressed": {"false"}})
}

// version returns the stored data of version n of name ("" when it has
// none).
func (m *rawMount) version(b *Backend, name string, n uint64) string {
	m.t.Helper()
	s, err := m.read(m.versionKey(b.prefix+"/"+name, n))
	if err != nil {
		m.t.Fatal(err)
	}
	if s == nil {
		return ""
	}
	v, _ := s.Data["value"].(string)
	return v
}

func (m *rawMount) hasVersion(b *Backend, name string, n uint64) bool {
	return m.version(b, name, n) != ""
}

// cutShortPurge writes a deletion marker over name, as Delete does, and
// then removes the data of the marker version and of the version before
// it: the first storage deletes of a purge that Vault canceled there (a
// purge walks the versions in map order, so which go first is chance).
// It returns the marker's version.
func (m *rawMount) cutShortPurge(b *Backend, name string) uint64 {
	m.t.Helper()
	ctx := m.t.Context()
	e, err := b.get(ctx, name)
	if err != nil || !e.live || e.version < 2 {
		m.t.Fatalf("%s before the delete: %+v, %v; want a live entry with 2 versions or more", name, e, err)
	}
	if _, err := b.write(ctx, name, map[string]any{DeletedField: time.Now().UTC().Format(time.RFC3339), DeleteIDField: randomID()}, e.version); err != nil {
		m.t.Fatal(err)
	}
	marker := e.version + 1
	for _, n := range []uint64{marker, e.version} {
		if !m.hasVersion(b, name, n) {
			m.t.Fatalf("no storage key for version %d of %s (has KV v2 changed how it names versions?)", n, name)
		}
		if _, err := m.client.Logical().Delete(m.root + m.versionKey(b.prefix+"/"+name, n)); err != nil {
			m.t.Fatal(err)
		}
	}
	return marker
}

// versionsLeft counts the versions 1..upTo of name that still have data
// holding secret.
func (m *rawMount) versionsLeft(b *Backend, name string, upTo uint64, secret string) int {
	n := 0
	for v := uint64(1); v <= upTo; v++ {
		if strings.Contains(m.version(b, name, v), secret) {
			n++
		}
	}
	return n
}

// store opens a store on the mount with a quickly retrying client, so
// that the HTTP 500 of a torn entry costs milliseconds of retries, not
// seconds; wrap wraps the client's transport.
func (m *rawMount) store(prefix string, wrap ...func(http.RoundTripper) http.RoundTripper) *Store {
	m.t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = m.client.Address()
	cfg.MinRetryWait, cfg.MaxRetryWait = 5*time.Millisecond, 20*time.Millisecond
	for _, w := range wrap {
		cfg.HttpClient.Transport = w(cfg.HttpClient.Transport)
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		m.t.Fatal(err)
	}
	c.SetToken(m.client.Token())
	s, err := New(m.t.Context(), c, prefix, WithMount(m.path), WithClaimWait(50*time.Millisecond))
	if err != nil {
		m.t.Fatal(err)
	}
	return s
}

// The backend reads what a cut-short purge left as deleted (not found,
// and unfinished), never as an error; Delete and Create finish the purge.
func TestCutShortPurgeBackend(t *testing.T) {
	m := newRawMount(t)
	ctx := t.Context()
	b := m.store("p").Backend()
	for _, tc := range []struct {
		op     string
		finish func(name string) error
	}{
		{"Delete", func(name string) error { return b.Delete(ctx, name) }},
		{"Create", func(name string) error {
			_, err := b.Create(ctx, name, []byte("new"))
			return err
		}},
	} {
		t.Run(tc.op, func(t *testing.T) {
			name := "token-" + strings.ToLower(tc.op)
			if _, err := b.Create(ctx, name, []byte("old-1")); err != nil {
				t.Fatal(err)
			}
			for v, value := range []string{"old-2", "old-3"} {
				if _, err := b.Update(ctx, name, []byte(value), strconv.Itoa(v+1)); err != nil {
					t.Fatal(err)
				}
			}
			marker := m.cutShortPurge(b, name)
			resp, err := m.client.Logical().ReadRawWithDataWithContext(ctx, b.DataPath(name), nil)
			if resp != nil {
				resp.Body.Close()
			}
			var re *api.ResponseError
			if !errors.As(err, &re) || re.StatusCode != http.StatusInternalServerError || !hasMessage(re, versionDataMissing) {
				t.Fatalf("the planted entry reads %v; want HTTP 500 %q (has KV v2 changed?)", err, versionDataMissing)
			}
			for _, read := range []func() error{
				func() error { _, err := b.Read(ctx, name); return err },
				func() error {
					r, err := b.ReadMany(ctx, []string{name})
					if err != nil {
						return err
					}
					return r[0].Err
				},
			} {
				err := read()
				if !errors.Is(err, tokenstore.ErrNotFound) || !errors.Is(err, casstore.ErrDeleteUnfinished) {
					t.Fatalf("read: %v; want ErrNotFound and ErrDeleteUnfinished", err)
				}
			}
			err = tc.finish(name)
			obj, rerr := b.Read(ctx, name)
			switch tc.op {
			case "Delete":
				if !errors.Is(err, tokenstore.ErrNotFound) {
					t.Fatalf("Delete: %v; want ErrNotFound (deleted already)", err)
				}
				if !errors.Is(rerr, tokenstore.ErrNotFound) || errors.Is(rerr, casstore.ErrDeleteUnfinished) {
					t.Fatalf("after Delete: %v; want a plain ErrNotFound", rerr)
				}
			case "Create":
				if err != nil || rerr != nil || string(obj.Value) != "new" || obj.Version != "1" {
					t.Fatalf("Create: %v; then %q version %s, %v; want \"new\" as version 1 of a new entry", err, obj.Value, obj.Version, rerr)
				}
			}
			if left := m.versionsLeft(b, name, marker, "old-"); left > 0 {
				t.Errorf("%d versions of the old entry left: the purge was not finished", left)
			}
		})
	}
}

// failPurges fails every DELETE of a metadata path before it is sent.
type failPurges struct{ next http.RoundTripper }

func (f failPurges) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodDelete && strings.Contains(r.URL.Path, "/metadata/") {
		return nil, errors.New("test: connection reset")
	}
	return f.next.RoundTrip(r)
}

// Through the store: users whose token entries a cut-short delete left
// are not locked out (find says not found, a new save works), Check
// reports the unfinished deletes, and Repair finishes them (the old
// versions, which hold old tokens, are gone) and then has nothing left to
// do. Alice's and carol's deletes were cut short in the purge, before
// their index entries were released; dave's DeleteToken returned, but its
// purge failed.
func TestCutShortPurge(t *testing.T) {
	m := newRawMount(t)
	ctx := t.Context()
	s := m.store("app")
	b := s.Backend()
	users := map[string]*tokenstore.Token{}
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		tok := &tokenstore.Token{UserName: u, ClientID: "c", RefreshToken: "r-" + u, AccessToken: "a-" + u + "-1"}
		for i := 1; i <= 3; i++ {
			tok.AccessToken = "a-" + u + "-" + strconv.Itoa(i)
			if err := s.SaveToken(ctx, tok); err != nil {
				t.Fatal(err)
			}
		}
		users[u] = tok
	}
	cut := map[string]uint64{} // user: the marker version of the old entry
	for _, u := range []string{"alice", "carol"} {
		cut[u] = m.cutShortPurge(b, casstore.TokenName(users[u].ID))
	}
	sd := m.store("app", func(rt http.RoundTripper) http.RoundTripper { return failPurges{rt} })
	if err := sd.DeleteToken(ctx, users["dave"].ID); err != nil {
		t.Fatalf("DeleteToken(dave) with the purge failing: %v; want success (the marker deletes)", err)
	}
	cut["dave"] = 4 // three saves and the marker
	if left := m.versionsLeft(b, casstore.TokenName(users["dave"].ID), cut["dave"], "a-dave-"); left != 3 {
		t.Fatalf("dave's entry keeps %d versions with his tokens; want 3 (his saves) until the purge", left)
	}

	// A new Store, as after the kill.
	s2 := m.store("app")
	for u := range cut {
		if got, err := s2.FindToken(ctx, &tokenstore.Token{UserName: u}); !errors.Is(err, tokenstore.ErrNotFound) {
			t.Fatalf("FindToken(%s) after the delete: %v, %v; want ErrNotFound", u, got, err)
		}
	}
	rep, err := s2.Check(ctx)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	want := []string{users["alice"].ID, users["carol"].ID, users["dave"].ID}
	slices.Sort(want)
	got := slices.Sorted(slices.Values(rep.UnfinishedDeletes))
	if rep.OK() || !slices.Equal(got, want) {
		t.Fatalf("Check: %s; want the unfinished deletes of alice, carol and dave (%v)", rep, want)
	}
	toks, err := s2.Tokens(ctx)
	if err != nil || len(toks) != 1 || toks[0].UserName != "bob" {
		t.Fatalf("Tokens: %v, %v; want bob alone", toks, err)
	}
	// Not locked out: carol signs in again before any Repair.
	again := &tokenstore.Token{UserName: "carol", ClientID: "c", RefreshToken: "r-carol-2", AccessToken: "a-carol-4"}
	if err := s2.SaveToken(ctx, again); err != nil {
		t.Fatalf("SaveToken(carol) after the cut-short delete: %v", err)
	}
	if got, err := s2.FindToken(ctx, &tokenstore.Token{UserName: "carol"}); err != nil || got.AccessToken != "a-carol-4" {
		t.Fatalf("FindToken(carol): %v, %v", got, err)
	}

	rr, err := s2.Repair(ctx)
	// Dave's entries were released: Repair finishes his delete. Alice's
	// point at her entry: Repair fences them, and the fence's create
	// finishes her purge (carol's save did the same for hers).
	if err != nil || rr.DeletesFinished != 1 || rr.ClaimsExpired != 1 {
		t.Fatalf("Repair: %s, %v; want dave's delete finished and alice's claim expired", rr, err)
	}
	for u, marker := range cut {
		old := casstore.TokenName(users[u].ID)
		if left := m.versionsLeft(b, old, marker, "a-"+u+"-"); left > 0 {
			t.Errorf("after Repair %d versions of %s's old entry are left", left, u)
		}
		if _, err := b.Read(ctx, old); errors.Is(err, casstore.ErrDeleteUnfinished) {
			t.Errorf("%s's old entry after Repair: %v", u, err)
		}
	}
	if rep, err := s2.Check(ctx); err != nil || !rep.OK() || rep.Tokens != 2 {
		t.Fatalf("Check after Repair: %s, %v; want 2 tokens, OK", rep, err)
	}
	if rr, err := s2.Repair(ctx); err != nil || rr.Changed() {
		t.Fatalf("second Repair: %s, %v; want no change", rr, err)
	}
	if got, err := s2.FindToken(ctx, &tokenstore.Token{UserName: "bob"}); err != nil || got.AccessToken != "a-bob-3" {
		t.Fatalf("FindToken(bob): %v, %v", got, err)
	}
}
