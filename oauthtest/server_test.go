package oauthtest

import (
	"encoding/base64"
	"encoding/json"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore/casstoretest"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// fakeClock is a settable clock (one shared test clock: casstoretest.ManualClock).
type fakeClock = casstoretest.ManualClock

func post(t *testing.T, u string, form url.Values, header http.Header) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("decoding answer: %v", err)
	}
	return resp.StatusCode, body
}

func exchangeForm(s *Server, code string) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"client_id": {s.ClientID()}, "client_secret": {s.ClientSecret()}}
}

func refreshForm(s *Server, rt string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt},
		"client_id": {s.ClientID()}, "client_secret": {s.ClientSecret()}}
}

func TestExchangeRefreshAndCounts(t *testing.T) {
	s := Start(t)
	code := s.IssueGrant("alice")
	st, body := post(t, s.TokenURL, exchangeForm(s, code), nil)
	if st != 200 || body["access_token"] == nil || body["refresh_token"] == nil {
		t.Fatalf("exchange: %d %v", st, body)
	}
	if body["api_domain"] != s.URL || body["expires_in"] != float64(3600) || body["token_type"] != "Bearer" {
		t.Fatalf("exchange answer: %v", body)
	}
	if u, ok := s.AccessTokenUser(body["access_token"].(string)); !ok || u != "alice" {
		t.Fatalf("access token user = %q, %v", u, ok)
	}
	rt := body["refresh_token"].(string)

	// A grant code is single-use.
	if st, body := post(t, s.TokenURL, exchangeForm(s, code), nil); st != 200 || body["error"] != ErrInvalidCode {
		t.Fatalf("second exchange: %d %v", st, body)
	}
	// Refresh without rotation: no refresh_token in the answer.
	st, body = post(t, s.TokenURL, refreshForm(s, rt), nil)
	if st != 200 || body["access_token"] == nil || body["refresh_token"] != nil {
		t.Fatalf("refresh: %d %v", st, body)
	}
	if !s.RefreshTokenValid(rt) {
		t.Fatal("refresh token invalid after a refresh without rotation")
	}
	if s.Exchanges() != 1 || s.Refreshes() != 1 || s.TokenRequests() != 3 {
		t.Fatalf("counts: exchanges %d refreshes %d requests %d", s.Exchanges(), s.Refreshes(), s.TokenRequests())
	}
}

func TestBasicAuthClient(t *testing.T) {
	s := Start(t, WithClient("id with space", "sec:ret&"))
	code := s.IssueGrant("bob")
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}}
	h := http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString(
		[]byte(url.QueryEscape("id with space")+":"+url.QueryEscape("sec:ret&")))}}
	if st, body := post(t, s.TokenURL, form, h); st != 200 || body["access_token"] == nil {
		t.Fatalf("basic auth exchange: %d %v", st, body)
	}
	code = s.IssueGrant("bob")
	bad := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {"id with space"}, "client_secret": {"wrong"}}
	if st, body := post(t, s.TokenURL, bad, nil); st != 200 || body["error"] != ErrInvalidClient {
		t.Fatalf("wrong secret: %d %v", st, body)
	}
}

func TestClientAuthMethod(t *testing.T) {
	basicHeader := func(s *Server) http.Header {
		return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString(
			[]byte(url.QueryEscape(s.ClientID())+":"+url.QueryEscape(s.ClientSecret())))}}
	}
	for _, c := range []struct {
		name                 string
		method               ClientAuthMethod
		basicOK, postOK, any bool
	}{
		{"any", ClientAuthAny, true, true, true},
		{"basic", ClientSecretBasic, true, false, false},
		{"post", ClientSecretPost, false, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := Start(t, WithClientAuthMethod(c.method))
			// HTTP Basic.
			form := url.Values{"grant_type": {"authorization_code"}, "code": {s.IssueGrant("u")}}
			st, body := post(t, s.TokenURL, form, basicHeader(s))
			if got := st == 200 && body["access_token"] != nil; got != c.basicOK {
				t.Fatalf("basic: %d %v", st, body)
			}
			if !c.basicOK && (st != http.StatusUnauthorized || body["error"] != ErrInvalidClient) {
				t.Fatalf("basic rejected with %d %v, want 401 invalid_client", st, body)
			}
			// Form fields.
			st, body = post(t, s.TokenURL, exchangeForm(s, s.IssueGrant("u")), nil)
			if got := st == 200 && body["access_token"] != nil; got != c.postOK {
				t.Fatalf("post: %d %v", st, body)
			}
			if !c.postOK && (st != http.StatusUnauthorized || body["error"] != ErrInvalidClient) {
				t.Fatalf("post rejected with %d %v, want 401 invalid_client", st, body)
			}
			want := 0
			if !c.any {
				want = 1
			}
			if s.ClientAuthRejections() != want || s.Exchanges() != 2-want {
				t.Fatalf("rejections %d, exchanges %d", s.ClientAuthRejections(), s.Exchanges())
			}
		})
	}
}

