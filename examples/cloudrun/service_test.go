package main

// The service against the gcpsmtest Secret Manager emulator, the
// project's OAuth server (package oauthtest) and a local fake API, with
// every Secret Manager RPC of each instance counted at its client.

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"google.golang.org/api/option"
	"google.golang.org/grpc"

	"github.com/cloudtokens/cloudtokens/gcpsm"
	"github.com/cloudtokens/cloudtokens/gcpsm/gcpsmtest"
	"github.com/cloudtokens/cloudtokens/oauthtest"
	"github.com/cloudtokens/cloudtokens/tokensource"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore/casstoretest"
)

// The Secret Manager RPCs of each kind of request, as README.md documents
// them. They follow from the gcpsm store's calls per operation
// (gcpsm/README.md): adjust them here if the engine changes.
var (
	// coldRequests: the first request for a user on an instance finds the
	// token by user name: the index shard and the token secret.
	coldRequests = map[string]int{"AccessSecretVersion": 2}
	// warmRequests: a valid token in the Pool.
	warmRequests = map[string]int{}
	// refreshRequests: an expired token, refreshed without rotation by an
	// instance that did not save it. A read (still expired, or refreshed
	// by another instance?), the lease (a compare-and-swap write: GetSecret
	// for the etag, which this store has not seen yet, AddSecretVersion,
	// UpdateSecret moving the alias, DestroySecretVersion of the
	// superseded version), a read under the lease, then the save (the
	// same write, etag known). Here the token was created just before (the
	// seed's login), so its first update has no version to destroy yet.
	refreshRequests = map[string]int{"AccessSecretVersion": 2, "GetSecret": 1, "AddSecretVersion": 2, "UpdateSecret": 2, "DestroySecretVersion": 1}
	// refreshRotatedRequests: the same with a provider that rotates
	// refresh tokens: the save also claims the new refresh token's index
	// entry before the token write and releases the old one after, two
	// compare-and-swap writes of the index shard (its etag read first).
	refreshRotatedRequests = map[string]int{"AccessSecretVersion": 2, "GetSecret": 2, "AddSecretVersion": 4, "UpdateSecret": 4, "DestroySecretVersion": 2}
	// ownerRequests: the next refresh by the instance that saved the token
	// last, in its early window (from 105 s to 45 s before the expiry), or
	// of a token the API rejected: its save gave it the lease for this
	// refresh, so no lease write: a read (is the token still the one it
	// saved?), then the save (AddSecretVersion, UpdateSecret,
	// DestroySecretVersion), which gives it the lease again.
	ownerRequests = map[string]int{"AccessSecretVersion": 1, "AddSecretVersion": 1, "UpdateSecret": 1, "DestroySecretVersion": 1}
	// ownerRotatedRequests: the same with rotation: the save also moves
	// the refresh token's index entry (two more writes).
	ownerRotatedRequests = map[string]int{"AccessSecretVersion": 1, "AddSecretVersion": 3, "UpdateSecret": 3, "DestroySecretVersion": 3}
	// takeOverRequests: an expired token that another instance has
	// refreshed already.
	takeOverRequests = map[string]int{"AccessSecretVersion": 1}
)

// rpcCounter counts the RPCs one client sends.
type rpcCounter struct {
	mu    sync.Mutex
	calls map[string]int
}

func (c *rpcCounter) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	c.mu.Lock()
	if c.calls == nil {
		c.calls = map[string]int{}
	}
	c.calls[path.Base(method)]++
	c.mu.Unlock()
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (c *rpcCounter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.calls
	c.calls = map[string]int{}
	if out == nil {
		out = map[string]int{}
	}
	return out
}

// clock is a settable clock (one shared test clock: casstoretest.ManualClock).
type clock = casstoretest.ManualClock

// setup is one test's emulator, provider, fake API and logged-in user.
type setup struct {
	emulator *gcpsmtest.Server
	provider *oauthtest.Server
	api      *httptest.Server
	apiCalls atomic.Int64
	clk      *clock
	user, id string
}

const (
	project = "cloudrun-test"
	prefix  = "oauth-tokens"
)

