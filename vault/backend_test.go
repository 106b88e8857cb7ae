package vault

// White-box tests of the backend against a real Vault dev server
// (CLOUDTOKENS_VAULT_ADDR and CLOUDTOKENS_VAULT_TOKEN, else VAULT_ADDR and
// VAULT_TOKEN; skipped without one, failed when CI=true), with faults
// injected at the HTTP transport: the server really applies (or never
// sees) each request, only the answer is lost. The store-level suites are
// in the integration module (integration/vault).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/cloudtokens/cloudtokens/faultinject"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

func vaultServer(t *testing.T) (addr, token string) {
	t.Helper()
	addr, token = os.Getenv("CLOUDTOKENS_VAULT_ADDR"), os.Getenv("CLOUDTOKENS_VAULT_TOKEN")
	if addr == "" || token == "" {
		addr, token = os.Getenv("VAULT_ADDR"), os.Getenv("VAULT_TOKEN")
	}
	if addr == "" || token == "" {
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatal("CLOUDTOKENS_VAULT_ADDR/CLOUDTOKENS_VAULT_TOKEN are not set; CI must provide a Vault dev server")
		}
		t.Skip("no Vault server: set CLOUDTOKENS_VAULT_ADDR and CLOUDTOKENS_VAULT_TOKEN (./scripts/backends.sh starts one)")
	}
	return addr, token
}

// counter counts the requests that reach the server, by "METHOD path".
type counter struct {
	next http.RoundTripper
	mu   sync.Mutex
	n    map[string]int
}

func (c *counter) RoundTrip(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[req.Method+" "+strings.TrimPrefix(req.URL.Path, "/v1/")]++
	c.mu.Unlock()
	return c.next.RoundTrip(req)
}

func (c *counter) get(method, path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[method+" "+path]
}

// testEnv is a store on a fresh prefix whose requests pass a fault
// injector (scripted faults only; Match selects which) and a counter.
type testEnv struct {
	store *Store
	b     *Backend
	inj   *faultinject.Injector
	cnt   *counter
}

func newTestEnv(t *testing.T, match func(*http.Request) bool, opts ...Option) *testEnv {
	t.Helper()
	addr, token := vaultServer(t)
	cfg := api.DefaultConfig()
	cfg.Address = addr
	cfg.MinRetryWait, cfg.MaxRetryWait = 10*time.Millisecond, 50*time.Millisecond
	cnt := &counter{next: cfg.HttpClient.Transport}
	inj := faultinject.New(faultinject.Config{MaxDelay: time.Minute})
	cfg.HttpClient.Transport = &faultinject.Transport{Base: cnt, Injector: inj, Protocol: faultinject.Vault, Match: match}
	client, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	client.SetToken(token)
	prefix := "vault-backend-test/" + randomID()[:12]
	s, err := New(t.Context(), client, prefix, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b := s.Backend()
		names, _ := b.List(context.Background())
		for _, n := range names {
			_, _ = client.Logical().Delete(b.MetadataPath(n))
		}
	})
	return &testEnv{store: s, b: s.Backend(), inj: inj, cnt: cnt}
}

// writesTo selects the PUTs (or POSTs) of name's data.
func writesTo(name string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		return (r.Method == http.MethodPut || r.Method == http.MethodPost) &&
			strings.Contains(r.URL.Path, "/data/") && strings.HasSuffix(r.URL.Path, "/"+name)
	}
}

