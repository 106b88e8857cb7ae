// Package oauthtest is a local OAuth 2.0 token server for tests, modelled
// on Zoho's accounts server: a token endpoint (grant types
// authorization_code and refresh_token), a revoke endpoint and a small
// protected API endpoint, served over 127.0.0.1 by net/http/httptest so
// that child processes of a test can reach it too.
//
// It behaves the way the tokensource package has to cope with:
//
//   - errors come back in an HTTP 200 body, {"error":"invalid_code"}, as
//     Zoho does (WithErrorStatus changes the status);
//   - an unknown, used, expired or revoked grant code or refresh token is
//     "invalid_code";
//   - at most 10 token generations (grant exchanges and refreshes) per 10
//     minutes, after which the answer is Zoho's {"error":"Access
//     Denied",...} (WithLimit, WithClock);
//   - a refresh answer carries no refresh_token unless refresh tokens
//     rotate (WithRotation), in which case the old one stops working;
//   - expires_in in seconds, or Zoho's older form with expires_in in
//     milliseconds next to expires_in_sec (WithExpiresStyle);
//   - api_domain in every token answer (WithAPIDomain);
//   - client credentials accepted with HTTP Basic or in the form, or only
//     one of them (WithClientAuthMethod: ORY Hydra's default client takes
//     client_secret_basic only, Zoho documents client_secret_post);
//   - with WithReuseDetection, reusing a rotated-out refresh token
//     revokes the whole token chain of that login, the tokens issued
//     after it included, as ORY Hydra does.
//
// It counts what happened (Exchanges, Refreshes, TokenRequests,
// Revocations, RefreshTokenReuses, ClientAuthRejections), and hands out
// grant codes with IssueGrant. It uses only the standard library.
package oauthtest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Zoho-style error codes the server returns in the "error" field.
const (
	// ErrInvalidCode: the grant code or refresh token is unknown, used,
	// expired or revoked (Zoho uses this code for both).
	ErrInvalidCode = "invalid_code"
	// ErrInvalidClient: wrong client ID or secret.
	ErrInvalidClient = "invalid_client"
	// ErrAccessDenied: the token generation limit is reached.
	ErrAccessDenied = "Access Denied"
	// ErrInvalidRequest: a missing parameter or an unsupported grant type.
	ErrInvalidRequest = "invalid_request"
)

// InvalidOAuthTokenCode is the "code" of the API endpoint's 401 answer
// to a missing, unknown or expired access token, as Zoho's APIs send it.
const InvalidOAuthTokenCode = "INVALID_OAUTHTOKEN"

// Paths of the endpoints, relative to Server.URL.
const (
	TokenPath  = "/oauth/v2/token"
	RevokePath = "/oauth/v2/token/revoke"
	APIPath    = "/api/v1/me"
)

// ExpiresStyle selects how a token answer states the access token's
// lifetime.
type ExpiresStyle int

const (
	// ExpiresInSeconds: "expires_in": 3600 (RFC 6749, Zoho today).
	ExpiresInSeconds ExpiresStyle = iota
	// ExpiresInMillis: Zoho's older answers, "expires_in": 3600000 in
	// milliseconds together with "expires_in_sec": 3600.
	ExpiresInMillis
	// ExpiresInString: "expires_in": "3600", a JSON string, as some
	// providers send it.
	ExpiresInString
)

// ClientAuthMethod selects how the token and revoke endpoints accept the
// client credentials (OpenID Connect's token_endpoint_auth_method).
type ClientAuthMethod int

const (
	// ClientAuthAny accepts HTTP Basic or the form fields (the default).
	ClientAuthAny ClientAuthMethod = iota
	// ClientSecretBasic accepts HTTP Basic only (RFC 6749 section 2.3.1;
	// ORY Hydra's default for a new client). Credentials in the form are
	// answered with HTTP 401 "invalid_client".
	ClientSecretBasic
	// ClientSecretPost accepts client_id and client_secret form fields
	// only. HTTP Basic is answered with HTTP 401 "invalid_client".
	ClientSecretPost
)

// GrantLifetime is how long a grant code from IssueGrant can be exchanged:
// three minutes, Zoho's default.
const GrantLifetime = 3 * time.Minute

