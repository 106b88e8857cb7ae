package tokensource

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func TestParseTokenAnswer(t *testing.T) {
	const js = "application/json"
	for _, c := range []struct {
		name     string
		status   int
		ctype    string
		body     string
		lifetime time.Duration
		refresh  string
		domain   string
		want     error // nil: success
		code     string
	}{
		{name: "seconds", status: 200, ctype: js, body: `{"access_token":"a","expires_in":3600}`, lifetime: time.Hour},
		{name: "zoho legacy ms with sec", status: 200, ctype: js,
			body:     `{"access_token":"a","expires_in":3600000,"expires_in_sec":3600,"api_domain":"https://www.zohoapis.com","token_type":"Bearer"}`,
			lifetime: time.Hour, domain: "https://www.zohoapis.com"},
		{name: "sec only", status: 200, ctype: js, body: `{"access_token":"a","expires_in_sec":"120"}`, lifetime: 2 * time.Minute},
		{name: "ms with unusable sec", status: 200, ctype: js, body: `{"access_token":"a","expires_in":60000,"expires_in_sec":null}`, lifetime: time.Minute},
		{name: "string seconds", status: 200, ctype: js, body: `{"access_token":"a","expires_in":" 90 "}`, lifetime: 90 * time.Second},
		{name: "no lifetime", status: 200, ctype: js, body: `{"access_token":"a","refresh_token":"r"}`, refresh: "r"},
		{name: "form encoded", status: 200, ctype: "application/x-www-form-urlencoded",
			body: "access_token=a&expires_in=30&refresh_token=r", lifetime: 30 * time.Second, refresh: "r"},
		{name: "200 invalid_code", status: 200, ctype: js, body: `{"error":"invalid_code"}`, want: ErrRefreshRevoked, code: "invalid_code"},
		{name: "400 invalid_grant", status: 400, ctype: js, body: `{"error":"invalid_grant","error_description":"bad"}`, want: ErrRefreshRevoked, code: "invalid_grant"},
		{name: "200 Access Denied", status: 200, ctype: js,
			body: `{"error_description":"You have made too many requests continuously. Please try again after some time.","error":"Access Denied","status":"failure"}`,
			want: ErrAccessDenied, code: "Access Denied"},
		{name: "200 invalid_client", status: 200, ctype: js, body: `{"error":"invalid_client"}`, want: ErrInvalidClient, code: "invalid_client"},
		{name: "500 no body", status: 500, ctype: "text/html", body: `<html>oops</html>`, want: &ProviderError{}},
		{name: "500 json without error", status: 500, ctype: js, body: `{}`, want: &ProviderError{}},
		{name: "200 not json", status: 200, ctype: "text/html", body: `<html>`, want: errors.New("not JSON")},
		{name: "200 no access token", status: 200, ctype: js, body: `{"token_type":"Bearer"}`, want: errors.New("no access_token")},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, err := parseTokenAnswer("refresh", c.status, c.ctype, []byte(c.body))
			if c.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if a.accessToken != "a" || a.lifetime != c.lifetime || a.refreshToken != c.refresh || a.apiDomain != c.domain {
					t.Fatalf("answer %+v", a)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			var pe *ProviderError
			switch c.want.(type) {
			case *ProviderError:
				if !errors.As(err, &pe) || pe.StatusCode != c.status {
					t.Fatalf("want a ProviderError, got %v", err)
				}
			default:
				if c.code == "" {
					if errors.As(err, &pe) || !strings.Contains(err.Error(), c.want.Error()) {
						t.Fatalf("error %v", err)
					}
					return
				}
				if !errors.Is(err, c.want) || !errors.As(err, &pe) || pe.Code != c.code || pe.StatusCode != c.status {
					t.Fatalf("error %v, want %v with code %q", err, c.want, c.code)
				}
			}
		})
	}
}

func TestErrorDescriptionRedacted(t *testing.T) {
	_, err := parseTokenAnswer("refresh", 200, "application/json",
		[]byte(`{"error":"invalid_code","error_description":"refresh token 1000.secret-rt is unknown for client secret s3cr3t"}`),
		"1000.secret-rt", "s3cr3t")
	if err == nil || strings.Contains(err.Error(), "secret-rt") || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("secret in error: %v", err)
	}
	if !strings.Contains(err.Error(), "[redacted]") || !strings.Contains(err.Error(), "invalid_code") {
		t.Fatalf("error lost its content: %v", err)
	}
	long := strings.Repeat("x", 1000)
	_, err = parseTokenAnswer("refresh", 400, "application/json", []byte(`{"error":"e","error_description":"`+long+`"}`))
	if len(err.Error()) > 400 {
		t.Fatalf("description not truncated: %d bytes", len(err.Error()))
	}
}

// TestXOAuth2Parsing documents why the package parses token answers
// itself: x/oauth2 v0.37.0 turns an error in a 200 body into a
// RetrieveError (good), but reads Zoho's older millisecond expires_in as
// seconds, and its RetrieveError message quotes the whole answer body.
func TestXOAuth2Parsing(t *testing.T) {
	body := `{"access_token":"a","expires_in":3600000,"expires_in_sec":3600,"token_type":"Bearer"}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.FormValue("code") == "bad" {
			_, _ = w.Write([]byte(`{"error":"invalid_code","error_description":"code bad"}`))
			return
		}
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	oc := &oauth2.Config{ClientID: "c", ClientSecret: "s", Endpoint: oauth2.Endpoint{TokenURL: srv.URL, AuthStyle: oauth2.AuthStyleInParams}}

	tok, err := oc.Exchange(context.Background(), "good")
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(tok.Expiry); d < 900*time.Hour {
		t.Fatalf("x/oauth2 now reads expires_in_sec (expiry in %v): revisit the package doc", d)
	}
	a, err := parseTokenAnswer("exchange", 200, "application/json", []byte(body))
	if err != nil || a.lifetime != time.Hour {
		t.Fatalf("ours: %v %v", a, err)
	}

	_, err = oc.Exchange(context.Background(), "bad")
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_code" || re.Response.StatusCode != 200 {
		t.Fatalf("x/oauth2 on a 200 error body: %v", err)
	}
}
