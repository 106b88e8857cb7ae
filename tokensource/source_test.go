package tokensource_test

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/cloudtokens/cloudtokens/oauthtest"
	"github.com/cloudtokens/cloudtokens/tokensource"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

func TestGrantExchangeSaves(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore storeFunc) {
		e := newEnv(t, newStore)
		code := e.srv.IssueGrant("alice")
		src := e.source(t, &tokenstore.Token{UserName: "alice", GrantToken: code})
		tok, err := src.TokenContext(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if u, ok := e.srv.AccessTokenUser(tok.AccessToken); !ok || u != "alice" {
			t.Fatalf("returned access token is not alice's live token: %q %v", u, ok)
		}
		if tok.RefreshToken != "" {
			t.Error("the returned oauth2.Token carries the refresh token")
		}
		if !tok.Expiry.Equal(e.clk.Now().Add(time.Hour)) || tok.Type() != "Bearer" {
			t.Errorf("expiry %v type %q", tok.Expiry, tok.Type())
		}
		st := e.stored(t, "alice")
		if st.AccessToken != tok.AccessToken || !e.srv.RefreshTokenValid(st.RefreshToken) || !st.Expiry.Equal(tok.Expiry) {
			t.Fatalf("stored token does not match: %v", st)
		}
		if st.ClientID != e.cfg.ClientID || st.ClientSecret != e.cfg.ClientSecret || st.GrantToken != code ||
			st.RedirectURL != e.cfg.RedirectURL || st.APIDomain != e.srv.APIDomain() {
			t.Fatalf("stored fields: %v", st)
		}
		if tok.Extra(tokensource.ExtraTokenID) != st.ID || tok.Extra(tokensource.ExtraAPIDomain) != e.srv.APIDomain() || src.ID() != st.ID {
			t.Fatalf("extra: id %v domain %v, src.ID %q, stored %q", tok.Extra(tokensource.ExtraTokenID), tok.Extra(tokensource.ExtraAPIDomain), src.ID(), st.ID)
		}
		// Further calls serve the held token: no provider call.
		for range 5 {
			again, err := src.Token()
			if err != nil || again.AccessToken != tok.AccessToken {
				t.Fatalf("second Token: %v", err)
			}
		}
		if e.srv.Exchanges() != 1 || e.srv.TokenRequests() != 1 {
			t.Fatalf("exchanges %d, token requests %d", e.srv.Exchanges(), e.srv.TokenRequests())
		}
		// A second Source (another process) with the same partial token
		// finds the record and neither exchanges nor refreshes.
		other := e.source(t, &tokenstore.Token{UserName: "alice", GrantToken: code})
		if tok2, err := other.Token(); err != nil || tok2.AccessToken != tok.AccessToken {
			t.Fatalf("second source: %v", err)
		}
		// Lookup by ID alone works too.
		byID := e.source(t, &tokenstore.Token{ID: st.ID})
		if tok3, err := byID.Token(); err != nil || tok3.AccessToken != tok.AccessToken {
			t.Fatalf("source by ID: %v", err)
		}
		if e.srv.TokenRequests() != 1 {
			t.Fatalf("token requests %d", e.srv.TokenRequests())
		}
	})
}

func TestRefreshOnExpiry(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore storeFunc) {
		e := newEnv(t, newStore, oauthtest.WithLifetime(time.Hour))
		src := e.login(t, "bob")
		first := e.stored(t, "bob")

		e.clk.Advance(time.Hour - 6*time.Second) // 6 s left: more than the 5 s margin
		tok, err := src.Token()
		if err != nil || tok.AccessToken != first.AccessToken || e.srv.Refreshes() != 0 {
			t.Fatalf("at 6 s left: refreshed (%d) or failed: %v", e.srv.Refreshes(), err)
		}
		e.clk.Advance(2 * time.Second) // 4 s left: refresh
		tok, err = src.Token()
		if err != nil {
			t.Fatal(err)
		}
		if tok.AccessToken == first.AccessToken || e.srv.Refreshes() != 1 {
			t.Fatalf("at 4 s left: refreshes %d", e.srv.Refreshes())
		}
		if _, ok := e.srv.AccessTokenUser(tok.AccessToken); !ok {
			t.Fatal("refreshed token is not live")
		}
		st := e.stored(t, "bob")
		if st.AccessToken != tok.AccessToken || !st.Expiry.Equal(e.clk.Now().Add(time.Hour)) {
			t.Fatalf("stored after refresh: %v", st)
		}
		// The refresh answer had no refresh_token: the stored one stays.
		if st.RefreshToken != first.RefreshToken || st.ID != first.ID {
			t.Fatal("refresh token or ID changed by a refresh without rotation")
		}
	})
}