func TestReuseDetection(t *testing.T) {
	for _, detect := range []bool{false, true} {
		s := Start(t, WithRotation(true), WithReuseDetection(detect))
		_, body := post(t, s.TokenURL, exchangeForm(s, s.IssueGrant("rita")), nil)
		rt1 := body["refresh_token"].(string)
		_, body = post(t, s.TokenURL, refreshForm(s, rt1), nil)
		rt2, at2 := body["refresh_token"].(string), body["access_token"].(string)
		// Another login of the same user is another chain.
		_, body = post(t, s.TokenURL, exchangeForm(s, s.IssueGrant("rita")), nil)
		other := body["refresh_token"].(string)
		if s.RefreshTokenReuses() != 0 {
			t.Fatalf("reuses %d before any reuse", s.RefreshTokenReuses())
		}
		if _, body := post(t, s.TokenURL, refreshForm(s, rt1), nil); body["error"] != ErrInvalidCode {
			t.Fatalf("reuse answered %v", body)
		}
		if s.RefreshTokenReuses() != 1 {
			t.Fatalf("reuses %d, want 1", s.RefreshTokenReuses())
		}
		_, atLive := s.AccessTokenUser(at2)
		if s.RefreshTokenValid(rt2) == detect || atLive == detect {
			t.Fatalf("detection %v: newest refresh token valid %v, its access token valid %v", detect, s.RefreshTokenValid(rt2), atLive)
		}
		if !s.RefreshTokenValid(other) {
			t.Fatal("the other login's chain was revoked too")
		}
	}
}

func TestRotation(t *testing.T) {
	s := Start(t, WithRotation(true))
	_, body := post(t, s.TokenURL, exchangeForm(s, s.IssueGrant("carol")), nil)
	rt1 := body["refresh_token"].(string)
	_, body = post(t, s.TokenURL, refreshForm(s, rt1), nil)
	rt2, _ := body["refresh_token"].(string)
	if rt2 == "" || rt2 == rt1 {
		t.Fatalf("rotation: new refresh token %q", rt2)
	}
	if s.RefreshTokenValid(rt1) || !s.RefreshTokenValid(rt2) {
		t.Fatal("old refresh token still valid, or new one invalid")
	}
	if _, body := post(t, s.TokenURL, refreshForm(s, rt1), nil); body["error"] != ErrInvalidCode {
		t.Fatalf("refresh with rotated-out token: %v", body)
	}
	if s.RefreshTokens("carol") != 1 {
		t.Fatalf("live refresh tokens = %d", s.RefreshTokens("carol"))
	}
}

func TestGenerationLimit(t *testing.T) {
	clk := casstoretest.NewManualClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	s := Start(t, WithClock(clk.Now), WithErrorStatus(http.StatusBadRequest))
	_, body := post(t, s.TokenURL, exchangeForm(s, s.IssueGrant("dave")), nil)
	rt := body["refresh_token"].(string)
	for i := 1; i < 10; i++ {
		if st, body := post(t, s.TokenURL, refreshForm(s, rt), nil); st != 200 || body["access_token"] == nil {
			t.Fatalf("refresh %d: %d %v", i, st, body)
		}
		clk.Advance(time.Second)
	}
	st, body := post(t, s.TokenURL, refreshForm(s, rt), nil)
	if st != http.StatusBadRequest || body["error"] != ErrAccessDenied || body["status"] != "failure" {
		t.Fatalf("11th generation: %d %v", st, body)
	}
	if s.Refreshes() != 9 || s.TokenRequests() != 11 {
		t.Fatalf("refreshes %d, requests %d", s.Refreshes(), s.TokenRequests())
	}
	clk.Advance(10 * time.Minute)
	if st, body := post(t, s.TokenURL, refreshForm(s, rt), nil); st != 200 || body["access_token"] == nil {
		t.Fatalf("after the window: %d %v", st, body)
	}
}

func TestGrantExpiresAndRedirect(t *testing.T) {
	clk := casstoretest.NewManualClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	s := Start(t, WithClock(clk.Now), WithRedirectURL("https://app.example/cb"))
	code := s.IssueGrant("erin")
	if _, body := post(t, s.TokenURL, exchangeForm(s, code), nil); body["error"] != ErrInvalidCode {
		t.Fatalf("exchange without redirect_uri: %v", body)
	}
	f := exchangeForm(s, code)
	f.Set("redirect_uri", "https://app.example/cb")
	clk.Advance(GrantLifetime)
	if _, body := post(t, s.TokenURL, f, nil); body["error"] != ErrInvalidCode {
		t.Fatalf("exchange of an expired grant: %v", body)
	}
	f.Set("code", s.IssueGrant("erin"))
	if _, body := post(t, s.TokenURL, f, nil); body["access_token"] == nil {
		t.Fatalf("exchange: %v", body)
	}
}