func currentVersion(t *testing.T, b *Backend, name string) uint64 {
	t.Helper()
	e, err := b.get(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return e.version
}

// Each write whose first attempt applied but whose response was lost is
// retried by the client and reported as the success it was.
func TestLostResponses(t *testing.T) {
	ctx := t.Context()

	t.Run("create", func(t *testing.T) {
		e := newTestEnv(t, writesTo("token-c"))
		e.inj.Script(faultinject.LoseResponse)
		v, err := e.b.Create(ctx, "token-c", []byte(`{"doc":1}`))
		if err != nil {
			t.Fatalf("Create with a lost response: %v, want success", err)
		}
		if e.inj.Pending() != 0 {
			t.Fatal("the fault was not injected")
		}
		if n := e.cnt.get("PUT", e.b.DataPath("token-c")); n != 2 {
			t.Errorf("%d PUTs reached Vault, want 2 (the lost one and the client's retry)", n)
		}
		obj, err := e.b.Read(ctx, "token-c")
		if err != nil || string(obj.Value) != `{"doc":1}` || obj.Version != v || v != "1" {
			t.Fatalf("Read = %q@%s, %v; Create returned version %s", obj.Value, obj.Version, err, v)
		}
		// A different document under the name is someone else's.
		if _, err := e.b.Create(ctx, "token-c", []byte(`{"doc":2}`)); !errors.Is(err, casstore.ErrExists) {
			t.Errorf("Create over another document: %v, want ErrExists", err)
		}
	})

	t.Run("create over a deletion marker", func(t *testing.T) {
		e := newTestEnv(t, writesTo("token-m"))
		if _, err := e.b.Create(ctx, "token-m", []byte("old")); err != nil {
			t.Fatal(err)
		}
		e.b.softDelete = true // the marker stays as the current version
		if err := e.b.Delete(ctx, "token-m"); err != nil {
			t.Fatal(err)
		}
		e.inj.Script(faultinject.None, faultinject.LoseResponse) // cas=0 is refused; the overwrite's answer is lost
		v, err := e.b.Create(ctx, "token-m", []byte("new"))
		if err != nil {
			t.Fatalf("Create over a marker with a lost response: %v", err)
		}
		if obj, err := e.b.Read(ctx, "token-m"); err != nil || string(obj.Value) != "new" || obj.Version != v {
			t.Fatalf("Read = %q@%s, %v; want new@%s", obj.Value, obj.Version, err, v)
		}
	})

	t.Run("update", func(t *testing.T) {
		e := newTestEnv(t, writesTo("token-u"))
		v1, err := e.b.Create(ctx, "token-u", []byte("one"))
		if err != nil {
			t.Fatal(err)
		}
		e.inj.Script(faultinject.LoseResponse)
		v2, err := e.b.Update(ctx, "token-u", []byte("two"), v1)
		if err != nil {
			t.Fatalf("Update with a lost response: %v, want success", err)
		}
		if obj, err := e.b.Read(ctx, "token-u"); err != nil || string(obj.Value) != "two" || obj.Version != v2 || v2 != "2" {
			t.Fatalf("Read = %q@%s, %v; Update returned %s", obj.Value, obj.Version, err, v2)
		}
		// A stale update is still refused, and so is one whose version+1
		// holds other bytes.
		if _, err := e.b.Update(ctx, "token-u", []byte("three"), v1); !errors.Is(err, casstore.ErrVersionMismatch) {
			t.Errorf("stale update: %v, want ErrVersionMismatch", err)
		}
		if _, err := e.b.Update(ctx, "token-u", []byte("two"), v1); err != nil {
			t.Errorf("update with the bytes version %s already holds: %v, want success (it is the same write)", v2, err)
		}
		if n := currentVersion(t, e.b, "token-u"); n != 2 {
			t.Errorf("current version %d, want 2", n)
		}
	})

	for _, soft := range []bool{false, true} {
		t.Run(fmt.Sprintf("delete marker/soft=%v", soft), func(t *testing.T) {
			e := newTestEnv(t, writesTo("token-d"))
			e.b.softDelete = soft
			if _, err := e.b.Create(ctx, "token-d", []byte("x")); err != nil {
				t.Fatal(err)
			}
			e.inj.Script(faultinject.LoseResponse)
			if err := e.b.Delete(ctx, "token-d"); err != nil {
				t.Fatalf("Delete with a lost marker response: %v, want success", err)
			}
			if e.inj.Pending() != 0 {
				t.Fatal("the fault was not injected")
			}
			if _, err := e.b.Read(ctx, "token-d"); !errors.Is(err, tokenstore.ErrNotFound) {
				t.Errorf("Read after delete: %v", err)
			}
			names, err := e.b.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if listed := len(names) > 0; listed != soft {
				t.Errorf("List after delete = %v (soft delete keeps the metadata, hard delete does not)", names)
			}
			// Another delete finds nothing.
			if err := e.b.Delete(ctx, "token-d"); !errors.Is(err, tokenstore.ErrNotFound) {
				t.Errorf("second Delete: %v, want ErrNotFound", err)
			}
		})
	}

	t.Run("delete purge", func(t *testing.T) {
		e := newTestEnv(t, func(r *http.Request) bool { return r.Method == http.MethodDelete })
		if _, err := e.b.Create(ctx, "token-p", []byte("x")); err != nil {
			t.Fatal(err)
		}
		e.inj.Script(faultinject.LoseResponse)
		if err := e.b.Delete(ctx, "token-p"); err != nil {
			t.Fatalf("Delete with a lost purge response: %v", err)
		}
		if names, err := e.b.List(ctx); err != nil || len(names) != 0 {
			t.Errorf("List after delete = %v, %v", names, err)
		}
	})
}

// Two deletes of one entry at once: exactly one succeeds, also now that
// a delete recognises its own marker.
func TestConcurrentDeletesExactlyOnce(t *testing.T) {
	e := newTestEnv(t, nil)
	ctx := t.Context()
	for round := range 5 {
		name := fmt.Sprintf("token-cd%d", round)
		if _, err := e.b.Create(ctx, name, []byte("x")); err != nil {
			t.Fatal(err)
		}
		var ok, notFound atomic.Int32
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				switch err := e.b.Delete(ctx, name); {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, tokenstore.ErrNotFound):
					notFound.Add(1)
				default:
					t.Errorf("Delete: %v", err)
				}
			})
		}
		wg.Wait()
		if ok.Load() != 1 || notFound.Load() != 3 {
			t.Errorf("round %d: %d deletes succeeded, %d not found; want 1 and 3", round, ok.Load(), notFound.Load())
		}
	}
}

