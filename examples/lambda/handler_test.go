package main

// The handler against moto_server (or LocalStack) at
// CLOUDTOKENS_AWS_ENDPOINT (skipped without it on a laptop, failed in CI),
// the project's OAuth server (package oauthtest) and a local fake API,
// with every Secrets Manager request counted.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go/middleware"

	"github.com/cloudtokens/cloudtokens/awssm"
	"github.com/cloudtokens/cloudtokens/oauthtest"
	"github.com/cloudtokens/cloudtokens/tokensource"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore/casstoretest"
)

// The Secrets Manager requests of each kind of invocation, as README.md
// documents them. They follow from the store engine's request counts
// (awssm/README.md): adjust them here if the engine changes.
var (
	// coldRequests: the first invocation for a user in an execution
	// environment finds the token by user name: the index shard and the
	// token secret (the index is cached from then on).
	coldRequests = map[string]int{"GetSecretValue": 2}
	// warmRequests: a valid token in the Pool.
	warmRequests = map[string]int{}
	// refreshRequests: an expired token, refreshed without rotation (the
	// provider keeps the refresh token, as Zoho does). A read (is it still
	// expired, or did another instance refresh it?), the lease (one
	// compare-and-swap write: PutSecretValue + UpdateSecretVersionStage),
	// a read under the lease, then the refreshed token's save (the same
	// write).
	refreshRequests = map[string]int{"GetSecretValue": 2, "PutSecretValue": 2, "UpdateSecretVersionStage": 2}
	// refreshRotatedRequests: the same with a provider that rotates
	// refresh tokens. The index holds each refresh token's digest, so the
	// save also claims the new refresh token's index entry before it
	// writes the token and releases the old one after: two more
	// compare-and-swap writes of the index shard.
	refreshRotatedRequests = map[string]int{"GetSecretValue": 2, "PutSecretValue": 4, "UpdateSecretVersionStage": 4}
	// ownerRequests: the next refresh by the environment that saved the
	// token last, in its early window (from 105 s to 45 s before the
	// expiry), or of a token the API rejected: its save gave it the lease
	// for this refresh, so no lease write: a read (is the token still the
	// one it saved?), then the save, which gives it the lease again.
	ownerRequests = map[string]int{"GetSecretValue": 1, "PutSecretValue": 1, "UpdateSecretVersionStage": 1}
	// ownerRotatedRequests: the same with rotation: the save also moves
	// the refresh token's index entry (two more writes).
	ownerRotatedRequests = map[string]int{"GetSecretValue": 1, "PutSecretValue": 3, "UpdateSecretVersionStage": 3}
	// takeOverRequests: an expired token that another instance has
	// refreshed already: the read finds its token.
	takeOverRequests = map[string]int{"GetSecretValue": 1}
)

// counter counts the calls of each Secrets Manager operation the store
// makes. An attempt the SDK retries (a moto_server busy with other tests
// sometimes drops a connection) is billed too, but is up to the network,
// not the store: it is not counted.
type counter struct {
	mu  sync.Mutex
	ops map[string]int
}

func (c *counter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.ops
	c.ops = map[string]int{}
	if out == nil {
		out = map[string]int{}
	}
	return out
}

func (c *counter) install(s *middleware.Stack) error {
	return s.Initialize.Add(middleware.InitializeMiddlewareFunc("test.counter",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			c.mu.Lock()
			if c.ops == nil {
				c.ops = map[string]int{}
			}
			c.ops[awsmiddleware.GetOperationName(ctx)]++
			c.mu.Unlock()
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
}

func testClient(t *testing.T, c *counter) *secretsmanager.Client {
	t.Helper()
	ep := os.Getenv("CLOUDTOKENS_AWS_ENDPOINT")
	if ep == "" {
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatal("CI=true: CLOUDTOKENS_AWS_ENDPOINT is not set")
		}
		t.Skip("CLOUDTOKENS_AWS_ENDPOINT is not set (moto_server -H 127.0.0.1 -p PORT)")
	}
	var opts []func(*config.LoadOptions) error
	if os.Getenv("AWS_REGION") == "" {
		opts = append(opts, config.WithRegion("us-east-1"))
	}
	if os.Getenv("AWS_ACCESS_KEY_ID") == "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")))
	}
	cfg, err := config.LoadDefaultConfig(t.Context(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
		o.BaseEndpoint = aws.String(ep)
		if c != nil {
			o.APIOptions = append(o.APIOptions, c.install)
		}
	})
}