// Option configures a Server.
type Option func(*Server)

// WithClient sets the client ID and secret the token endpoint accepts
// (default "oauthtest-client" and "oauthtest-secret").
func WithClient(id, secret string) Option {
	return func(s *Server) { s.clientID, s.clientSecret = id, secret }
}

// WithRedirectURL makes the authorization_code exchange require this
// redirect_uri (default: any, including none).
func WithRedirectURL(u string) Option {
	return func(s *Server) { s.redirectURL = u }
}

// WithRotation makes every refresh issue a new refresh token and
// invalidate the one used, and return it in the answer.
func WithRotation(on bool) Option {
	return func(s *Server) { s.rotate = on }
}

// WithLifetime sets the access token lifetime (default one hour). It is
// stated in whole seconds, at least 1.
func WithLifetime(d time.Duration) Option {
	return func(s *Server) { s.lifetime = d }
}

// WithExpiresStyle selects how answers state the lifetime (default
// ExpiresInSeconds).
func WithExpiresStyle(st ExpiresStyle) Option {
	return func(s *Server) { s.style = st }
}

// WithLimit allows n token generations per window; n <= 0 removes the
// limit (default 10 per 10 minutes, Zoho's limit).
func WithLimit(n int, window time.Duration) Option {
	return func(s *Server) { s.limit, s.window = n, window }
}

// WithClock sets the server's clock, used for grant code lifetimes,
// access token expiry and the generation limit (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(s *Server) { s.now = now }
}

// WithAPIDomain sets the api_domain of token answers (default the
// server's own URL, where the API endpoint is).
func WithAPIDomain(domain string) Option {
	return func(s *Server) { s.apiDomain = domain }
}

// WithErrorStatus sets the HTTP status of token endpoint error answers
// (default 200, as Zoho).
func WithErrorStatus(code int) Option {
	return func(s *Server) { s.errStatus = code }
}

// WithClientAuthMethod restricts how the client credentials may be sent
// (default ClientAuthAny).
func WithClientAuthMethod(m ClientAuthMethod) Option {
	return func(s *Server) { s.authMethod = m }
}

// WithReuseDetection makes a refresh with a rotated-out refresh token
// revoke every refresh and access token of that login's chain, the ones
// issued after it included, as ORY Hydra does (its answer is
// invalid_code, like any dead token). Reuses are counted with or without
// it (RefreshTokenReuses). It matters with WithRotation only.
func WithReuseDetection(on bool) Option {
	return func(s *Server) { s.reuseDetection = on }
}

// WithLatency delays every token endpoint answer by d, which widens race
// windows in concurrency tests.
func WithLatency(d time.Duration) Option {
	return func(s *Server) { s.latency = d }
}

// Server is a running token server. Its methods are safe for concurrent
// use.
type Server struct {
	// URL is the base URL, http://127.0.0.1:port.
	URL string
	// TokenURL is the token endpoint, URL + TokenPath.
	TokenURL string
	// RevokeURL is the revoke endpoint, URL + RevokePath.
	RevokeURL string
	// APIURL is the protected API endpoint, URL + APIPath. A GET with a
	// live access token ("Authorization: Bearer" or "Zoho-oauthtoken")
	// answers 200 {"user":"<name>"}; otherwise 401 with
	// {"code":"INVALID_OAUTHTOKEN",...}.
	APIURL string

	srv *httptest.Server

	clientID, clientSecret, redirectURL string
	rotate                              bool
	lifetime                            time.Duration
	style                               ExpiresStyle
	limit                               int
	window                              time.Duration
	now                                 func() time.Time
	apiDomain                           string
	errStatus                           int
	latency                             time.Duration
	authMethod                          ClientAuthMethod
	reuseDetection                      bool

	mu          sync.Mutex
	grants      map[string]*grant
	refresh     map[string]string      // live refresh token -> user
	family      map[string]string      // refresh token (live or spent) -> its login's chain
	spent       map[string]bool        // rotated-out refresh tokens
	access      map[string]*accessInfo // live access token -> info
	generations []time.Time
	failNext    []string
	counts      struct {
		exchanges, refreshes, tokenRequests, revocations, revokeRequests int
		reuses, clientAuthRejections                                     int
	}
}

