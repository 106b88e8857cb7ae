package tokensource_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/oauthtest"
	"github.com/cloudtokens/cloudtokens/tokensource"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore/casstoretest"
)

// The owner's refresh, with the default options: margin 5 s, lease TTL
// 30 s, so the owner refreshes early from 105 s to 45 s before expiry and
// its lease runs until 5 s before expiry. Tokens live 1 hour.
const (
	inWindow     = 90 * time.Second // validity left inside the owner's window
	beforeWindow = 2 * time.Minute  // validity left before it
	pastLease    = 4 * time.Second  // validity left after the owner's lease
)

// advanceTo moves the clock to left before the expiry of e's stored token
// for user.
func (e *env) advanceTo(t *testing.T, user string, left time.Duration) {
	t.Helper()
	d := e.stored(t, user).Expiry.Add(-left).Sub(e.clk.Now())
	if d < 0 {
		t.Fatalf("the clock is already past %s before expiry", left)
	}
	e.clk.Advance(d)
}

// wantRefreshes checks the provider's refreshes so far and that no
// rotated-out refresh token was ever sent.
func (e *env) wantRefreshes(t *testing.T, what string, n int) {
	t.Helper()
	if got, reuses := e.srv.Refreshes(), e.srv.RefreshTokenReuses(); got != n || reuses != 0 {
		t.Fatalf("%s: %d provider refreshes and %d refresh token reuses; want %d and 0", what, got, reuses, n)
	}
}

// token calls src.Token and checks that it got the stored token for user.
func (e *env) token(t *testing.T, what string, src *tokensource.Source, user string) string {
	t.Helper()
	tok, err := src.Token()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if st := e.stored(t, user); st.AccessToken != tok.AccessToken {
		t.Fatalf("%s: the token is not the stored one", what)
	}
	return tok.AccessToken
}

// TestOwnerRefresh: the Source that saved a token owns its next refresh:
// in its window it refreshes with one read and one write (the save, which
// carries its lease again), no lease write, once per expiry, lifetime
// after lifetime; before the window it costs nothing. On a store without
// tokenstore.LeaseSaver every refresh takes the lease as before.
func TestOwnerRefresh(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore storeFunc) {
		e := newEnv(t, newStore, oauthtest.WithRotation(true), oauthtest.WithReuseDetection(true))
		calls := e.countCalls()
		src := e.login(t, "ann")
		wantCalls(t, "login", calls(), map[string]int{"FindToken": 1, "SaveTokenLeased": 1})
		for i := 1; i <= 3; i++ {
			e.advanceTo(t, "ann", beforeWindow)
			before := e.token(t, "before the window", src, "ann")
			wantCalls(t, "before the window", calls(), map[string]int{})
			e.advanceTo(t, "ann", inWindow)
			if e.token(t, "in the window", src, "ann") == before {
				t.Fatalf("refresh %d: no early refresh", i)
			}
			e.wantRefreshes(t, "in the window", i)
			wantCalls(t, "the owner's refresh", calls(), map[string]int{"FindTokenByID": 1, "SaveTokenLeased": 1})
			e.token(t, "after it", src, "ann")
			wantCalls(t, "after it", calls(), map[string]int{})
		}
		// Idle through the window (it ends 45 s before expiry): at 44 s
		// left the token is served as it is, and at 4 s left the owner
		// refreshes the usual way, with the lease.
		e.advanceTo(t, "ann", 44*time.Second)
		e.token(t, "44 s left", src, "ann")
		e.wantRefreshes(t, "44 s left", 3)
		wantCalls(t, "44 s left", calls(), map[string]int{})
		e.advanceTo(t, "ann", pastLease)
		e.token(t, "4 s left", src, "ann")
		e.wantRefreshes(t, "4 s left", 4)
		wantCalls(t, "4 s left", calls(), map[string]int{"FindTokenByID": 2, "AcquireLease": 1, "SaveTokenLeased": 1})
	})
	t.Run("without LeaseSaver", func(t *testing.T) {
		e := newEnv(t, withoutLeaseSaver(memoryStore), oauthtest.WithRotation(true), oauthtest.WithReuseDetection(true))
		calls := e.countCalls()
		src := e.login(t, "ann")
		calls()
		e.advanceTo(t, "ann", inWindow)
		e.token(t, "90 s left", src, "ann")
		e.wantRefreshes(t, "90 s left", 0)
		wantCalls(t, "90 s left", calls(), map[string]int{})
		e.advanceTo(t, "ann", pastLease)
		e.token(t, "4 s left", src, "ann")
		e.wantRefreshes(t, "4 s left", 1)
		wantCalls(t, "4 s left", calls(), map[string]int{"FindTokenByID": 2, "AcquireLease": 1, "SaveToken": 1})
	})
}

