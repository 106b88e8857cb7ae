package tokensource

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// maxAnswer bounds the size of an endpoint answer that is read.
const maxAnswer = 1 << 20

// DefaultLifetime is the access token lifetime assumed when a token
// answer states none: one hour, Zoho's.
const DefaultLifetime = time.Hour

// tokenAnswer is a successful token endpoint answer.
type tokenAnswer struct {
	accessToken  string
	refreshToken string // "" when the answer has none
	apiDomain    string
	lifetime     time.Duration // 0 when the answer states none
}

// client is what the endpoint calls need from a Source or Revoke.
type client struct {
	cfg  Config
	http *http.Client
}

func (c *client) httpClient(ctx context.Context) *http.Client {
	if c.http != nil {
		return c.http
	}
	if hc, ok := ctx.Value(oauth2.HTTPClient).(*http.Client); ok && hc != nil {
		return hc
	}
	return http.DefaultClient
}

// send posts form to endpoint with the client credentials in style.
func (c *client) send(ctx context.Context, endpoint string, form url.Values, clientID, clientSecret string, style oauth2.AuthStyle) (*answer, error) {
	form = cloneValues(form)
	if style != oauth2.AuthStyleInHeader {
		if clientID != "" {
			form.Set("client_id", clientID)
		}
		if clientSecret != "" {
			form.Set("client_secret", clientSecret)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if style == oauth2.AuthStyleInHeader {
		// RFC 6749 section 2.3.1: form-encode before Basic encoding.
		req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(clientSecret))
	}
	resp, err := c.httpClient(ctx).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("reading the answer: %w", err)
	}
	return &answer{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), body: body, style: style}, nil
}

// withStyleHint adds to an invalid_client error which client
// authentication style was used and what to try instead.
func withStyleHint(err error, a *answer) error {
	if errors.Is(err, ErrInvalidClient) && a.clientRejected() {
		return fmt.Errorf("%w (%s)", err, a.styleHint())
	}
	return err
}

// callToken posts a token request (grant_type and its parameters in
// form) and parses the answer. secrets are the values to keep out of
// error messages.
func (c *client) callToken(ctx context.Context, op string, form url.Values, clientID, clientSecret string, secrets ...string) (*tokenAnswer, error) {
	a, err := c.post(ctx, c.cfg.TokenURL, form, clientID, clientSecret)
	if err != nil {
		return nil, fmt.Errorf("tokensource: %s: token endpoint request failed: %w", op, err)
	}
	ta, err := parseTokenAnswer(op, a.status, a.ctype, a.body, append(secrets, clientSecret)...)
	if err != nil {
		return nil, withStyleHint(err, a)
	}
	return ta, nil
}

// parseTokenAnswer interprets a token endpoint answer the way Zoho's SDKs
// do, and RFC 6749's way too:
//   - an "error" field is an error whatever the status (Zoho answers
//     errors with HTTP 200);
//   - a non-2xx status is an error even without an "error" field;
//   - "access_token" is required;
//   - the lifetime is "expires_in_sec" seconds when that field is there
//     (Zoho's older answers, whose "expires_in" is then in
//     milliseconds), otherwise "expires_in" seconds; numbers and numeric
//     strings are accepted;
//   - "refresh_token" and "api_domain" are taken when present.
//
// JSON and form-encoded answers are understood.
func parseTokenAnswer(op string, status int, contentType string, body []byte, secrets ...string) (*tokenAnswer, error) {
	fields, ok := decodeFields(contentType, body)
	failed := status < 200 || status > 299
	if !ok {
		if failed {
			return nil, &ProviderError{Op: op, StatusCode: status, Description: http.StatusText(status)}
		}
		return nil, fmt.Errorf("tokensource: %s: the token endpoint answered HTTP %d with a body that is not JSON", op, status)
	}
	if code := str(fields["error"]); code != "" || failed {
		return nil, &ProviderError{Op: op, StatusCode: status, Code: code,
			Description: redactIn(str(fields["error_description"]), secrets...)}
	}
	a := &tokenAnswer{
		accessToken:  str(fields["access_token"]),
		refreshToken: str(fields["refresh_token"]),
		apiDomain:    str(fields["api_domain"]),
	}
	if a.accessToken == "" {
		return nil, fmt.Errorf("tokensource: %s: the token endpoint answer has no access_token", op)
	}
	a.lifetime = lifetimeOf(fields)
	return a, nil
}

// lifetimeOf returns the lifetime a token answer states, or 0.
func lifetimeOf(fields map[string]any) time.Duration {
	if sec, ok := number(fields["expires_in_sec"]); ok && sec > 0 {
		return time.Duration(sec * float64(time.Second))
	}
	n, ok := number(fields["expires_in"])
	if !ok || n <= 0 {
		return 0
	}
	if _, withSec := fields["expires_in_sec"]; withSec {
		// expires_in_sec unusable: expires_in is in milliseconds then.
		return time.Duration(n * float64(time.Millisecond))
	}
	return time.Duration(n * float64(time.Second))
}

// decodeFields decodes a JSON object or a form-encoded body.
func decodeFields(contentType string, body []byte) (map[string]any, bool) {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/x-www-form-urlencoded" || mt == "text/plain" {
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, false
		}
		out := make(map[string]any, len(vals))
		for k := range vals {
			out[k] = vals.Get(k)
		}
		return out, true
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var fields map[string]any
	if err := dec.Decode(&fields); err != nil || fields == nil {
		return nil, false
	}
	return fields, true
}

// str returns v as a string: strings as they are, numbers in decimal.
func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	}
	return ""
}

// number returns v as a number: JSON numbers and numeric strings.
func number(v any) (float64, bool) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = strings.TrimSpace(x)
	default:
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

// revoke posts token to the revoke endpoint (RFC 7009; Zoho's
// {accounts}/oauth/v2/token/revoke). Success is a 2xx answer without an
// "error" field and without "status":"failure".
func (c *client) revoke(ctx context.Context, token, hint, clientID, clientSecret string) error {
	if c.cfg.RevokeURL == "" {
		return ErrNoRevokeURL
	}
	form := url.Values{"token": {token}}
	if hint != "" {
		form.Set("token_type_hint", hint)
	}
	a, err := c.post(ctx, c.cfg.RevokeURL, form, clientID, clientSecret)
	if err != nil {
		return fmt.Errorf("tokensource: revoke: request failed: %w", err)
	}
	status := a.status
	fields, _ := decodeFields(a.ctype, a.body)
	code := str(fields["error"])
	st := strings.ToLower(str(fields["status"]))
	if code == "" && (st == "failure" || st == "error") {
		code = st
	}
	if code != "" || status < 200 || status > 299 {
		return withStyleHint(&ProviderError{Op: "revoke", StatusCode: status, Code: code,
			Description: redactIn(str(fields["error_description"]), token, clientSecret)}, a)
	}
	return nil
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v)+2)
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}