// TestRefreshMarginOption: a Source that does not own the token's lease
// (here: a store without tokenstore.LeaseSaver) refreshes once less than
// the margin is left; an owner refreshes earlier (TestOwnerRefresh).
func TestRefreshMarginOption(t *testing.T) {
	e := newEnv(t, withoutLeaseSaver(memoryStore))
	src := e.login(t, "carl", tokensource.WithRefreshMargin(10*time.Minute))
	e.clk.Advance(49 * time.Minute)
	if _, err := src.Token(); err != nil || e.srv.Refreshes() != 0 {
		t.Fatalf("11 min left: %d refreshes, %v", e.srv.Refreshes(), err)
	}
	e.clk.Advance(2 * time.Minute)
	if _, err := src.Token(); err != nil || e.srv.Refreshes() != 1 {
		t.Fatalf("9 min left: %d refreshes, %v", e.srv.Refreshes(), err)
	}
}

func TestSingleFlight(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore storeFunc) {
		e := newEnv(t, newStore, oauthtest.WithLatency(50*time.Millisecond), oauthtest.WithRotation(true))
		src := e.login(t, "dana")
		e.clk.Advance(2 * time.Hour)

		const n = 50
		var wg sync.WaitGroup
		got := make([]string, n)
		errs := make([]error, n)
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				tok, err := src.TokenContext(ctxT(t))
				errs[i] = err
				if err == nil {
					got[i] = tok.AccessToken
				}
			}()
		}
		close(start)
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("goroutine %d: %v", i, errs[i])
			}
			if got[i] != got[0] {
				t.Fatalf("goroutine %d got another token", i)
			}
		}
		// TokenRequests, not just Refreshes: with rotation a second
		// successful refresh is impossible, a second attempt is not.
		if e.srv.Refreshes() != 1 || e.srv.TokenRequests() != 2 {
			t.Fatalf("%d goroutines caused %d refreshes in %d token requests, want 1 in 2 (with the login)", n, e.srv.Refreshes(), e.srv.TokenRequests())
		}
		if e.stored(t, "dana").AccessToken != got[0] {
			t.Fatal("the stored token is not the one returned")
		}
	})
}

// TestManySourcesOneRefresh stands in for processes inside one test: 8
// Sources (each with its own lease holder ID) over one store, 5
// goroutines each, one expired token, rotation on.
func TestManySourcesOneRefresh(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore storeFunc) {
		e := newEnv(t, newStore, oauthtest.WithLatency(30*time.Millisecond), oauthtest.WithRotation(true))
		e.login(t, "eve")
		before := e.stored(t, "eve")
		e.clk.Advance(2 * time.Hour)

		const sources, per = 8, 5
		var wg sync.WaitGroup
		var mu sync.Mutex
		tokens := map[string]int{}
		start := make(chan struct{})
		for range sources {
			src := e.source(t, &tokenstore.Token{UserName: "eve"})
			for range per {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					tok, err := src.TokenContext(ctxT(t))
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					tokens[tok.AccessToken]++
					mu.Unlock()
				}()
			}
		}
		close(start)
		wg.Wait()
		if e.srv.Refreshes() != 1 || e.srv.TokenRequests() != 2 || len(tokens) != 1 {
			t.Fatalf("refreshes %d, token requests %d, distinct tokens %d; want 1, 2 (with the login), 1",
				e.srv.Refreshes(), e.srv.TokenRequests(), len(tokens))
		}
		after := e.stored(t, "eve")
		if after.RefreshToken == before.RefreshToken || !e.srv.RefreshTokenValid(after.RefreshToken) || e.srv.RefreshTokenValid(before.RefreshToken) {
			t.Fatal("the rotated refresh token was not stored")
		}
		if _, ok := tokens[after.AccessToken]; !ok {
			t.Fatal("the stored access token is not the one returned")
		}
	})
}