type grant struct {
	user   string
	issued time.Time
	used   bool
}

type accessInfo struct {
	user    string
	refresh string
	expiry  time.Time
}

// NewServer starts a server; Close stops it.
func NewServer(opts ...Option) *Server {
	s := &Server{
		clientID:     "oauthtest-client",
		clientSecret: "oauthtest-secret",
		lifetime:     time.Hour,
		limit:        10,
		window:       10 * time.Minute,
		now:          time.Now,
		errStatus:    http.StatusOK,
		grants:       map[string]*grant{},
		refresh:      map[string]string{},
		family:       map[string]string{},
		spent:        map[string]bool{},
		access:       map[string]*accessInfo{},
	}
	for _, o := range opts {
		o(s)
	}
	if s.lifetime < time.Second {
		s.lifetime = time.Second
	}
	mux := http.NewServeMux()
	mux.HandleFunc(TokenPath, s.handleToken)
	mux.HandleFunc(RevokePath, s.handleRevoke)
	mux.HandleFunc(APIPath, s.handleAPI)
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL
	s.TokenURL = s.URL + TokenPath
	s.RevokeURL = s.URL + RevokePath
	s.APIURL = s.URL + APIPath
	if s.apiDomain == "" {
		s.apiDomain = s.URL
	}
	return s
}

// Start starts a server that is closed when the test ends.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	s := NewServer(opts...)
	tb.Cleanup(s.Close)
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// ClientID returns the client ID the server accepts.
func (s *Server) ClientID() string { return s.clientID }

// ClientSecret returns the client secret the server accepts.
func (s *Server) ClientSecret() string { return s.clientSecret }

// APIDomain returns the api_domain the server puts in token answers.
func (s *Server) APIDomain() string { return s.apiDomain }

// Lifetime returns the access token lifetime.
func (s *Server) Lifetime() time.Duration { return s.lifetime.Truncate(time.Second) }

// IssueGrant returns a new one-time grant code (authorization code) for
// user, valid for GrantLifetime: what the provider's consent page would
// hand the app after the user logs in.
func (s *Server) IssueGrant(user string) string {
	code := "1000." + randomHex(16) + "." + randomHex(16)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.grants[code] = &grant{user: user, issued: s.now()}
	return code
}

// Exchanges returns the number of successful grant code exchanges.
func (s *Server) Exchanges() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts.exchanges
}

// Refreshes returns the number of successful refreshes.
func (s *Server) Refreshes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts.refreshes
}

// TokenRequests returns the number of requests to the token endpoint,
// failed ones included.
func (s *Server) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts.tokenRequests
}

// Revocations returns the number of revoke requests that revoked a live
// token.
func (s *Server) Revocations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts.revocations
}

// RevokeRequests returns the number of requests to the revoke endpoint.
func (s *Server) RevokeRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts.revokeRequests
}

// RefreshTokenReuses returns the number of refresh requests that sent a
// rotated-out refresh token (with WithReuseDetection, each revoked its
// token chain). A client that never reuses a refresh token keeps it at 0.
func (s *Server) RefreshTokenReuses() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts.reuses
}

// ClientAuthRejections returns the number of token and revoke requests
// rejected because the client credentials came in a style that
// WithClientAuthMethod does not allow.
func (s *Server) ClientAuthRejections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts.clientAuthRejections
}

// FailNext makes the next n token endpoint requests fail with the error
// code (for example ErrInvalidCode or ErrAccessDenied), in a body with
// the WithErrorStatus status, before any other check. They count as
// token requests, not as generations.
func (s *Server) FailNext(n int, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failNext = append(s.failNext, code)
	}
}

// RevokeUser invalidates every refresh and access token of user, as when
// the user removes the app's access: the next refresh gets invalid_code.
func (s *Server) RevokeUser(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for rt, u := range s.refresh {
		if u == user {
			delete(s.refresh, rt)
		}
	}
	for at, info := range s.access {
		if info.user == user {
			delete(s.access, at)
		}
	}
}

// InvalidateAccessTokens makes every access token issued so far unusable
// at the API endpoint before its expiry (Zoho invalidates the oldest when
// more than 15 are active): the API answers 401 INVALID_OAUTHTOKEN.
// Refresh tokens stay valid.
func (s *Server) InvalidateAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.access)
}

