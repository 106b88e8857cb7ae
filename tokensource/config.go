package tokensource

import (
	"log/slog"
	"net/http"
	"time"

	"golang.org/x/oauth2"
)

// Config is the OAuth client configuration.
type Config struct {
	// TokenURL is the provider's token endpoint (Zoho:
	// https://accounts.zoho.com/oauth/v2/token, or the data center's
	// accounts server). Required.
	TokenURL string
	// RevokeURL is the provider's revoke endpoint (Zoho:
	// https://accounts.zoho.com/oauth/v2/token/revoke). Revoke needs it.
	RevokeURL string
	// ClientID and ClientSecret identify the OAuth client. They fill the
	// partial token's blank ClientID and ClientSecret.
	ClientID     string
	ClientSecret string
	// RedirectURL is the redirect URL registered for the client; it is
	// sent with the grant code exchange. It fills the partial token's
	// blank RedirectURL.
	RedirectURL string
	// AuthStyle says how the client credentials are sent:
	// oauth2.AuthStyleInHeader (HTTP Basic) or oauth2.AuthStyleInParams
	// (form fields, what Zoho expects). oauth2.AuthStyleAutoDetect, the
	// zero value, means AuthStyleInParams here: auto-detection repeats a
	// failed request in the other style, and every try counts against
	// the provider's token generation limit.
	AuthStyle oauth2.AuthStyle
}

// ConfigFromOAuth2 returns the Config of an oauth2.Config (its
// Endpoint.TokenURL, Endpoint.AuthStyle, client ID and secret and
// redirect URL) with the provider's revoke endpoint, which oauth2.Config
// lacks.
func ConfigFromOAuth2(c *oauth2.Config, revokeURL string) Config {
	return Config{
		TokenURL:     c.Endpoint.TokenURL,
		RevokeURL:    revokeURL,
		ClientID:     c.ClientID,
		ClientSecret: c.ClientSecret,
		RedirectURL:  c.RedirectURL,
		AuthStyle:    c.Endpoint.AuthStyle,
	}
}

// Defaults of the options.
const (
	// DefaultRefreshMargin: a token with less validity left is refreshed
	// (5 seconds, as in Zoho's SDKs).
	DefaultRefreshMargin = 5 * time.Second
	// DefaultLeaseTTL: how long a process may hold the refresh lease.
	DefaultLeaseTTL = 30 * time.Second
	// DefaultBackoff and DefaultMaxBackoff bound the wait after a token
	// request the provider refused (revoked refresh token or grant code,
	// rate limit, bad client credentials).
	DefaultBackoff    = time.Minute
	DefaultMaxBackoff = time.Hour
	// DefaultTransientBackoff and DefaultMaxTransientBackoff bound the
	// wait after any other failed token request (network error, HTTP 5xx,
	// malformed answer).
	DefaultTransientBackoff    = time.Second
	DefaultMaxTransientBackoff = time.Minute
)

// Option configures a Source (and Revoke, which uses the HTTP client).
type Option func(*options)

type options struct {
	margin                  time.Duration
	http                    *http.Client
	leaseTTL                time.Duration
	now                     func() time.Time
	logger                  *slog.Logger
	backoff, maxBackoff     time.Duration
	transient, maxTransient time.Duration
	pollInitial, pollMax    time.Duration
	tokenType               string
	saveTimeout             time.Duration
	disableLease            bool
}

func defaultOptions() options {
	return options{
		margin:       DefaultRefreshMargin,
		leaseTTL:     DefaultLeaseTTL,
		now:          time.Now,
		logger:       slog.Default(),
		backoff:      DefaultBackoff,
		maxBackoff:   DefaultMaxBackoff,
		transient:    DefaultTransientBackoff,
		maxTransient: DefaultMaxTransientBackoff,
		pollInitial:  20 * time.Millisecond,
		pollMax:      500 * time.Millisecond,
		tokenType:    "Bearer",
		saveTimeout:  30 * time.Second,
	}
}

// WithRefreshMargin refreshes a token when less than d of validity is
// left (default DefaultRefreshMargin, 5 s). A negative d is taken as 0.
func WithRefreshMargin(d time.Duration) Option {
	return func(o *options) { o.margin = max(d, 0) }
}

// WithHTTPClient sets the HTTP client for the token and revoke endpoints
// (default: the *http.Client in the context under oauth2.HTTPClient, else
// http.DefaultClient).
func WithHTTPClient(c *http.Client) Option {
	return func(o *options) { o.http = c }
}

// WithLeaseTTL sets how long the refresh lease lasts (default
// DefaultLeaseTTL, 30 s): the longest a crashed process can make the
// others wait. It should exceed the time a refresh takes.
func WithLeaseTTL(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.leaseTTL = d
		}
	}
}

// WithLeasePoll sets how often a process that waits for another one's
// refresh re-reads the store: first after initial, then doubling up to
// max (defaults 20 ms and 500 ms, with jitter). Every poll costs a store
// read and a lease attempt.
func WithLeasePoll(initial, max time.Duration) Option {
	return func(o *options) {
		if initial > 0 {
			o.pollInitial = initial
		}
		if max >= o.pollInitial {
			o.pollMax = max
		}
	}
}

// WithoutLease makes the Source ignore the store's tokenstore.Leaser and
// use the best-effort protocol described in the package documentation.
func WithoutLease() Option {
	return func(o *options) { o.disableLease = true }
}

// WithClock sets the clock that decides token expiry and backoff (default
// time.Now). Waiting (lease polls) uses real time.
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
	}
}

// WithLogger sets the logger (default slog.Default()). The Source logs
// exchanges and refreshes at Debug and failed token requests at Warn,
// with the token ID and user name, never a token value.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithBackoff sets the backoff after a token request the provider
// refused (ErrRefreshRevoked, ErrAccessDenied, ErrInvalidClient): the
// n-th consecutive failure blocks further requests for
// min(initial*2^(n-1), max). Defaults DefaultBackoff and
// DefaultMaxBackoff (1 minute, 1 hour).
func WithBackoff(initial, max time.Duration) Option {
	return func(o *options) { setBackoff(&o.backoff, &o.maxBackoff, initial, max) }
}

// WithTransientBackoff sets the backoff after other failed token requests
// (network errors, HTTP 5xx, malformed answers), in the same way.
// Defaults DefaultTransientBackoff and DefaultMaxTransientBackoff (1 s,
// 1 minute).
func WithTransientBackoff(initial, max time.Duration) Option {
	return func(o *options) { setBackoff(&o.transient, &o.maxTransient, initial, max) }
}

// setBackoff sets a backoff pair: initial if positive, then max if it is
// at least the initial backoff in effect.
func setBackoff(initial, max *time.Duration, newInitial, newMax time.Duration) {
	if newInitial > 0 {
		*initial = newInitial
	}
	if newMax >= *initial {
		*max = newMax
	}
}

// WithTokenType sets the TokenType of the returned oauth2.Tokens, which
// oauth2.Transport puts in the Authorization header (default "Bearer",
// what token answers state; Zoho's API documentation shows
// "Zoho-oauthtoken").
func WithTokenType(typ string) Option {
	return func(o *options) {
		if typ != "" {
			o.tokenType = typ
		}
	}
}