// TestBestEffortWithoutLease: without a Leaser, concurrent Sources may
// race, but with rotation exactly one refresh succeeds at the provider and
// the losers pick up the winner's stored token.
func TestBestEffortWithoutLease(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore storeFunc) {
		e := newEnv(t, func(now func() time.Time) tokenstore.Store { return noLease{newStore(now)} }, oauthtest.WithLatency(20*time.Millisecond), oauthtest.WithRotation(true))
		e.login(t, "fay")
		e.clk.Advance(2 * time.Hour)
		var wg sync.WaitGroup
		srcs := make([]*tokensource.Source, 4)
		errs := make([]error, len(srcs))
		for i := range srcs {
			srcs[i] = e.source(t, &tokenstore.Token{UserName: "fay"})
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = srcs[i].TokenContext(ctxT(t))
			}()
		}
		wg.Wait()
		if e.srv.Refreshes() != 1 {
			t.Fatalf("refreshes %d, want 1 (rotation lets one win)", e.srv.Refreshes())
		}
		want := e.stored(t, "fay").AccessToken
		for i, src := range srcs {
			if errs[i] != nil && !errors.Is(errs[i], tokensource.ErrRefreshRevoked) {
				t.Fatalf("source %d: %v", i, errs[i])
			}
			// Whatever happened, the next call finds the stored token.
			tok, err := src.TokenContext(ctxT(t))
			if err != nil || tok.AccessToken != want {
				t.Fatalf("source %d after the race: %v", i, err)
			}
		}
		if e.srv.Refreshes() != 1 {
			t.Fatalf("refreshes %d after the race", e.srv.Refreshes())
		}
	})
}

func TestRotation(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore storeFunc) {
		e := newEnv(t, newStore, oauthtest.WithRotation(true))
		src := e.login(t, "gil")
		rt0 := e.stored(t, "gil").RefreshToken
		e.clk.Advance(2 * time.Hour)
		if _, err := src.Token(); err != nil {
			t.Fatal(err)
		}
		rt1 := e.stored(t, "gil").RefreshToken
		if rt1 == rt0 || e.srv.RefreshTokenValid(rt0) || !e.srv.RefreshTokenValid(rt1) {
			t.Fatal("rotated refresh token not stored")
		}
		// The next refresh uses the rotated one, also from a new Source.
		e.clk.Advance(2 * time.Hour)
		other := e.source(t, &tokenstore.Token{UserName: "gil"})
		if _, err := other.Token(); err != nil {
			t.Fatal(err)
		}
		if rt2 := e.stored(t, "gil").RefreshToken; rt2 == rt1 || !e.srv.RefreshTokenValid(rt2) || e.srv.Refreshes() != 2 {
			t.Fatalf("second rotation: refreshes %d", e.srv.Refreshes())
		}
		// The first Source still holds the old access token (valid by
		// expiry? no: 2 h passed) and refreshes from the store's state.
		if _, err := src.Token(); err != nil {
			t.Fatalf("first source after the other's rotation: %v", err)
		}
		if e.srv.Refreshes() != 2 {
			t.Fatalf("first source refreshed again: %d", e.srv.Refreshes())
		}
	})
}

// TestRefreshTokenPartial: a partial token with a refresh token (Zoho's
// refresh-token flow) and no record creates the record on first use.
func TestRefreshTokenPartial(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore storeFunc) {
		e := newEnv(t, newStore)
		// Get a refresh token through another store.
		seed := &env{srv: e.srv, clk: e.clk, store: tokenstore.NewMemoryStore(), cfg: e.cfg}
		seed.login(t, "hana")
		rt := seed.stored(t, "hana").RefreshToken

		src := e.source(t, &tokenstore.Token{RefreshToken: rt})
		tok, err := src.Token()
		if err != nil {
			t.Fatal(err)
		}
		all, err := e.store.Tokens(ctxT(t))
		if err != nil || len(all) != 1 || all[0].AccessToken != tok.AccessToken || all[0].RefreshToken != rt {
			t.Fatalf("record after refresh-token login: %v %v", all, err)
		}
		if e.srv.Refreshes() != 1 {
			t.Fatalf("refreshes %d", e.srv.Refreshes())
		}
	})
}