// AccessTokenUser returns the user of a live, unexpired access token.
func (s *Server) AccessTokenUser(accessToken string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	info, ok := s.access[accessToken]
	if !ok || !s.now().Before(info.expiry) {
		return "", false
	}
	return info.user, true
}

// RefreshTokenValid reports whether a refresh token is live.
func (s *Server) RefreshTokenValid(refreshToken string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.refresh[refreshToken]
	return ok
}

// RefreshTokens returns the number of live refresh tokens of user.
func (s *Server) RefreshTokens(user string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, u := range s.refresh {
		if u == user {
			n++
		}
	}
	return n
}

// --- handlers ---

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	if s.latency > 0 {
		select {
		case <-time.After(s.latency):
		case <-r.Context().Done():
			return
		}
	}
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if err := r.ParseForm(); err != nil {
		s.countTokenRequest()
		s.writeError(w, ErrInvalidRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts.tokenRequests++
	if len(s.failNext) > 0 {
		code := s.failNext[0]
		s.failNext = s.failNext[1:]
		s.writeError(w, code)
		return
	}
	if !s.authMethodAllowedLocked(w, r) {
		return
	}
	id, secret := clientCredentials(r)
	if id != s.clientID || secret != s.clientSecret {
		s.writeError(w, ErrInvalidClient)
		return
	}
	now := s.now()
	switch r.Form.Get("grant_type") {
	case "authorization_code":
		g := s.grants[r.Form.Get("code")]
		if g == nil || g.used || now.Sub(g.issued) >= GrantLifetime ||
			(s.redirectURL != "" && r.Form.Get("redirect_uri") != s.redirectURL) {
			s.writeError(w, ErrInvalidCode)
			return
		}
		if !s.allowGenerationLocked(now) {
			s.writeError(w, ErrAccessDenied)
			return
		}
		g.used = true
		rt := "1000." + randomHex(16) + "." + randomHex(16)
		s.refresh[rt] = g.user
		s.family[rt] = randomHex(8)
		s.counts.exchanges++
		s.writeToken(w, s.newAccessLocked(g.user, rt, now), rt, now)
	case "refresh_token":
		rt := r.Form.Get("refresh_token")
		user, ok := s.refresh[rt]
		if !ok {
			if s.spent[rt] {
				s.counts.reuses++
				if s.reuseDetection {
					s.revokeChainLocked(s.family[rt])
				}
			}
			s.writeError(w, ErrInvalidCode)
			return
		}
		if !s.allowGenerationLocked(now) {
			s.writeError(w, ErrAccessDenied)
			return
		}
		newRT := ""
		if s.rotate {
			delete(s.refresh, rt)
			s.spent[rt] = true
			newRT = "1000." + randomHex(16) + "." + randomHex(16)
			s.refresh[newRT] = user
			s.family[newRT] = s.family[rt]
			rt = newRT
		}
		s.counts.refreshes++
		s.writeToken(w, s.newAccessLocked(user, rt, now), newRT, now)
	default:
		s.writeError(w, ErrInvalidRequest)
	}
}

// authMethodAllowedLocked answers 401 invalid_client and returns false
// when the request's client credentials come in a style the server does
// not accept.
func (s *Server) authMethodAllowedLocked(w http.ResponseWriter, r *http.Request) bool {
	_, _, basic := r.BasicAuth()
	inForm := r.PostForm.Get("client_secret") != "" || (!basic && r.PostForm.Get("client_id") != "")
	ok := true
	switch s.authMethod {
	case ClientSecretBasic:
		ok = basic && !inForm
	case ClientSecretPost:
		ok = !basic && inForm
	}
	if ok {
		return true
	}
	s.counts.clientAuthRejections++
	if s.authMethod == ClientSecretBasic {
		w.Header().Set("WWW-Authenticate", `Basic realm="oauthtest"`)
	}
	writeJSON(w, http.StatusUnauthorized, map[string]any{
		"error":             ErrInvalidClient,
		"error_description": "Client authentication failed: the client is not registered for this token_endpoint_auth_method.",
	})
	return false
}

// revokeChainLocked revokes every refresh and access token of a login's
// chain.
func (s *Server) revokeChainLocked(fam string) {
	if fam == "" {
		return
	}
	for rt := range s.refresh {
		if s.family[rt] == fam {
			delete(s.refresh, rt)
		}
	}
	for at, info := range s.access {
		if s.family[info.refresh] == fam {
			delete(s.access, at)
		}
	}
}

func (s *Server) countTokenRequest() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts.tokenRequests++
}