func newSetup(t *testing.T, rotate bool) *setup {
	s := &setup{clk: casstoretest.NewManualClock(time.Now().UTC().Truncate(time.Second)), user: "alice@example.com"}
	s.emulator = gcpsmtest.Start(t)
	s.provider = oauthtest.Start(t, oauthtest.WithClock(s.clk.Now), oauthtest.WithRotation(rotate), oauthtest.WithReuseDetection(true))
	s.api = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.apiCalls.Add(1)
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if _, ok := s.provider.AccessTokenUser(tok); !ok {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"code":"INVALID_OAUTHTOKEN","status":"error"}`))
			return
		}
		_, _ = w.Write([]byte(`{"data":[]}`))
	}))
	t.Cleanup(s.api.Close)

	// The user logged in earlier, through another service.
	seed, err := gcpsm.New(t.Context(), s.client(t, nil), project, prefix)
	if err != nil {
		t.Fatal(err)
	}
	login, err := tokensource.New(seed, &tokenstore.Token{UserName: s.user, GrantToken: s.provider.IssueGrant(s.user)},
		tokensource.Config{TokenURL: s.provider.TokenURL, ClientID: s.provider.ClientID(), ClientSecret: s.provider.ClientSecret()},
		// Without the lease its save would give it until the expiry: that
		// lease lapses by the store's clock, the real one, which this test's
		// clock leaves behind.
		tokensource.WithClock(s.clk.Now), tokensource.WithoutLease())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := login.Token(); err != nil {
		t.Fatal(err)
	}
	s.id = login.ID()
	return s
}

func (s *setup) client(t *testing.T, c *rpcCounter) *secretmanager.Client {
	opts := s.emulator.ClientOptions()
	if c != nil {
		opts = append(opts, option.WithGRPCDialOption(grpc.WithChainUnaryInterceptor(c.intercept)))
	}
	client, err := secretmanager.NewClient(t.Context(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

func (s *setup) env(k string) string {
	return map[string]string{
		"GOOGLE_CLOUD_PROJECT": project,
		"CLOUDTOKENS_PREFIX":   prefix,
		"OAUTH_TOKEN_URL":      s.provider.TokenURL,
		"API_URL":              s.api.URL + "/crm/v8/users",
		"OAUTH_CLIENT_ID":      s.provider.ClientID(),
		"OAUTH_CLIENT_SECRET":  s.provider.ClientSecret(),
	}[k]
}

// instance is one Cloud Run instance: its client (counted) and service,
// built as main builds them.
func (s *setup) instance(t *testing.T) (*Service, *rpcCounter) {
	c := &rpcCounter{}
	svc, err := newService(t.Context(), s.client(t, c), s.env, tokensource.WithClock(s.clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	return svc, c
}

// post sends one request through the service's HTTP handler.
func post(t *testing.T, h http.Handler, body string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/", strings.NewReader(body)))
	return rec.Code, rec.Body.String()
}

func (s *setup) invoke(t *testing.T, h http.Handler) {
	t.Helper()
	b, _ := json.Marshal(Event{UserName: s.user})
	code, body := post(t, h, string(b))
	var resp Response
	if code != http.StatusOK || json.Unmarshal([]byte(body), &resp) != nil || resp.Status != http.StatusOK || resp.ID != s.id {
		t.Fatalf("answer %d %s, want 200 with status 200 and ID %s", code, body, s.id)
	}
	if strings.Contains(body, "1000.") || strings.Contains(body, s.user) || strings.Contains(body, s.provider.ClientSecret()) {
		t.Fatalf("the answer holds a secret or the user name: %s", body)
	}
}

func wantRequests(t *testing.T, what string, got, want map[string]int) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Errorf("%s: Secret Manager RPCs %v, want %v", what, got, want)
	}
}

func TestServiceRequestCounts(t *testing.T) {
	for _, c := range []struct {
		name           string
		rotate         bool
		refresh, owner map[string]int
	}{
		{"no rotation", false, refreshRequests, ownerRequests},
		{"rotation", true, refreshRotatedRequests, ownerRotatedRequests},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSetup(t, c.rotate)
			svc, sm := s.instance(t)

			s.invoke(t, svc)
			wantRequests(t, "cold request", sm.take(), coldRequests)
			for range 100 {
				s.clk.Advance(30 * time.Second)
				s.invoke(t, svc)
			}
			wantRequests(t, "100 warm requests", sm.take(), warmRequests)
			if s.provider.TokenRequests() != 1 || s.apiCalls.Load() != 101 {
				t.Fatalf("%d token requests (1: the login), %d API calls", s.provider.TokenRequests(), s.apiCalls.Load())
			}
			s.clk.Advance(10 * time.Minute)
			s.invoke(t, svc)
			wantRequests(t, "expiry", sm.take(), c.refresh)
			if s.provider.Refreshes() != 1 {
				t.Fatalf("%d refreshes", s.provider.Refreshes())
			}
			for range 10 {
				s.invoke(t, svc)
			}
			wantRequests(t, "warm after the refresh", sm.take(), warmRequests)
			// The next expiry: this instance saved the token, so it owns
			// the next refresh and makes it early, without a lease write.
			s.clk.Advance(time.Hour - 90*time.Second)
			s.invoke(t, svc)
			wantRequests(t, "the owner's refresh", sm.take(), c.owner)
			if s.provider.Refreshes() != 2 {
				t.Fatalf("the owner's refresh: %d refreshes", s.provider.Refreshes())
			}
			// The API rejects the token: the owner refreshes it at once.
			s.provider.InvalidateAccessTokens()
			s.invoke(t, svc)
			wantRequests(t, "rejected token", sm.take(), c.owner)
			if s.provider.Refreshes() != 3 || s.provider.RefreshTokenReuses() != 0 {
				t.Fatalf("%d refreshes, %d reuses", s.provider.Refreshes(), s.provider.RefreshTokenReuses())
			}
		})
	}
}

func TestServiceFleet(t *testing.T) {
	s := newSetup(t, true)
	a, smA := s.instance(t)
	b, smB := s.instance(t)
	s.invoke(t, a)
	s.invoke(t, b)
	smA.take()
	smB.take()
	s.clk.Advance(time.Hour)
	s.invoke(t, a)
	s.invoke(t, b)
	wantRequests(t, "instance A, expiry", smA.take(), refreshRotatedRequests)
	wantRequests(t, "instance B, expiry after A's refresh", smB.take(), takeOverRequests)
	if s.provider.Refreshes() != 1 || s.provider.RefreshTokenReuses() != 0 {
		t.Fatalf("%d refreshes, %d reuses for one expiry in a fleet of 2", s.provider.Refreshes(), s.provider.RefreshTokenReuses())
	}
}

func TestServiceErrors(t *testing.T) {
	s := newSetup(t, false)
	svc, _ := s.instance(t)
	for _, c := range []struct {
		body string
		want int
	}{
		{`{"user_name":"nobody@example.com"}`, http.StatusNotFound},
		{`{}`, http.StatusBadRequest},
		{`not json`, http.StatusBadRequest},
		{`{"user_name":"alice@example.com","client_id":"1000.OTHER"}`, http.StatusNotFound},
	} {
		if code, body := post(t, svc, c.body); code != c.want || strings.Contains(body, "nobody") {
			t.Errorf("%s: %d %q, want %d", c.body, code, body, c.want)
		}
	}
	rec := httptest.NewRecorder()
	svc.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", rec.Code)
	}
	// The user's consent is withdrawn: the refresh is refused, 401.
	s.provider.RevokeUser(s.user)
	s.clk.Advance(2 * time.Hour)
	if code, _ := post(t, svc, `{"user_name":"alice@example.com"}`); code != http.StatusUnauthorized {
		t.Errorf("revoked refresh token: %d, want 401", code)
	}
	reqs := s.provider.TokenRequests()
	if code, _ := post(t, svc, `{"user_name":"alice@example.com"}`); code != http.StatusUnauthorized || s.provider.TokenRequests() != reqs {
		t.Errorf("backing off: %d (%d token requests), want 401 without a token request", code, s.provider.TokenRequests()-reqs)
	}
	for _, k := range []string{"GOOGLE_CLOUD_PROJECT", "CLOUDTOKENS_PREFIX", "OAUTH_TOKEN_URL", "API_URL"} {
		env := func(key string) string {
			if key == k {
				return ""
			}
			return s.env(key)
		}
		if _, err := newService(t.Context(), s.client(t, nil), env); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("without %s: %v", k, err)
		}
	}
}
