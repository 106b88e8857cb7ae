package tokensource_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/oauthtest"
	"github.com/cloudtokens/cloudtokens/tokensource"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// clock is a settable clock shared by a test's server and sources.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Now().UTC().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// storeKinds are the stores every lifecycle test runs on.
var storeKinds = []struct {
	name string
	new  func() tokenstore.Store
}{
	{"memory", func() tokenstore.Store { return tokenstore.NewMemoryStore() }},
	{"casstore", func() tokenstore.Store {
		return casstore.New(casstore.NewMemoryBackend(), casstore.Options{Logger: quietLogger()})
	}},
}

// forEachStore runs f as a subtest per store kind.
func forEachStore(t *testing.T, f func(t *testing.T, newStore func() tokenstore.Store)) {
	for _, k := range storeKinds {
		t.Run(k.name, func(t *testing.T) { f(t, k.new) })
	}
}

// noLease hides a store's Leaser.
type noLease struct{ tokenstore.Store }

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// env is a test's server, clock, store and client config.
type env struct {
	srv   *oauthtest.Server
	clk   *clock
	store tokenstore.Store
	cfg   tokensource.Config
}

func newEnv(t *testing.T, store tokenstore.Store, opts ...oauthtest.Option) *env {
	t.Helper()
	clk := newClock()
	srv := oauthtest.Start(t, append([]oauthtest.Option{oauthtest.WithClock(clk.Now)}, opts...)...)
	return &env{srv: srv, clk: clk, store: store, cfg: cfgOf(srv)}
}

func cfgOf(srv *oauthtest.Server) tokensource.Config {
	return tokensource.Config{
		TokenURL: srv.TokenURL, RevokeURL: srv.RevokeURL,
		ClientID: srv.ClientID(), ClientSecret: srv.ClientSecret(),
		RedirectURL: "https://app.example/callback",
	}
}

// source returns a Source on the env's store with its clock and a quiet
// logger.
func (e *env) source(t *testing.T, partial *tokenstore.Token, opts ...tokensource.Option) *tokensource.Source {
	t.Helper()
	opts = append([]tokensource.Option{tokensource.WithClock(e.clk.Now), tokensource.WithLogger(quietLogger())}, opts...)
	src, err := tokensource.New(e.store, partial, e.cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// login exchanges a new grant code for user and returns the Source.
func (e *env) login(t *testing.T, user string, opts ...tokensource.Option) *tokensource.Source {
	t.Helper()
	src := e.source(t, &tokenstore.Token{UserName: user, GrantToken: e.srv.IssueGrant(user)}, opts...)
	if _, err := src.TokenContext(ctxT(t)); err != nil {
		t.Fatalf("first login: %v", err)
	}
	return src
}

func (e *env) stored(t *testing.T, user string) *tokenstore.Token {
	t.Helper()
	tok, err := e.store.FindToken(ctxT(t), &tokenstore.Token{UserName: user})
	if err != nil {
		t.Fatalf("FindToken(%s): %v", user, err)
	}
	return tok
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func contextWithTimeout(t *testing.T, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.Context(), d)
}