func TestExpiresStyles(t *testing.T) {
	for _, c := range []struct {
		style ExpiresStyle
		check func(map[string]any) bool
	}{
		{ExpiresInSeconds, func(b map[string]any) bool { return b["expires_in"] == float64(120) && b["expires_in_sec"] == nil }},
		{ExpiresInMillis, func(b map[string]any) bool {
			return b["expires_in"] == float64(120000) && b["expires_in_sec"] == float64(120)
		}},
		{ExpiresInString, func(b map[string]any) bool { return b["expires_in"] == "120" }},
	} {
		s := Start(t, WithExpiresStyle(c.style), WithLifetime(2*time.Minute), WithAPIDomain("https://www.zohoapis.eu"))
		_, body := post(t, s.TokenURL, exchangeForm(s, s.IssueGrant("f")), nil)
		if !c.check(body) || body["api_domain"] != "https://www.zohoapis.eu" {
			t.Errorf("style %d: %v", c.style, body)
		}
	}
}

func TestFailNextAndRevokeUser(t *testing.T) {
	s := Start(t)
	_, body := post(t, s.TokenURL, exchangeForm(s, s.IssueGrant("gus")), nil)
	rt := body["refresh_token"].(string)
	at := body["access_token"].(string)
	s.FailNext(2, ErrAccessDenied)
	for range 2 {
		if _, body := post(t, s.TokenURL, refreshForm(s, rt), nil); body["error"] != ErrAccessDenied {
			t.Fatalf("injected failure: %v", body)
		}
	}
	if _, body := post(t, s.TokenURL, refreshForm(s, rt), nil); body["access_token"] == nil {
		t.Fatalf("after injected failures: %v", body)
	}
	s.RevokeUser("gus")
	if _, ok := s.AccessTokenUser(at); ok {
		t.Fatal("access token live after RevokeUser")
	}
	if _, body := post(t, s.TokenURL, refreshForm(s, rt), nil); body["error"] != ErrInvalidCode {
		t.Fatalf("refresh after RevokeUser: %v", body)
	}
}

func TestRevokeAndAPI(t *testing.T) {
	clk := casstoretest.NewManualClock(time.Now())
	s := Start(t, WithClock(clk.Now))
	_, body := post(t, s.TokenURL, exchangeForm(s, s.IssueGrant("hal")), nil)
	rt, at := body["refresh_token"].(string), body["access_token"].(string)

	get := func(auth string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodGet, s.APIURL, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&b)
		return resp.StatusCode, b
	}
	if st, b := get("Bearer " + at); st != 200 || b["user"] != "hal" {
		t.Fatalf("API with token: %d %v", st, b)
	}
	if st, b := get("Zoho-oauthtoken " + at); st != 200 || b["user"] != "hal" {
		t.Fatalf("API with Zoho-oauthtoken: %d %v", st, b)
	}
	if st, b := get(""); st != 401 || b["code"] != InvalidOAuthTokenCode {
		t.Fatalf("API without token: %d %v", st, b)
	}
	clk.Advance(time.Hour)
	if st, _ := get("Bearer " + at); st != 401 {
		t.Fatalf("API with expired token: %d", st)
	}

	if st, b := post(t, s.RevokeURL, url.Values{"token": {rt}}, nil); st != 200 || b["status"] != "success" {
		t.Fatalf("revoke: %d %v", st, b)
	}
	if s.RefreshTokenValid(rt) || s.Revocations() != 1 || s.RevokeRequests() != 1 {
		t.Fatalf("after revoke: valid %v revocations %d", s.RefreshTokenValid(rt), s.Revocations())
	}
	// Revoking again is a success that revokes nothing.
	if st, _ := post(t, s.RevokeURL, url.Values{"token": {rt}}, nil); st != 200 || s.Revocations() != 1 || s.RevokeRequests() != 2 {
		t.Fatalf("second revoke: %d, %d", st, s.Revocations())
	}
	// The token may also come in the query string, as in Zoho's docs.
	_, body = post(t, s.TokenURL, exchangeForm(s, s.IssueGrant("hal")), nil)
	if st, _ := post(t, s.RevokeURL+"?token="+url.QueryEscape(body["refresh_token"].(string)), nil, nil); st != 200 || s.Revocations() != 2 {
		t.Fatalf("revoke by query: %d, %d", st, s.Revocations())
	}
}