// Every operation cut short by the caller's context, canceled before the
// call or past its deadline during it, returns an error that wraps the
// context's error.
func TestContextErrors(t *testing.T) {
	e := newTestEnv(t, nil)
	setup := t.Context()
	v, err := e.b.Create(setup, "token-x", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]func(ctx context.Context) error{
		"Read":   func(ctx context.Context) error { _, err := e.b.Read(ctx, "token-x"); return err },
		"Create": func(ctx context.Context) error { _, err := e.b.Create(ctx, "token-y", []byte("y")); return err },
		"Update": func(ctx context.Context) error { _, err := e.b.Update(ctx, "token-x", []byte("z"), v); return err },
		"Delete": func(ctx context.Context) error { return e.b.Delete(ctx, "token-x") },
		"ReadMany": func(ctx context.Context) error {
			_, err := e.b.ReadMany(ctx, []string{"token-x", "token-y"})
			return err
		},
		"List": func(ctx context.Context) error { _, err := e.b.List(ctx); return err },
		"New": func(ctx context.Context) error {
			_, err := New(ctx, e.b.client, "vault-backend-test/new")
			return err
		},
	}
	for name, op := range ops {
		ctx, cancel := context.WithCancel(setup)
		cancel()
		if err := op(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context: %v, want context.Canceled", name, err)
		}
		e.inj.Script(faultinject.Delay)
		ctx, cancel = context.WithTimeout(setup, 30*time.Millisecond)
		err := op(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s past its deadline: %v, want context.DeadlineExceeded", name, err)
		}
		for e.inj.Pending() > 0 {
			e.inj.Decide()
		}
	}
}

// stampIndex adds an X-Vault-Index state to every answer, as a Vault
// Enterprise node does, and records the states the requests carry.
type stampIndex struct {
	next http.RoundTripper
	mu   sync.Mutex
	sent []string
}

func (s *stampIndex) RoundTrip(req *http.Request) (*http.Response, error) {
	s.mu.Lock()
	s.sent = append(s.sent, strings.Join(req.Header.Values(api.HeaderIndex), ","))
	s.mu.Unlock()
	resp, err := s.next.RoundTrip(req)
	if err == nil {
		resp.Header.Set(api.HeaderIndex, "v1:cluster-test:42:7")
	}
	return resp, err
}

// WithConsistency on a dev server (one node, no replication states): the
// store works as without it. With a state in the answers (as Enterprise
// sends), every later request of the store requires it, and the dev
// server, which has no states to wait for, still serves them.
func TestConsistencyOnDevServer(t *testing.T) {
	ctx := t.Context()
	for _, c := range []Consistency{ReadYourWrites, ReadYourWritesForward} {
		t.Run(c.String(), func(t *testing.T) {
			e := newTestEnv(t, nil, WithConsistency(c))
			tok := &tokenstore.Token{UserName: "alice", AccessToken: "a1"}
			if err := e.store.SaveToken(ctx, tok); err != nil {
				t.Fatal(err)
			}
			got, err := e.store.FindToken(ctx, &tokenstore.Token{UserName: "alice"})
			if err != nil || got.AccessToken != "a1" {
				t.Fatalf("FindToken = %v, %v", got, err)
			}
			if err := e.store.DeleteToken(ctx, tok.ID); err != nil {
				t.Fatal(err)
			}
		})
	}
	// A state to require, from a stamping transport.
	addr, token := vaultServer(t)
	cfg := api.DefaultConfig()
	cfg.Address = addr
	st := &stampIndex{next: cfg.HttpClient.Transport}
	cfg.HttpClient.Transport = st
	client, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	client.SetToken(token)
	s, err := New(ctx, client, "vault-backend-test/"+randomID()[:12], WithConsistency(ReadYourWrites))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		names, _ := s.Backend().List(context.Background())
		for _, n := range names {
			_, _ = client.Logical().Delete(s.Backend().MetadataPath(n))
		}
	})
	tok := &tokenstore.Token{UserName: "bob", AccessToken: "b1"}
	if err := s.SaveToken(ctx, tok); err != nil {
		t.Fatalf("SaveToken requiring a state: %v", err)
	}
	if got, err := s.FindTokenByID(ctx, tok.ID); err != nil || got.AccessToken != "b1" {
		t.Fatalf("FindTokenByID requiring a state: %v, %v", got, err)
	}
	if err := s.DeleteTokens(ctx); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.sent) < 3 || st.sent[0] != "" {
		t.Fatalf("states sent %q: the first request (New's mount check) has none to send", st.sent)
	}
	for i, v := range st.sent[1:] {
		if v != "v1:cluster-test:42:7" {
			t.Errorf("request %d carried X-Vault-Index %q, want the recorded state", i+2, v)
		}
	}
}
