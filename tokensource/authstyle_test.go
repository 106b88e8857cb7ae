package tokensource_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/cloudtokens/cloudtokens/oauthtest"
	"github.com/cloudtokens/cloudtokens/tokensource"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// TestAuthStyleDetection: with the zero AuthStyle, a provider that takes
// only client_secret_basic works on the first request, one that takes
// only client_secret_post on the second; the answer is remembered for the
// process, for every Source, refreshes and revocations included.
func TestAuthStyleDetection(t *testing.T) {
	for _, c := range []struct {
		name      string
		method    oauthtest.ClientAuthMethod
		probeCost int // rejected requests before the style is known
	}{
		{"basic only", oauthtest.ClientSecretBasic, 0},
		{"post only", oauthtest.ClientSecretPost, 1},
		{"either", oauthtest.ClientAuthAny, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, memoryStore, oauthtest.WithClientAuthMethod(c.method), oauthtest.WithLimit(0, 0))
			if e.cfg.AuthStyle != oauth2.AuthStyleAutoDetect {
				t.Fatal("the test needs the zero AuthStyle")
			}
			// 20 logins at once: one detection for all of them.
			var wg sync.WaitGroup
			for i := range 20 {
				wg.Go(func() {
					u := "user" + string(rune('a'+i))
					src := e.source(t, &tokenstore.Token{UserName: u, GrantToken: e.srv.IssueGrant(u)})
					if _, err := src.Token(); err != nil {
						t.Errorf("login %s: %v", u, err)
					}
				})
			}
			wg.Wait()
			if e.srv.ClientAuthRejections() != c.probeCost || e.srv.Exchanges() != 20 {
				t.Fatalf("%d rejected requests, %d exchanges; want %d and 20", e.srv.ClientAuthRejections(), e.srv.Exchanges(), c.probeCost)
			}
			// Refresh and revoke use the remembered style.
			src := e.source(t, &tokenstore.Token{UserName: "usera"})
			e.clk.Advance(2 * time.Hour)
			if _, err := src.Token(); err != nil || e.srv.Refreshes() != 1 {
				t.Fatalf("refresh: %v (%d refreshes)", err, e.srv.Refreshes())
			}
			if err := src.Revoke(ctxT(t)); err != nil || e.srv.Revocations() != 1 {
				t.Fatalf("revoke: %v (%d revocations)", err, e.srv.Revocations())
			}
			if e.srv.ClientAuthRejections() != c.probeCost {
				t.Fatalf("%d rejected requests after detection", e.srv.ClientAuthRejections())
			}
		})
	}
}

// TestConfigFromOAuth2BasicOnly: a plain oauth2.Config (AuthStyle unset)
// against a client_secret_basic-only provider (ORY Hydra's default) works
// on the first Token call, with one request.
func TestConfigFromOAuth2BasicOnly(t *testing.T) {
	e := newEnv(t, memoryStore, oauthtest.WithClientAuthMethod(oauthtest.ClientSecretBasic))
	oc := &oauth2.Config{ClientID: e.srv.ClientID(), ClientSecret: e.srv.ClientSecret(),
		Endpoint: oauth2.Endpoint{TokenURL: e.srv.TokenURL}}
	e.cfg = tokensource.ConfigFromOAuth2(oc, e.srv.RevokeURL)
	src := e.source(t, &tokenstore.Token{UserName: "hydra", GrantToken: e.srv.IssueGrant("hydra")})
	if _, err := src.Token(); err != nil {
		t.Fatalf("first Token call: %v", err)
	}
	if e.srv.TokenRequests() != 1 {
		t.Fatalf("%d token requests, want 1", e.srv.TokenRequests())
	}
}

// TestExplicitAuthStyleMismatch: an explicit style the provider does not
// take fails with ErrInvalidClient and an error that names the other
// style; no second request.
func TestExplicitAuthStyleMismatch(t *testing.T) {
	for _, c := range []struct {
		style  oauth2.AuthStyle
		method oauthtest.ClientAuthMethod
		hint   string
	}{
		{oauth2.AuthStyleInParams, oauthtest.ClientSecretBasic, "oauth2.AuthStyleInHeader"},
		{oauth2.AuthStyleInHeader, oauthtest.ClientSecretPost, "oauth2.AuthStyleInParams"},
	} {
		e := newEnv(t, memoryStore, oauthtest.WithClientAuthMethod(c.method))
		e.cfg.AuthStyle = c.style
		src := e.source(t, &tokenstore.Token{UserName: "kai", GrantToken: e.srv.IssueGrant("kai")})
		_, err := src.Token()
		if !errors.Is(err, tokensource.ErrInvalidClient) || !strings.Contains(err.Error(), c.hint) {
			t.Fatalf("style %d: %v; want ErrInvalidClient naming %s", c.style, err, c.hint)
		}
		if strings.Contains(err.Error(), e.cfg.ClientSecret) {
			t.Fatal("the client secret is in the error")
		}
		if e.srv.TokenRequests() != 1 {
			t.Fatalf("%d token requests", e.srv.TokenRequests())
		}
	}
}

// TestAuthStyleWrongSecret: wrong credentials are rejected in both styles;
// the error says so, and nothing is remembered.
func TestAuthStyleWrongSecret(t *testing.T) {
	e := newEnv(t, memoryStore)
	e.cfg.ClientSecret = "wrong"
	src := e.source(t, &tokenstore.Token{UserName: "lou", GrantToken: e.srv.IssueGrant("lou")})
	_, err := src.Token()
	if !errors.Is(err, tokensource.ErrInvalidClient) || !strings.Contains(err.Error(), "client_secret_basic") ||
		!strings.Contains(err.Error(), "client_secret_post") || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("wrong secret: %v", err)
	}
	if e.srv.TokenRequests() != 2 {
		t.Fatalf("%d token requests, want 2 (both styles)", e.srv.TokenRequests())
	}
}