// TestOwnerLeaseKeepsOthersOut: another process (a second Source on the
// same store) never refreshes while the owner's lease runs, not with a
// larger margin (it serves the valid token) nor for a rejected token (it
// waits for the owner, then gives up); when the owner stays idle through
// its window, the other takes over at expiry minus the margin with the
// usual lease, and owns the token from then on. One refresh per expiry,
// no refresh token reuse.
func TestOwnerLeaseKeepsOthersOut(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore storeFunc) {
		e := newEnv(t, newStore, oauthtest.WithRotation(true), oauthtest.WithReuseDetection(true))
		owner := e.login(t, "bea")
		calls := e.countCalls()
		other := e.source(t, &tokenstore.Token{UserName: "bea"}, fastPolls)
		eager := e.source(t, &tokenstore.Token{UserName: "bea"}, tokensource.WithRefreshMargin(10*time.Minute))
		rejecter := e.source(t, &tokenstore.Token{UserName: "bea"}, fastPolls, tokensource.WithLeaseTTL(50*time.Millisecond))
		first := e.token(t, "other, first call", other, "bea")
		e.token(t, "eager, first call", eager, "bea")
		e.token(t, "rejecter, first call", rejecter, "bea")
		calls()

		// 9 minutes left: the eager Source would refresh, but the owner's
		// lease keeps it out; the token is valid for longer than its wait
		// for the lease could last, so it serves it.
		e.advanceTo(t, "bea", 9*time.Minute)
		if got := e.token(t, "eager, 9 min left", eager, "bea"); got != first {
			t.Fatal("eager: a new token")
		}
		wantCalls(t, "eager, 9 min left", calls(), map[string]int{"FindTokenByID": 1, "AcquireLease": 1})
		// A rejected token: the other waits for the owner's refresh, which
		// does not come, and gives up without refreshing.
		if _, err := rejecter.RefreshRejected(ctxT(t), first); !errors.Is(err, tokensource.ErrLeaseTimeout) {
			t.Fatalf("rejected token: %v, want ErrLeaseTimeout", err)
		}
		e.wantRefreshes(t, "while the owner's lease runs", 0)

		// The owner stays idle through its window; its lease lapses 5 s
		// before expiry, and the other takes over with the usual lease.
		e.advanceTo(t, "bea", pastLease)
		calls()
		second := e.token(t, "other, 4 s left", other, "bea")
		e.wantRefreshes(t, "the takeover", 1)
		wantCalls(t, "the takeover", calls(), map[string]int{"FindTokenByID": 2, "AcquireLease": 1, "SaveTokenLeased": 1})
		// The former owner reads the new token and does not refresh.
		if got := e.token(t, "former owner", owner, "bea"); got != second {
			t.Fatal("the former owner got another token")
		}
		e.wantRefreshes(t, "former owner", 1)

		// Next lifetime: the other owns the token now.
		e.advanceTo(t, "bea", inWindow)
		e.token(t, "former owner, in the window", owner, "bea")
		e.wantRefreshes(t, "former owner, in the window", 1)
		calls()
		e.token(t, "new owner, in the window", other, "bea")
		e.wantRefreshes(t, "new owner, in the window", 2)
		wantCalls(t, "new owner, in the window", calls(), map[string]int{"FindTokenByID": 1, "SaveTokenLeased": 1})
	})
}