func TestZohoExpiresStyles(t *testing.T) {
	for _, style := range []oauthtest.ExpiresStyle{oauthtest.ExpiresInSeconds, oauthtest.ExpiresInMillis, oauthtest.ExpiresInString} {
		t.Run(fmt.Sprint(style), func(t *testing.T) {
			e := newEnv(t, memoryStore, oauthtest.WithExpiresStyle(style), oauthtest.WithLifetime(90*time.Second))
			src := e.login(t, "ivy")
			tok, _ := src.Token()
			if want := e.clk.Now().Add(90 * time.Second); !tok.Expiry.Equal(want) {
				t.Fatalf("expiry %v, want %v (now + 90 s)", tok.Expiry, want)
			}
			if st := e.stored(t, "ivy"); !st.Expiry.Equal(tok.Expiry) {
				t.Fatalf("stored expiry %v", st.Expiry)
			}
		})
	}
}

func TestAPIDomainFromAnswer(t *testing.T) {
	e := newEnv(t, memoryStore, oauthtest.WithAPIDomain("https://www.zohoapis.eu"))
	src := e.login(t, "jon")
	tok, _ := src.Token()
	if tok.Extra(tokensource.ExtraAPIDomain) != "https://www.zohoapis.eu" || e.stored(t, "jon").APIDomain != "https://www.zohoapis.eu" {
		t.Fatalf("api_domain: %v / %q", tok.Extra(tokensource.ExtraAPIDomain), e.stored(t, "jon").APIDomain)
	}
}

func TestErrorsInBody(t *testing.T) {
	for _, status := range []int{http.StatusOK, http.StatusBadRequest} {
		for _, c := range []struct {
			code string
			want error
		}{
			{oauthtest.ErrInvalidCode, tokensource.ErrRefreshRevoked},
			{"invalid_grant", tokensource.ErrRefreshRevoked},
			{oauthtest.ErrAccessDenied, tokensource.ErrAccessDenied},
			{oauthtest.ErrInvalidClient, tokensource.ErrInvalidClient},
		} {
			t.Run(fmt.Sprintf("%d/%s", status, c.code), func(t *testing.T) {
				e := newEnv(t, memoryStore, oauthtest.WithErrorStatus(status))
				// An explicit style: with auto-detection an invalid_client
				// answer is retried in the other style (TestAuthStyle*).
				e.cfg.AuthStyle = oauth2.AuthStyleInParams
				grant := e.srv.IssueGrant("kim")
				e.srv.FailNext(1, c.code)
				src := e.source(t, &tokenstore.Token{UserName: "kim", GrantToken: grant})
				_, err := src.Token()
				if !errors.Is(err, c.want) {
					t.Fatalf("error %v, want %v", err, c.want)
				}
				var pe *tokensource.ProviderError
				if !errors.As(err, &pe) || pe.Code != c.code || pe.StatusCode != status || pe.Op != "exchange" {
					t.Fatalf("ProviderError: %+v", pe)
				}
				if strings.Contains(err.Error(), grant) || strings.Contains(err.Error(), e.cfg.ClientSecret) {
					t.Fatal("error message contains a secret")
				}
				if _, err := e.store.FindToken(ctxT(t), &tokenstore.Token{UserName: "kim"}); !errors.Is(err, tokenstore.ErrNotFound) {
					t.Fatalf("a failed exchange saved something: %v", err)
				}
			})
		}
	}
}