// clock is a settable clock (one shared test clock: casstoretest.ManualClock).
type clock = casstoretest.ManualClock

// fakeAPI is the provider's API: 200 for a live access token of the
// provider, else 401 INVALID_OAUTHTOKEN, as Zoho's APIs answer.
type fakeAPI struct {
	*httptest.Server
	calls atomic.Int64
}

func startAPI(t *testing.T, provider *oauthtest.Server) *fakeAPI {
	a := &fakeAPI{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.calls.Add(1)
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		w.Header().Set("Content-Type", "application/json")
		if _, ok := provider.AccessTokenUser(tok); !ok {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"code":"INVALID_OAUTHTOKEN","status":"error"}`))
			return
		}
		_, _ = w.Write([]byte(`{"data":[{"id":"1"}]}`))
	}))
	t.Cleanup(a.Close)
	return a
}

// setup is one test's provider, API, prefix and logged-in user.
type setup struct {
	provider *oauthtest.Server
	api      *fakeAPI
	clk      *clock
	prefix   string
	user     string
	id       string
}

func newSetup(t *testing.T, rotate bool) *setup {
	var r [8]byte
	rand.Read(r[:])
	s := &setup{clk: casstoretest.NewManualClock(time.Now().UTC().Truncate(time.Second)),
		prefix: "cloudtokens-lambda-test/" + hex.EncodeToString(r[:]), user: "alice@example.com"}
	s.provider = oauthtest.Start(t, oauthtest.WithClock(s.clk.Now), oauthtest.WithRotation(rotate), oauthtest.WithReuseDetection(true))
	s.api = startAPI(t, s.provider)

	// The user logged in earlier, through another function: the token
	// is in the store.
	seed, err := awssm.New(t.Context(), testClient(t, nil), s.prefix, awssm.WithForceDelete())
	if err != nil {
		t.Fatal(err)
	}
	login, err := tokensource.New(seed, &tokenstore.Token{UserName: s.user, GrantToken: s.provider.IssueGrant(s.user)}, s.config(),
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
	t.Cleanup(func() { _ = seed.DeleteTokens(context.WithoutCancel(t.Context())) })
	return s
}

func (s *setup) config() tokensource.Config {
	return tokensource.Config{TokenURL: s.provider.TokenURL, ClientID: s.provider.ClientID(), ClientSecret: s.provider.ClientSecret()}
}

func (s *setup) env(k string) string {
	return map[string]string{
		"CLOUDTOKENS_PREFIX":  s.prefix,
		"OAUTH_TOKEN_URL":     s.provider.TokenURL,
		"API_URL":             s.api.URL + "/crm/v8/users",
		"OAUTH_CLIENT_ID":     s.provider.ClientID(),
		"OAUTH_CLIENT_SECRET": s.provider.ClientSecret(),
	}[k]
}

// instance is one Lambda execution environment: its client (counted)
// and handler, built as main builds them.
func (s *setup) instance(t *testing.T) (*Handler, *counter) {
	c := &counter{}
	h, err := newHandler(t.Context(), testClient(t, c), s.env, tokensource.WithClock(s.clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	return h, c
}

func (s *setup) invoke(t *testing.T, h *Handler) *Response {
	t.Helper()
	resp, err := h.Handle(t.Context(), Event{UserName: s.user})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusOK || resp.ID != s.id {
		t.Fatalf("response %+v, want status 200 and ID %s", resp, s.id)
	}
	return resp
}

func wantRequests(t *testing.T, what string, got, want map[string]int) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Errorf("%s: Secrets Manager requests %v, want %v", what, got, want)
	}
}

func TestHandleRequestCounts(t *testing.T) {
	for _, c := range []struct {
		name           string
		rotate         bool
		refresh, owner map[string]int
	}{
		{"no rotation", false, refreshRequests, ownerRequests},
		{"rotation", true, refreshRotatedRequests, ownerRotatedRequests},
	} {
		t.Run(c.name, func(t *testing.T) { testRequestCounts(t, c.rotate, c.refresh, c.owner) })
	}
}

func testRequestCounts(t *testing.T, rotate bool, refreshRequests, ownerRequests map[string]int) {
	s := newSetup(t, rotate)
	h, sm := s.instance(t)

	// Cold: the first invocation of the execution environment.
	resp := s.invoke(t, h)
	wantRequests(t, "cold invocation", sm.take(), coldRequests)
	if s.provider.TokenRequests() != 1 || s.api.calls.Load() != 1 { // 1: the seed's login
		t.Fatalf("cold: %d token requests, %d API calls", s.provider.TokenRequests(), s.api.calls.Load())
	}
	b, _ := json.Marshal(resp)
	if strings.Contains(string(b), "1000.") || strings.Contains(string(b), s.provider.ClientSecret()) || strings.Contains(string(b), s.user) {
		t.Fatalf("the response holds a secret or the user name: %s", b)
	}

	// Warm: 100 invocations while the token is valid.
	for range 100 {
		s.clk.Advance(30 * time.Second) // 50 minutes in all, under the 1 h lifetime minus the margin
		s.invoke(t, h)
	}
	wantRequests(t, "100 warm invocations", sm.take(), warmRequests)
	if s.provider.TokenRequests() != 1 || s.api.calls.Load() != 101 {
		t.Fatalf("warm: %d token requests, %d API calls", s.provider.TokenRequests(), s.api.calls.Load())
	}

	// Expiry: one refresh.
	s.clk.Advance(10 * time.Minute)
	s.invoke(t, h)
	wantRequests(t, "expiry", sm.take(), refreshRequests)
	if s.provider.Refreshes() != 1 || s.provider.TokenRequests() != 2 {
		t.Fatalf("expiry: %d refreshes, %d token requests", s.provider.Refreshes(), s.provider.TokenRequests())
	}
	for range 10 {
		s.invoke(t, h)
	}
	wantRequests(t, "warm after the refresh", sm.take(), warmRequests)

	// The next expiry: this environment saved the token, so it owns the
	// next refresh and makes it early, without a lease write.
	s.clk.Advance(time.Hour - 90*time.Second)
	s.invoke(t, h)
	wantRequests(t, "the owner's refresh", sm.take(), ownerRequests)
	if s.provider.Refreshes() != 2 {
		t.Fatalf("the owner's refresh: %d refreshes", s.provider.Refreshes())
	}

	// The API rejects the token before its expiry: one refresh (the
	// owner's), the call repeated.
	s.provider.InvalidateAccessTokens()
	calls := s.api.calls.Load()
	s.invoke(t, h)
	wantRequests(t, "rejected token", sm.take(), ownerRequests)
	if s.provider.Refreshes() != 3 || s.api.calls.Load() != calls+2 {
		t.Fatalf("rejected token: %d refreshes, %d API calls", s.provider.Refreshes(), s.api.calls.Load()-calls)
	}
	if s.provider.RefreshTokenReuses() != 0 {
		t.Fatalf("%d refreshes with a rotated-out refresh token", s.provider.RefreshTokenReuses())
	}
}

// TestHandleFleet: two execution environments; an expiry is refreshed by
// the first one invoked, and the other takes its token from the store.
func TestHandleFleet(t *testing.T) {
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

func TestHandleErrors(t *testing.T) {
	s := newSetup(t, false)
	h, _ := s.instance(t)
	if _, err := h.Handle(t.Context(), Event{UserName: "nobody@example.com"}); !errors.Is(err, tokensource.ErrNoToken) ||
		!errors.Is(err, tokenstore.ErrNotFound) || strings.Contains(err.Error(), "nobody") {
		t.Errorf("unknown user: %v, want ErrNoToken without the user name", err)
	}
	if _, err := h.Handle(t.Context(), Event{}); !errors.Is(err, ErrBadEvent) {
		t.Errorf("empty event: %v, want ErrBadEvent", err)
	}
	if _, err := h.Handle(t.Context(), Event{UserName: s.user, ClientID: "1000.OTHER"}); !errors.Is(err, tokensource.ErrNoToken) {
		t.Errorf("other client: %v, want ErrNoToken", err)
	}
	for _, k := range []string{"CLOUDTOKENS_PREFIX", "OAUTH_TOKEN_URL", "API_URL"} {
		env := func(key string) string {
			if key == k {
				return ""
			}
			return s.env(key)
		}
		if _, err := newHandler(t.Context(), testClient(t, nil), env); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("without %s: %v", k, err)
		}
	}
}