// TestOwnerAndOthersOneRefreshPerExpiry: an owner and four other Sources
// (processes) ask for the token concurrently every 5 s of the clock
// through eight lifetimes, with the owner busy for four lifetimes and
// then idle: exactly one refresh per expiry, no reuse, every call served.
func TestOwnerAndOthersOneRefreshPerExpiry(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore storeFunc) {
		e := newEnv(t, newStore, oauthtest.WithRotation(true), oauthtest.WithReuseDetection(true))
		owner := e.login(t, "cid")
		others := make([]*tokensource.Source, 4)
		for i := range others {
			others[i] = e.source(t, &tokenstore.Token{UserName: "cid"}, fastPolls)
		}
		for life := 1; life <= 8; life++ {
			srcs := others
			if life <= 4 {
				srcs = append([]*tokensource.Source{owner}, others...)
			}
			e.advanceTo(t, "cid", 2*time.Minute)
			for range 25 { // to 3 minutes later: past the expiry
				e.clk.Advance(5 * time.Second)
				var wg sync.WaitGroup
				for i, src := range srcs {
					wg.Go(func() {
						if _, err := src.TokenContext(ctxT(t)); err != nil {
							t.Errorf("lifetime %d, source %d: %v", life, i, err)
						}
					})
				}
				wg.Wait()
				if t.Failed() {
					t.FailNow()
				}
			}
			e.wantRefreshes(t, "after the expiry", life)
		}
	})
}

// TestOwnerAfterNewLogin: a new login saved meanwhile (with SaveToken,
// as a process on a store without LeaseSaver saves it, or by a Source
// that exchanged a grant code and owns the new token) ends the owner's
// lease: in its window the former owner reads the new token and serves
// it without refreshing, and it refreshes the new token only the usual
// way, with the lease, when no one owns it. No reuse of either chain.
func TestOwnerAfterNewLogin(t *testing.T) {
	for _, how := range []string{"SaveToken", "Source"} {
		t.Run(how, func(t *testing.T) {
			forEachStore(t, func(t *testing.T, newStore storeFunc) {
				e := newEnv(t, newStore, oauthtest.WithRotation(true), oauthtest.WithReuseDetection(true))
				calls := e.countCalls()
				owner := e.login(t, "dan")
				e.advanceTo(t, "dan", 10*time.Minute)
				relogin := &env{srv: e.srv, clk: e.clk, store: e.store, cfg: e.cfg, via: e.via}
				if how == "SaveToken" {
					relogin.via = leaseOnly{e.via, e.via.(tokenstore.Leaser)}
				}
				login := relogin.login(t, "dan")
				fresh := e.stored(t, "dan")
				calls()
				requests := e.srv.TokenRequests()

				// The old token's window: the former owner finds the new
				// login (1 read) and serves it.
				e.clk.Advance(10*time.Minute - inWindow)
				if got := e.token(t, "former owner, old token's window", owner, "dan"); got != fresh.AccessToken {
					t.Fatal("the former owner did not take the new login's token")
				}
				e.wantRefreshes(t, "former owner, old token's window", 0)
				if e.srv.TokenRequests() != requests {
					t.Fatal("the former owner called the provider (its used grant code again?)")
				}
				wantCalls(t, "former owner, old token's window", calls(), map[string]int{"FindTokenByID": 1})

				// The new token's window: the former owner does not refresh.
				e.advanceTo(t, "dan", inWindow)
				e.token(t, "former owner, new token's window", owner, "dan")
				e.wantRefreshes(t, "former owner, new token's window", 0)
				wantCalls(t, "former owner, new token's window", calls(), map[string]int{})
				if how == "Source" {
					// The login's Source owns the new token.
					e.token(t, "the login's Source, in its window", login, "dan")
					e.wantRefreshes(t, "the login's Source, in its window", 1)
					wantCalls(t, "the login's Source", calls(), map[string]int{"FindTokenByID": 1, "SaveTokenLeased": 1})
					return
				}
				// Nobody owns it: the former owner refreshes it the usual way.
				e.advanceTo(t, "dan", pastLease)
				e.token(t, "former owner, 4 s left", owner, "dan")
				e.wantRefreshes(t, "former owner, 4 s left", 1)
				wantCalls(t, "former owner, 4 s left", calls(), map[string]int{"FindTokenByID": 2, "AcquireLease": 1, "SaveTokenLeased": 1})
			})
		})
	}
}

