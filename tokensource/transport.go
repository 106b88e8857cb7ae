package tokensource

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"golang.org/x/oauth2"
)

// Transport is an http.RoundTripper that authorizes requests with the
// Source's token, like oauth2.Transport, and in addition retries once
// when the API rejects a token that looked valid: on an HTTP 401 whose
// JSON body has Zoho's "code":"INVALID_OAUTHTOKEN" (or "INVALID_TOKEN"),
// or whose
// WWW-Authenticate header says error="invalid_token" (RFC 6750), it
// calls Source.RefreshRejected, which refreshes once across goroutines
// and processes, and sends the request again with the new token. A
// request whose body cannot be replayed (a Body without GetBody) is not
// retried: the 401 is returned.
type Transport struct {
	// Source provides the tokens. Required.
	Source *Source
	// Base sends the requests (default http.DefaultTransport).
	Base http.RoundTripper
}

// Client returns an HTTP client whose requests carry the Source's token
// and are retried once on a rejected token (see Transport). Like
// oauth2.NewClient, it takes its base transport from the *http.Client in
// ctx under oauth2.HTTPClient, if any.
func (s *Source) Client(ctx context.Context) *http.Client {
	var base http.RoundTripper
	if hc, ok := ctx.Value(oauth2.HTTPClient).(*http.Client); ok && hc != nil {
		base = hc.Transport
	}
	return &http.Client{Transport: &Transport{Source: s, Base: base}}
}

func (t *Transport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}

// maxErrorBody bounds how much of a 401 body is inspected.
const maxErrorBody = 64 << 10

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	tok, err := t.Source.TokenContext(ctx)
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	r1 := req.Clone(ctx)
	tok.SetAuthHeader(r1)
	resp, err := t.base().RoundTrip(r1)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || !replayable {
		return resp, err
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if rerr != nil || !rejectsToken(resp.Header, body) {
		// Not a token rejection: hand the answer back intact.
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), resp.Body), resp.Body}
		return resp, nil
	}
	resp.Body.Close()
	tok2, err := t.Source.RefreshRejected(ctx, tok.AccessToken)
	if err != nil {
		return nil, err
	}
	r2 := req.Clone(ctx)
	if req.GetBody != nil && req.Body != nil && req.Body != http.NoBody {
		if r2.Body, err = req.GetBody(); err != nil {
			return nil, err
		}
	}
	tok2.SetAuthHeader(r2)
	return t.base().RoundTrip(r2)
}

// rejectsToken reports whether a 401 answer says the access token is
// invalid: Zoho's {"code":"INVALID_OAUTHTOKEN"} (or "INVALID_TOKEN", the
// CRM API's newer code) or RFC 6750's
// WWW-Authenticate: Bearer error="invalid_token".
func rejectsToken(h http.Header, body []byte) bool {
	for _, v := range h.Values("WWW-Authenticate") {
		if strings.Contains(v, `error="invalid_token"`) {
			return true
		}
	}
	var b struct {
		Code string `json:"code"`
	}
	return json.Unmarshal(body, &b) == nil && (b.Code == "INVALID_OAUTHTOKEN" || b.Code == "INVALID_TOKEN")
}
