package tokensource_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/oauthtest"
	"github.com/cloudtokens/cloudtokens/tokensource"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore/casstoretest"
)

// clock is a settable clock (one shared test clock: casstoretest.ManualClock).
type clock = casstoretest.ManualClock

func newClock() *clock { return casstoretest.NewManualClock(time.Now().UTC().Truncate(time.Second)) }

// storeFunc opens a store whose leases lapse by now, the test's clock:
// the leases a Source saves with a token are timed by its clock.
type storeFunc = func(now func() time.Time) tokenstore.Store

// memoryStore is a storeFunc for a tokenstore.MemoryStore.
func memoryStore(now func() time.Time) tokenstore.Store {
	return tokenstore.NewMemoryStoreWithClock(now)
}

// storeKinds are the stores every lifecycle test runs on.
var storeKinds = []struct {
	name string
	new  storeFunc
}{
	{"memory", memoryStore},
	{"casstore", func(now func() time.Time) tokenstore.Store {
		return casstore.New(casstore.NewMemoryBackend(), casstore.Options{Logger: quietLogger(), Clock: now})
	}},
}

// forEachStore runs f as a subtest per store kind.
func forEachStore(t *testing.T, f func(t *testing.T, newStore storeFunc)) {
	for _, k := range storeKinds {
		t.Run(k.name, func(t *testing.T) { f(t, k.new) })
	}
}

// noLease hides a store's Leaser.
type noLease struct{ tokenstore.Store }

// leaseOnly hides a store's tokenstore.LeaseSaver: a store with leases
// only (a third-party one), on which every refresh takes the lease.
type leaseOnly struct {
	tokenstore.Store
	tokenstore.Leaser
}

// withoutLeaseSaver opens newStore's store as a leaseOnly.
func withoutLeaseSaver(newStore storeFunc) storeFunc {
	return func(now func() time.Time) tokenstore.Store {
		s := newStore(now)
		return leaseOnly{s, s.(tokenstore.Leaser)}
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// env is a test's server, clock, store and client config.
type env struct {
	srv   *oauthtest.Server
	clk   *clock
	store tokenstore.Store
	cfg   tokensource.Config
	// via, if set, is the store the env's Sources use (a counting
	// wrapper of store, say).
	via tokenstore.Store
}

// countCalls makes the env's Sources made from now on use a counting
// wrapper of its store and returns the wrapper's calls function.
func (e *env) countCalls() func() map[string]int {
	var calls func() map[string]int
	e.via, calls = counting(e.store)
	return calls
}

func newEnv(t *testing.T, newStore storeFunc, opts ...oauthtest.Option) *env {
	t.Helper()
	clk := newClock()
	srv := oauthtest.Start(t, append([]oauthtest.Option{oauthtest.WithClock(clk.Now)}, opts...)...)
	return &env{srv: srv, clk: clk, store: newStore(clk.Now), cfg: cfgOf(srv)}
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
	store := e.store
	if e.via != nil {
		store = e.via
	}
	src, err := tokensource.New(store, partial, e.cfg, opts...)
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