func TestRevokedRefreshBacksOff(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore storeFunc) {
		e := newEnv(t, newStore)
		src := e.login(t, "lee", tokensource.WithBackoff(time.Minute, 4*time.Minute))
		e.srv.RevokeUser("lee")
		e.clk.Advance(2 * time.Hour)
		reqs := e.srv.TokenRequests()

		_, err := src.Token()
		if !errors.Is(err, tokensource.ErrRefreshRevoked) || errors.Is(err, tokensource.ErrBackingOff) {
			t.Fatalf("first failure: %v", err)
		}
		if e.srv.TokenRequests() != reqs+1 {
			t.Fatalf("token requests %d, want %d", e.srv.TokenRequests(), reqs+1)
		}
		// No hammering: 20 calls within the backoff make no request.
		for range 20 {
			_, err := src.Token()
			if !errors.Is(err, tokensource.ErrBackingOff) || !errors.Is(err, tokensource.ErrRefreshRevoked) {
				t.Fatalf("during backoff: %v", err)
			}
		}
		if e.srv.TokenRequests() != reqs+1 {
			t.Fatalf("calls during the backoff reached the provider: %d", e.srv.TokenRequests()-reqs)
		}
		// Exponential: retry after 1 min, then 2, then 4 (the max), 4.
		for i, wait := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 4 * time.Minute} {
			e.clk.Advance(wait - time.Second)
			if _, err := src.Token(); !errors.Is(err, tokensource.ErrBackingOff) {
				t.Fatalf("step %d: 1 s before the retry: %v", i, err)
			}
			e.clk.Advance(time.Second)
			if _, err := src.Token(); !errors.Is(err, tokensource.ErrRefreshRevoked) || errors.Is(err, tokensource.ErrBackingOff) {
				t.Fatalf("step %d: retry: %v", i, err)
			}
			if got := e.srv.TokenRequests() - reqs; got != i+2 {
				t.Fatalf("step %d: %d token requests, want %d", i, got, i+2)
			}
		}
		// A new login (new grant code, same user) from another Source
		// ends the backoff of the first at once, without waiting.
		relog := e.source(t, &tokenstore.Token{UserName: "lee", GrantToken: e.srv.IssueGrant("lee")})
		fresh, err := relog.Token()
		if err != nil {
			t.Fatalf("re-login: %v", err)
		}
		reqs = e.srv.TokenRequests()
		tok, err := src.Token()
		if err != nil || tok.AccessToken != fresh.AccessToken || e.srv.TokenRequests() != reqs {
			t.Fatalf("after re-login elsewhere: %v (requests %d)", err, e.srv.TokenRequests()-reqs)
		}
	})
}