// allowGenerationLocked applies the sliding-window generation limit and
// records a generation when it allows one.
func (s *Server) allowGenerationLocked(now time.Time) bool {
	if s.limit <= 0 {
		return true
	}
	kept := s.generations[:0]
	for _, g := range s.generations {
		if now.Sub(g) < s.window {
			kept = append(kept, g)
		}
	}
	s.generations = kept
	if len(s.generations) >= s.limit {
		return false
	}
	s.generations = append(s.generations, now)
	return true
}

func (s *Server) newAccessLocked(user, rt string, now time.Time) string {
	at := "1000." + randomHex(16) + "." + randomHex(16)
	s.access[at] = &accessInfo{user: user, refresh: rt, expiry: now.Add(s.Lifetime())}
	return at
}

func (s *Server) writeToken(w http.ResponseWriter, at, rt string, now time.Time) {
	secs := int64(s.Lifetime() / time.Second)
	body := map[string]any{
		"access_token": at,
		"token_type":   "Bearer",
		"api_domain":   s.apiDomain,
	}
	switch s.style {
	case ExpiresInMillis:
		body["expires_in"] = secs * 1000
		body["expires_in_sec"] = secs
	case ExpiresInString:
		body["expires_in"] = strconv.FormatInt(secs, 10)
	default:
		body["expires_in"] = secs
	}
	if rt != "" {
		body["refresh_token"] = rt
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) writeError(w http.ResponseWriter, code string) {
	body := map[string]any{"error": code}
	if code == ErrAccessDenied {
		body["error_description"] = "You have made too many requests continuously. Please try again after some time."
		body["status"] = "failure"
	}
	writeJSON(w, s.errStatus, body)
}

func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if err := r.ParseForm(); err != nil {
		writeJSON(w, s.errStatus, map[string]any{"error": ErrInvalidRequest})
		return
	}
	tok := r.Form.Get("token")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts.revokeRequests++
	if !s.authMethodAllowedLocked(w, r) {
		return
	}
	if tok == "" {
		writeJSON(w, s.errStatus, map[string]any{"error": ErrInvalidRequest})
		return
	}
	revoked := false
	if _, ok := s.refresh[tok]; ok {
		delete(s.refresh, tok)
		for at, info := range s.access {
			if info.refresh == tok {
				delete(s.access, at)
			}
		}
		revoked = true
	} else if _, ok := s.access[tok]; ok {
		delete(s.access, tok)
		revoked = true
	}
	if revoked {
		s.counts.revocations++
	}
	// RFC 7009: an unknown token is answered as a success too.
	writeJSON(w, http.StatusOK, map[string]any{"status": "success"})
}

func (s *Server) handleAPI(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	var tok string
	for _, prefix := range []string{"Bearer ", "Zoho-oauthtoken "} {
		if v, ok := strings.CutPrefix(auth, prefix); ok {
			tok = v
		}
	}
	user, ok := s.AccessTokenUser(tok)
	if !ok {
		writeJSON(w, http.StatusUnauthorized, map[string]any{
			"code": InvalidOAuthTokenCode, "details": map[string]any{},
			"message": "invalid oauth token", "status": "error",
		})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": user})
}

// clientCredentials takes the client ID and secret from HTTP Basic
// authentication (form-encoded, as RFC 6749 section 2.3.1 says) or from
// the client_id and client_secret parameters.
func clientCredentials(r *http.Request) (string, string) {
	if id, secret, ok := r.BasicAuth(); ok {
		uid, err1 := url.QueryUnescape(id)
		usecret, err2 := url.QueryUnescape(secret)
		if err1 == nil && err2 == nil {
			return uid, usecret
		}
		return id, secret
	}
	return r.Form.Get("client_id"), r.Form.Get("client_secret")
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("oauthtest: crypto/rand: " + err.Error())
	}
	return hex.EncodeToString(b)
}