// TestOwnerEarlyRefreshFails: an early refresh that fails serves the
// valid token, backs off (no request within the backoff), and is tried
// again after it. A rejected token is refreshed by the owner without a
// lease write at any time of its lease.
func TestOwnerEarlyRefreshFails(t *testing.T) {
	e := newEnv(t, memoryStore, oauthtest.WithRotation(true), oauthtest.WithReuseDetection(true), oauthtest.WithErrorStatus(500))
	calls := e.countCalls()
	src := e.login(t, "eli")
	old := e.stored(t, "eli").AccessToken
	e.advanceTo(t, "eli", inWindow)
	e.srv.FailNext(1, "server_error")
	requests := e.srv.TokenRequests()
	if got := e.token(t, "failed early refresh", src, "eli"); got != old {
		t.Fatal("a new token after a failed refresh")
	}
	e.token(t, "within the backoff", src, "eli")
	if e.srv.TokenRequests() != requests+1 {
		t.Fatalf("%d token requests, want 1", e.srv.TokenRequests()-requests)
	}
	e.clk.Advance(2 * time.Second) // past the 1 s transient backoff
	if e.token(t, "after the backoff", src, "eli") == old {
		t.Fatal("no refresh after the backoff")
	}
	e.wantRefreshes(t, "after the backoff", 1)
	calls()

	// Mid-lifetime, the API rejects the token: the owner refreshes at
	// once, without a lease write.
	e.advanceTo(t, "eli", 30*time.Minute)
	cur := e.stored(t, "eli").AccessToken
	tok, err := src.RefreshRejected(ctxT(t), cur)
	if err != nil || tok.AccessToken == cur {
		t.Fatalf("rejected token: %v", err)
	}
	e.wantRefreshes(t, "rejected token", 2)
	wantCalls(t, "rejected token", calls(), map[string]int{"FindTokenByID": 1, "SaveTokenLeased": 1})
}

// TestOwnerVersionsPerDay runs a simulated day of a token refreshed by a
// busy process (asked for it every 30 s) on a casstore under AWS's quota
// of 100 versions per secret per 24 hours (casstoretest.QuotaBackend),
// for a provider that keeps the refresh token (only the token's secret is
// written). The owner's refresh writes 1 version per refresh, the lease
// and the save 2: the owner keeps a 20-minute token within 80 versions a
// day (20% headroom), which the lease and the save cannot; they need
// about 36 minutes.
func TestOwnerVersionsPerDay(t *testing.T) {
	for _, c := range []struct {
		name     string
		life     time.Duration
		owner    bool
		versions int // the most any secret may have in 24 h; 0: the quota refuses writes
	}{
		{"owner, 20 min token", 20 * time.Minute, true, 80},
		{"lease and save, 36 min token", 36 * time.Minute, false, 80},
		{"lease and save, 20 min token", 20 * time.Minute, false, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			var quota *casstoretest.QuotaBackend
			open := func(now func() time.Time) tokenstore.Store {
				quota = casstoretest.NewQuotaBackend(casstore.NewMemoryBackend(), now)
				return casstore.New(quota, casstore.Options{Logger: quietLogger(), Clock: now})
			}
			if !c.owner {
				open = withoutLeaseSaver(open)
			}
			e := newEnv(t, open, oauthtest.WithLifetime(c.life), oauthtest.WithLimit(0, 0))
			src := e.login(t, "fox")
			failed := 0
			end := e.clk.Now().Add(25 * time.Hour)
			for e.clk.Now().Before(end) {
				e.clk.Advance(30 * time.Second)
				if _, err := src.Token(); err != nil {
					if !errors.Is(err, casstoretest.ErrVersionQuota) {
						t.Fatal(err)
					}
					failed++
				}
			}
			most, name := quota.MaxVersions()
			t.Logf("%d refreshes in 25 h, at most %d versions of %s in 24 h, %d writes refused, %d calls failed",
				e.srv.Refreshes(), most, name, quota.Refused(), failed)
			if c.versions == 0 {
				if quota.Refused() == 0 {
					t.Fatal("the quota refused nothing")
				}
				return
			}
			if quota.Refused() != 0 || most > c.versions {
				t.Fatalf("%d versions (want at most %d), %d refused", most, c.versions, quota.Refused())
			}
		})
	}
}