func TestAccessDeniedRateLimit(t *testing.T) {
	// 12 s tokens: the 5 s margin is under half the lifetime, not clamped.
	e := newEnv(t, memoryStore, oauthtest.WithLimit(3, 10*time.Minute), oauthtest.WithLifetime(12*time.Second))
	src := e.login(t, "max") // generation 1
	for range 2 {            // generations 2 and 3
		e.clk.Advance(8 * time.Second)
		if _, err := src.Token(); err != nil {
			t.Fatal(err)
		}
	}
	e.clk.Advance(8 * time.Second)
	_, err := src.Token()
	if !errors.Is(err, tokensource.ErrAccessDenied) {
		t.Fatalf("4th generation: %v", err)
	}
	reqs := e.srv.TokenRequests()
	for range 10 {
		if _, err := src.Token(); !errors.Is(err, tokensource.ErrBackingOff) || !errors.Is(err, tokensource.ErrAccessDenied) {
			t.Fatalf("during backoff: %v", err)
		}
	}
	if e.srv.TokenRequests() != reqs {
		t.Fatal("the source hammered a rate-limited provider")
	}
	e.clk.Advance(10 * time.Minute) // window and backoff over
	if _, err := src.Token(); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

func TestTransientFailureBackoff(t *testing.T) {
	e := newEnv(t, memoryStore)
	src := e.login(t, "ned")
	e.clk.Advance(2 * time.Hour)
	e.srv.FailNext(2, "server_error")
	reqs := e.srv.TokenRequests()
	if _, err := src.Token(); err == nil || errors.Is(err, tokensource.ErrRefreshRevoked) {
		t.Fatalf("first: %v", err)
	}
	if _, err := src.Token(); !errors.Is(err, tokensource.ErrBackingOff) {
		t.Fatalf("within 1 s: %v", err)
	}
	e.clk.Advance(time.Second)
	if _, err := src.Token(); err == nil || errors.Is(err, tokensource.ErrBackingOff) {
		t.Fatalf("second try: %v", err)
	}
	e.clk.Advance(2 * time.Second)
	if _, err := src.Token(); err != nil {
		t.Fatalf("third try: %v", err)
	}
	if e.srv.TokenRequests()-reqs != 3 {
		t.Fatalf("token requests %d, want 3", e.srv.TokenRequests()-reqs)
	}
}

// TestStaleGrantInPartial: a Source built with a used grant code (a
// configuration left over from the first login) uses the stored token
// after one rejected exchange.
func TestStaleGrantInPartial(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore storeFunc) {
		e := newEnv(t, newStore)
		e.login(t, "olga")
		old := e.srv.IssueGrant("olga")
		// Exchange old elsewhere so that it is used, then re-login with a
		// newer code: the record now holds a different grant.
		e.source(t, &tokenstore.Token{UserName: "olga", GrantToken: old}).Token()
		e.source(t, &tokenstore.Token{UserName: "olga", GrantToken: e.srv.IssueGrant("olga")}).Token()
		want := e.stored(t, "olga")
		reqs := e.srv.TokenRequests()

		src := e.source(t, &tokenstore.Token{UserName: "olga", GrantToken: old})
		tok, err := src.Token()
		if err != nil || tok.AccessToken != want.AccessToken {
			t.Fatalf("stale grant: %v", err)
		}
		if e.srv.TokenRequests()-reqs != 1 {
			t.Fatalf("token requests %d, want 1 (the rejected exchange)", e.srv.TokenRequests()-reqs)
		}
		e.clk.Advance(2 * time.Hour)
		if _, err := src.Token(); err != nil || e.srv.Refreshes() != 1 {
			t.Fatalf("refresh after a stale grant: %v, refreshes %d", err, e.srv.Refreshes())
		}
	})
}

