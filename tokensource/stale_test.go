package tokensource_test

import (
	"errors"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/oauthtest"
	"github.com/cloudtokens/cloudtokens/tokensource"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// fastPolls keeps the re-reads of the stale-read tests short.
var fastPolls = tokensource.WithLeasePoll(time.Millisecond, 4*time.Millisecond)

// TestStaleReadNoRefreshTokenReuse: after a Source rotated the refresh
// token, a store that answers with the previous record (an eventually
// consistent read) is read again until it returns the newest, and the
// superseded refresh token never reaches the provider, which would revoke
// the whole chain (reuse detection as in ORY Hydra).
func TestStaleReadNoRefreshTokenReuse(t *testing.T) {
	st := &staleStore{}
	e := newEnv(t, st.open, oauthtest.WithRotation(true), oauthtest.WithReuseDetection(true))
	src := e.login(t, "mia", fastPolls)
	e.clk.Advance(2 * time.Hour)
	if _, err := src.Token(); err != nil || e.srv.Refreshes() != 1 {
		t.Fatalf("first refresh: %v", err)
	}
	rotated := e.stored(t, "mia").RefreshToken

	st.StaleReads(3)
	// The store is stale now: a read returns the rotated-out token.
	if old, err := st.FindTokenByID(ctxT(t), src.ID()); err != nil || old.RefreshToken == rotated || e.srv.RefreshTokenValid(old.RefreshToken) {
		t.Fatalf("the stale store does not serve the old record: %v", err)
	}
	e.clk.Advance(2 * time.Hour)
	tok, err := src.Token()
	if err != nil {
		t.Fatalf("refresh through stale reads: %v", err)
	}
	if n := e.srv.RefreshTokenReuses(); n != 0 {
		t.Fatalf("%d refreshes with a superseded refresh token", n)
	}
	if e.srv.Refreshes() != 2 || st.Served() != 3 {
		t.Fatalf("refreshes %d (want 2), stale answers %d (want 3)", e.srv.Refreshes(), st.Served())
	}
	if u, ok := e.srv.AccessTokenUser(tok.AccessToken); !ok || u != "mia" {
		t.Fatal("the token returned is not live")
	}
}

// TestStaleReadGivesUp: a store that stays stale beyond WithStaleReadWait
// gives ErrStaleRead (which matches tokenstore.ErrConflict), without a
// provider request.
func TestStaleReadGivesUp(t *testing.T) {
	st := &staleStore{}
	e := newEnv(t, st.open, oauthtest.WithRotation(true), oauthtest.WithReuseDetection(true))
	src := e.login(t, "ned", fastPolls, tokensource.WithStaleReadWait(30*time.Millisecond))
	e.clk.Advance(2 * time.Hour)
	if _, err := src.Token(); err != nil {
		t.Fatal(err)
	}
	st.StaleReads(-1)
	e.clk.Advance(2 * time.Hour)
	reqs := e.srv.TokenRequests()
	_, err := src.Token()
	if !errors.Is(err, tokensource.ErrStaleRead) || !errors.Is(err, tokenstore.ErrConflict) {
		t.Fatalf("stale store: %v, want ErrStaleRead", err)
	}
	if e.srv.TokenRequests() != reqs || e.srv.RefreshTokenReuses() != 0 {
		t.Fatalf("%d provider requests, %d reuses", e.srv.TokenRequests()-reqs, e.srv.RefreshTokenReuses())
	}
	// Once the store catches up, the Source refreshes with the newest.
	st.StaleReads(0)
	if _, err := src.Token(); err != nil || e.srv.Refreshes() != 2 || e.srv.RefreshTokenReuses() != 0 {
		t.Fatalf("after the store caught up: %v (refreshes %d)", err, e.srv.Refreshes())
	}
}

// TestStaleReadAfterRelogin: a Pool's login replaces the record's Source;
// the new Source counts the old chain's refresh tokens as superseded, so a
// stale read of the pre-login record is read again too.
func TestStaleReadAfterRelogin(t *testing.T) {
	st := &staleStore{}
	e := newEnv(t, st.open, oauthtest.WithRotation(true), oauthtest.WithReuseDetection(true))
	p := e.pool(t, st, fastPolls)
	if _, err := p.Token(ctxT(t), &tokenstore.Token{UserName: "ora", GrantToken: e.srv.IssueGrant("ora")}); err != nil {
		t.Fatal(err)
	}
	firstChain := e.stored(t, "ora").RefreshToken
	if _, err := p.Token(ctxT(t), &tokenstore.Token{UserName: "ora", GrantToken: e.srv.IssueGrant("ora")}); err != nil {
		t.Fatal(err)
	}
	// The first chain is still live at the provider (no revocation on
	// re-login), so only the Source's memory keeps it from being used.
	st.StaleReads(2)
	e.clk.Advance(2 * time.Hour)
	if _, err := p.Token(ctxT(t), &tokenstore.Token{UserName: "ora"}); err != nil {
		t.Fatal(err)
	}
	stored := e.stored(t, "ora")
	if st.Served() != 2 || e.srv.Refreshes() != 1 || e.srv.RefreshTokenReuses() != 0 || !e.srv.RefreshTokenValid(stored.RefreshToken) {
		t.Fatalf("stale answers %d, refreshes %d, reuses %d", st.Served(), e.srv.Refreshes(), e.srv.RefreshTokenReuses())
	}
	if !e.srv.RefreshTokenValid(firstChain) || stored.RefreshToken == firstChain {
		t.Fatal("the first login's refresh token was used after the second login")
	}
}
