// Package vault_test runs the vault adapter against a real Vault server:
// the conformance suite, the call budgets (counted at the HTTP transport),
// bad input, delete semantics, namespaces and the cross-process stress
// test. The server comes from package backend (CLOUDTOKENS_VAULT_ADDR and
// CLOUDTOKENS_VAULT_TOKEN, else VAULT_ADDR and VAULT_TOKEN, else a
// container; skipped on a laptop without one, failed when CI=true).
package vault_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/integration/backend"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	ctvault "github.com/cloudtokens/cloudtokens/vault"
	"github.com/hashicorp/vault/api"
)

// call is one HTTP request the client sent.
type call struct {
	Method    string // GET, PUT, POST, DELETE, or LIST for GET ?list=true
	Path      string // without the leading /v1/
	Namespace string // the X-Vault-Namespace header
	Status    int
}

func (c call) String() string { return c.Method + " " + c.Path }

// recorder is an http.RoundTripper that records every request and tracks
// how many are in flight at once. delay, when set, holds every request
// that long before sending it, to make concurrency observable.
type recorder struct {
	next http.RoundTripper

	mu          sync.Mutex
	calls       []call
	inFlight    int
	maxInFlight int
	delay       time.Duration
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.inFlight++
	r.maxInFlight = max(r.maxInFlight, r.inFlight)
	delay := r.delay
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.inFlight--
		r.mu.Unlock()
	}()
	if delay > 0 {
		time.Sleep(delay)
	}
	c := call{Method: req.Method, Path: strings.TrimPrefix(req.URL.Path, "/v1/"), Namespace: req.Header.Get("X-Vault-Namespace")}
	if req.Method == http.MethodGet && req.URL.Query().Get("list") == "true" {
		c.Method = "LIST"
	}
	resp, err := r.next.RoundTrip(req)
	if resp != nil {
		c.Status = resp.StatusCode
	}
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.mu.Unlock()
	return resp, err
}

// reset forgets the recorded calls and the in-flight maximum.
func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = nil
	r.maxInFlight = 0
}

// take returns the calls recorded since the last reset and forgets them
// (the in-flight maximum stays until reset).
func (r *recorder) take() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.calls
	r.calls = nil
	return out
}

func (r *recorder) setDelay(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delay = d
}

func (r *recorder) max() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.maxInFlight
}

// newClient returns a client of the test server whose requests go
// through a recorder, with token (the server's root token when "").
func newClient(t testing.TB, token string) (*api.Client, *recorder) {
	t.Helper()
	addr, root := backend.Vault(t)
	if token == "" {
		token = root
	}
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		t.Fatal(cfg.Error)
	}
	cfg.Address = addr
	rec := &recorder{next: cfg.HttpClient.Transport}
	cfg.HttpClient.Transport = rec
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	c.ClearNamespace()
	return c, rec
}

// rootClient returns an unrecorded client with the root token.
func rootClient(t testing.TB) *api.Client {
	t.Helper()
	c, _ := newClient(t, "")
	return c
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newPrefix returns a unique two-segment prefix in the secret/ mount and
// removes everything under it when the test ends.
func newPrefix(t testing.TB) string {
	t.Helper()
	prefix := "cloudtokens-it/" + randomHex(6)
	root := rootClient(t)
	t.Cleanup(func() { purgeTree(root, "secret", prefix) })
	return prefix
}

// purgeTree deletes the metadata (every version) of every entry under
// prefix in mount.
func purgeTree(c *api.Client, mount, prefix string) {
	ctx := context.Background()
	s, err := c.Logical().ListWithContext(ctx, mount+"/metadata/"+prefix+"/")
	if err != nil || s == nil {
		return
	}
	keys, _ := s.Data["keys"].([]any)
	for _, k := range keys {
		name, _ := k.(string)
		if strings.HasSuffix(name, "/") {
			purgeTree(c, mount, prefix+"/"+strings.TrimSuffix(name, "/"))
			continue
		}
		_, _ = c.Logical().DeleteWithContext(ctx, mount+"/metadata/"+prefix+"/"+name)
	}
}

// logBuffer is a concurrency-safe buffer for a slog text handler.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// env is one store on a fresh prefix with its recorder and log.
type env struct {
	store  *ctvault.Store
	client *api.Client
	rec    *recorder
	log    *logBuffer
	prefix string
}

// newEnv builds a store on a new prefix (or on prefix when given).
func newEnv(t testing.TB, prefix string, opts ...ctvault.Option) *env {
	t.Helper()
	if prefix == "" {
		prefix = newPrefix(t)
	}
	client, rec := newClient(t, "")
	lb := &logBuffer{}
	opts = append([]ctvault.Option{ctvault.WithLogger(slog.New(slog.NewTextHandler(lb, nil)))}, opts...)
	s, err := ctvault.New(context.Background(), client, prefix, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	rec.reset()
	return &env{store: s, client: client, rec: rec, log: lb, prefix: prefix}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// paths returns "METHOD path" of calls, with the mount and prefix
// replaced by "<p>" for readable assertions.
func paths(calls []call, prefix string) []string {
	out := make([]string, len(calls))
	for i, c := range calls {
		out[i] = c.Method + " " + strings.ReplaceAll(c.Path, prefix, "<p>")
	}
	return out
}

// writes returns the calls that change data (PUT, POST, DELETE).
func writes(calls []call) []call {
	return slices.DeleteFunc(slices.Clone(calls), func(c call) bool { return c.Method == "GET" || c.Method == "LIST" })
}

// noSecrets fails t if s contains any of the secret values.
func noSecrets(t testing.TB, what, s string, secrets ...string) {
	t.Helper()
	for _, v := range secrets {
		if v != "" && strings.Contains(s, v) {
			t.Errorf("%s contains a secret value: %q", what, s)
		}
	}
}

func mustSave(t testing.TB, s tokenstore.Store, tok *tokenstore.Token) {
	t.Helper()
	if err := s.SaveToken(ctxT(t), tok); err != nil {
		t.Fatalf("SaveToken: %v", err)
	}
}