func TestNoToken(t *testing.T) {
	e := newEnv(t, memoryStore)
	src := e.source(t, &tokenstore.Token{UserName: "nobody"})
	if _, err := src.Token(); !errors.Is(err, tokensource.ErrNoToken) || !errors.Is(err, tokenstore.ErrNotFound) {
		t.Fatalf("no record, no grant: %v", err)
	}
	if _, err := tokensource.New(e.store, &tokenstore.Token{}, e.cfg); !errors.Is(err, tokenstore.ErrInvalidToken) {
		t.Fatalf("empty partial: %v", err)
	}
	if _, err := tokensource.New(e.store, &tokenstore.Token{ID: "bad id!"}, e.cfg); !errors.Is(err, tokenstore.ErrInvalidID) {
		t.Fatalf("bad id: %v", err)
	}
	if _, err := tokensource.New(e.store, &tokenstore.Token{UserName: "x"}, tokensource.Config{}); err == nil {
		t.Fatal("no token URL accepted")
	}
	// An access token without a refresh token that has expired.
	if err := e.store.SaveToken(ctxT(t), &tokenstore.Token{UserName: "acc", AccessToken: "a", Expiry: e.clk.Now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.source(t, &tokenstore.Token{UserName: "acc"}).Token(); !errors.Is(err, tokensource.ErrNoToken) {
		t.Fatalf("expired access token only: %v", err)
	}
}

func TestRevoke(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore storeFunc) {
		e := newEnv(t, newStore)
		src := e.login(t, "pat")
		st := e.stored(t, "pat")
		if err := src.Revoke(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		if e.srv.Revocations() != 1 || e.srv.RefreshTokenValid(st.RefreshToken) {
			t.Fatalf("provider: revocations %d, refresh token still valid %v", e.srv.Revocations(), e.srv.RefreshTokenValid(st.RefreshToken))
		}
		if _, ok := e.srv.AccessTokenUser(st.AccessToken); ok {
			t.Fatal("access token still live after revoking its refresh token")
		}
		if _, err := e.store.FindTokenByID(ctxT(t), st.ID); !errors.Is(err, tokenstore.ErrNotFound) {
			t.Fatalf("record after revoke: %v", err)
		}
		// The source has no token any more.
		if _, err := src.Token(); err == nil {
			t.Fatal("Token after Revoke succeeded")
		}

		// The package function, by ID, from a process that never used
		// the token.
		e.login(t, "quinn")
		q := e.stored(t, "quinn")
		if err := tokensource.Revoke(ctxT(t), e.store, e.cfg, q.ID); err != nil {
			t.Fatal(err)
		}
		if e.srv.Revocations() != 2 || e.srv.RefreshTokenValid(q.RefreshToken) {
			t.Fatal("revoke by ID did not reach the provider")
		}
		if _, err := e.store.FindTokenByID(ctxT(t), q.ID); !errors.Is(err, tokenstore.ErrNotFound) {
			t.Fatalf("record after revoke by ID: %v", err)
		}
		if err := tokensource.Revoke(ctxT(t), e.store, e.cfg, q.ID); !errors.Is(err, tokenstore.ErrNotFound) {
			t.Fatalf("second revoke: %v", err)
		}
	})
}

func TestRevokeKeepsRecordWhenProviderFails(t *testing.T) {
	e := newEnv(t, memoryStore)
	e.login(t, "rita")
	st := e.stored(t, "rita")
	cfg := e.cfg
	cfg.RevokeURL = ""
	if err := tokensource.Revoke(ctxT(t), e.store, cfg, st.ID); !errors.Is(err, tokensource.ErrNoRevokeURL) {
		t.Fatalf("no revoke URL: %v", err)
	}
	cfg.RevokeURL = e.srv.URL + "/nowhere"
	if err := tokensource.Revoke(ctxT(t), e.store, cfg, st.ID); err == nil {
		t.Fatal("revoke at a 404 endpoint succeeded")
	}
	if _, err := e.store.FindTokenByID(ctxT(t), st.ID); err != nil {
		t.Fatalf("record deleted although the provider did not revoke: %v", err)
	}
}

func TestTransportRetriesOnInvalidOAuthToken(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore storeFunc) {
		e := newEnv(t, newStore)
		src := e.login(t, "sam")
		client := src.Client(ctxT(t))
		get := func() (int, string) {
			resp, err := client.Get(e.srv.APIURL)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		if st, body := get(); st != 200 || !strings.Contains(body, `"user":"sam"`) || e.srv.Refreshes() != 0 {
			t.Fatalf("first GET: %d, refreshes %d", st, e.srv.Refreshes())
		}
		// The provider drops the access token before its expiry: one
		// refresh, one retry, success.
		e.srv.InvalidateAccessTokens()
		if st, _ := get(); st != 200 || e.srv.Refreshes() != 1 {
			t.Fatalf("after invalidation: %d, refreshes %d", st, e.srv.Refreshes())
		}
		if st, _ := get(); st != 200 || e.srv.Refreshes() != 1 {
			t.Fatalf("next GET: %d, refreshes %d", st, e.srv.Refreshes())
		}
		// A POST with a replayable body is retried with its body.
		e.srv.InvalidateAccessTokens()
		resp, err := client.Post(e.srv.APIURL, "text/plain", strings.NewReader("payload"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || e.srv.Refreshes() != 2 {
			t.Fatalf("POST: %d, refreshes %d", resp.StatusCode, e.srv.Refreshes())
		}
		// A revoked user: the forced refresh fails, the GET fails with
		// ErrRefreshRevoked after one token request, no loop.
		e.srv.RevokeUser("sam")
		reqs := e.srv.TokenRequests()
		_, err = client.Get(e.srv.APIURL)
		if !errors.Is(err, tokensource.ErrRefreshRevoked) {
			t.Fatalf("revoked user: %v", err)
		}
		if e.srv.TokenRequests()-reqs != 1 {
			t.Fatalf("revoked user: %d token requests for one GET", e.srv.TokenRequests()-reqs)
		}
	})
}

// TestTransportConcurrent401: many goroutines that all get a 401 for the
// same token cause one refresh.
func TestTransportConcurrent401(t *testing.T) {
	e := newEnv(t, memoryStore, oauthtest.WithLatency(30*time.Millisecond))
	src := e.login(t, "tia")
	client := src.Client(ctxT(t))
	if _, err := src.Token(); err != nil {
		t.Fatal(err)
	}
	e.srv.InvalidateAccessTokens()
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Get(e.srv.APIURL)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("status %d", resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	if e.srv.Refreshes() != 1 {
		t.Fatalf("20 rejected requests caused %d refreshes", e.srv.Refreshes())
	}
}

func TestOAuth2NewClient(t *testing.T) {
	e := newEnv(t, memoryStore)
	src := e.login(t, "uma")
	resp, err := oauth2.NewClient(ctxT(t), src).Get(e.srv.APIURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestAuthStyleInHeader(t *testing.T) {
	e := newEnv(t, memoryStore)
	e.cfg.AuthStyle = oauth2.AuthStyleInHeader
	e.login(t, "val")
	if e.srv.Exchanges() != 1 {
		t.Fatal("exchange with Basic auth failed")
	}
	oc := &oauth2.Config{ClientID: "id", ClientSecret: "s", RedirectURL: "r",
		Endpoint: oauth2.Endpoint{TokenURL: "https://t", AuthStyle: oauth2.AuthStyleInHeader}}
	if c := tokensource.ConfigFromOAuth2(oc, "https://rv"); c.TokenURL != "https://t" || c.RevokeURL != "https://rv" ||
		c.ClientID != "id" || c.ClientSecret != "s" || c.RedirectURL != "r" || c.AuthStyle != oauth2.AuthStyleInHeader {
		t.Fatalf("ConfigFromOAuth2: %+v", c)
	}
}

// TestContextCancelledWaiter: a caller whose context ends stops waiting;
// the refresh of the others goes on.
func TestContextCancelledWaiter(t *testing.T) {
	e := newEnv(t, memoryStore, oauthtest.WithLatency(200*time.Millisecond))
	src := e.login(t, "wes")
	e.clk.Advance(2 * time.Hour)
	done := make(chan error, 1)
	go func() {
		_, err := src.TokenContext(ctxT(t))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	ctx, cancel := contextWithTimeout(t, 10*time.Millisecond)
	defer cancel()
	if _, err := src.TokenContext(ctx); err == nil {
		t.Fatal("a cancelled waiter got a token in 10 ms from a 200 ms refresh")
	}
	if err := <-done; err != nil {
		t.Fatalf("the other caller: %v", err)
	}
	if e.srv.Refreshes() != 1 {
		t.Fatalf("refreshes %d", e.srv.Refreshes())
	}
}

// TestNoSecretsInLogs runs a lifecycle with failures at Debug level and
// checks that no token value or the client secret reaches the log.
func TestNoSecretsInLogs(t *testing.T) {
	var buf strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(&lockedBuilder{b: &buf, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := newEnv(t, memoryStore, oauthtest.WithRotation(true))
	grant := e.srv.IssueGrant("xena")
	src := e.source(t, &tokenstore.Token{UserName: "xena", GrantToken: grant}, tokensource.WithLogger(logger))
	var secrets []string
	tok, err := src.Token()
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, grant, tok.AccessToken, e.stored(t, "xena").RefreshToken, e.cfg.ClientSecret)
	e.clk.Advance(2 * time.Hour)
	tok, err = src.Token()
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, tok.AccessToken, e.stored(t, "xena").RefreshToken)
	e.srv.RevokeUser("xena")
	e.clk.Advance(2 * time.Hour)
	_, err1 := src.Token()
	_, err2 := src.Token()
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	if !strings.Contains(out, "refreshed the token") || !strings.Contains(out, "backing off") {
		t.Fatalf("expected log records missing:\n%s", out)
	}
	for _, sec := range secrets {
		for _, where := range []string{out, err1.Error(), err2.Error()} {
			if strings.Contains(where, sec) {
				t.Fatalf("a secret value appears in logs or errors:\n%s", where)
			}
		}
	}
}

type lockedBuilder struct {
	b  *strings.Builder
	mu *sync.Mutex
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
