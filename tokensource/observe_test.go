package tokensource_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/oauthtest"
	"github.com/cloudtokens/cloudtokens/observe"
	"github.com/cloudtokens/cloudtokens/observe/observetest"
	"github.com/cloudtokens/cloudtokens/tokensource"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// ended returns the operations of kind rec saw end.
func ended(rec *observetest.Recorder, kind observe.Kind) []observetest.Ended {
	var out []observetest.Ended
	for _, o := range rec.Ops() {
		if o.Op.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

// assertNoSecrets fails if rec was given one of secrets.
func assertNoSecrets(t *testing.T, rec *observetest.Recorder, secrets ...string) {
	t.Helper()
	for _, s := range rec.Strings() {
		for _, secret := range secrets {
			if secret != "" && strings.Contains(s, secret) {
				t.Errorf("the Observer was given %q, which holds %q", s, secret)
			}
		}
	}
}

// TestObserverLogin: a Pool reports its miss and hit, and a login as an
// Exchange holding its token request.
func TestObserverLogin(t *testing.T) {
	e := newEnv(t, memoryStore)
	rec := &observetest.Recorder{}
	pool, err := tokensource.NewPool(e.store, e.cfg, tokensource.WithClock(e.clk.Now), tokensource.WithLogger(quietLogger()), tokensource.WithObserver(rec))
	if err != nil {
		t.Fatal(err)
	}
	grant := e.srv.IssueGrant("alice@example.com")
	if _, err := pool.Token(ctxT(t), &tokenstore.Token{UserName: "alice@example.com", GrantToken: grant}); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Token(ctxT(t), &tokenstore.Token{UserName: "alice@example.com"}); err != nil {
		t.Fatal(err)
	}
	stored := e.stored(t, "alice@example.com")

	if misses, hits := rec.Events(observe.PoolMiss), rec.Events(observe.PoolHit); len(misses) != 1 || len(hits) != 1 || hits[0].Event.TokenID != stored.ID {
		t.Errorf("pool events: %d misses, %d hits (%+v); want 1 and 1, the hit with ID %s", len(misses), len(hits), hits, stored.ID)
	}
	ex := ended(rec, observe.Exchange)
	if len(ex) != 1 || ex[0].Err != nil || ex[0].Op.TokenID != stored.ID || ex[0].Parent != nil {
		t.Fatalf("exchanges: %+v; want one, top-level, ok, with the new record's ID", ex)
	}
	req := ended(rec, observe.TokenRequest)
	if len(req) != 1 || req[0].Op.Grant != "authorization_code" || req[0].Parent == nil || req[0].Parent.Kind != observe.Exchange || req[0].Err != nil {
		t.Errorf("token requests: %+v; want one authorization_code request inside the Exchange", req)
	}
	assertNoSecrets(t, rec, "alice@example.com", grant, stored.AccessToken, stored.RefreshToken, e.cfg.ClientSecret)
}

// TestObserverBackoff: a refused refresh is reported as a failed Refresh
// and token request and a Backoff event; the next call, refused without
// a request, as a BackoffBlocked event.
func TestObserverBackoff(t *testing.T) {
	e := newEnv(t, memoryStore)
	rec := &observetest.Recorder{}
	src := e.login(t, "alice@example.com", tokensource.WithObserver(rec))
	e.clk.Advance(2 * time.Hour)
	e.srv.FailNext(1, oauthtest.ErrInvalidCode)
	if _, err := src.TokenContext(ctxT(t)); !errors.Is(err, tokensource.ErrRefreshRevoked) {
		t.Fatalf("refresh: %v, want ErrRefreshRevoked", err)
	}
	if _, err := src.TokenContext(ctxT(t)); !errors.Is(err, tokensource.ErrBackingOff) {
		t.Fatalf("during the backoff: %v, want ErrBackingOff", err)
	}
	id := e.stored(t, "alice@example.com").ID

	refreshes := ended(rec, observe.Refresh)
	if len(refreshes) != 1 || !errors.Is(refreshes[0].Err, tokensource.ErrRefreshRevoked) || refreshes[0].Op.TokenID != id {
		t.Errorf("refreshes: %+v; want one that failed with ErrRefreshRevoked", refreshes)
	}
	if req := ended(rec, observe.TokenRequest); len(req) != 2 || req[1].Op.Grant != "refresh_token" || !errors.Is(req[1].Err, tokensource.ErrRefreshRevoked) {
		t.Errorf("token requests: %+v; want the login's and a refused refresh_token one", req)
	}
	backoffs := rec.Events(observe.Backoff)
	if len(backoffs) != 1 || backoffs[0].Event.Attempt != 1 || backoffs[0].Event.Wait != tokensource.DefaultBackoff ||
		!errors.Is(backoffs[0].Event.Err, tokensource.ErrRefreshRevoked) || backoffs[0].In == nil || backoffs[0].In.Kind != observe.Refresh {
		t.Errorf("backoff events: %+v; want one of %s after the first failure, inside the Refresh", backoffs, tokensource.DefaultBackoff)
	}
	if blocked := rec.Events(observe.BackoffBlocked); len(blocked) != 1 || !errors.Is(blocked[0].Event.Err, tokensource.ErrBackingOff) || blocked[0].Event.TokenID != id {
		t.Errorf("backoff_blocked events: %+v; want one", blocked)
	}
}

// TestObserverLeaseTakeover: the lease of a process that died is waited
// out and taken over, inside the Refresh.
func TestObserverLeaseTakeover(t *testing.T) {
	var store *tokenstore.MemoryStore
	e := newEnv(t, func(now func() time.Time) tokenstore.Store {
		store = tokenstore.NewMemoryStoreWithClock(now)
		return store
	})
	e.login(t, "alice@example.com")
	id := e.stored(t, "alice@example.com").ID
	e.clk.Advance(2 * time.Hour)
	if ok, err := store.AcquireLease(ctxT(t), id, "a-process-that-died", 100*time.Millisecond); !ok || err != nil {
		t.Fatalf("AcquireLease: %v, %v", ok, err)
	}
	rec := &observetest.Recorder{}
	src := e.source(t, &tokenstore.Token{UserName: "alice@example.com"}, tokensource.WithObserver(rec),
		tokensource.WithLeasePoll(5*time.Millisecond, 20*time.Millisecond))
	go func() {
		// The dead process's lease runs out on the store's (fake) clock
		// while the Source waits.
		time.Sleep(100 * time.Millisecond)
		e.clk.Advance(time.Second)
	}()
	if _, err := src.TokenContext(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if e.srv.Refreshes() != 1 {
		t.Fatalf("%d refreshes, want 1", e.srv.Refreshes())
	}
	waits := ended(rec, observe.LeaseWait)
	if len(waits) != 1 || waits[0].Err != nil || waits[0].Parent == nil || waits[0].Parent.Kind != observe.Refresh {
		t.Fatalf("lease waits: %+v; want one inside the Refresh, ended ok", waits)
	}
	takeovers := rec.Events(observe.LeaseTakeover)
	if len(takeovers) != 1 || takeovers[0].Event.TokenID != id || takeovers[0].In == nil || takeovers[0].In.Kind != observe.LeaseWait {
		t.Errorf("takeovers: %+v; want one, in the LeaseWait", takeovers)
	}
	if n := len(rec.Events(observe.LeaseAcquire)); n != 0 {
		t.Errorf("%d lease_acquire events for a lease taken over", n)
	}
	if refreshes := ended(rec, observe.Refresh); len(refreshes) != 1 || refreshes[0].Err != nil {
		t.Errorf("refreshes: %+v", refreshes)
	}
}
