package tokensource

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/oauth2"

	"github.com/cloudtokens/cloudtokens/observe"
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
	//
	//   - oauth2.AuthStyleAutoDetect, the zero value (and what a plain
	//     oauth2.Config has): the first token or revoke request of the
	//     process for this TokenURL and client ID sends them with HTTP
	//     Basic (client_secret_basic, which RFC 6749 section 2.3.1 requires
	//     every server to accept). If the provider rejects that as
	//     "invalid_client" (or with HTTP 401), the same request is sent
	//     once more with the credentials in the form (client_secret_post).
	//     The style the provider accepted is remembered for the process,
	//     as x/oauth2 does, so detection costs at most one extra request
	//     per process and client, and no backoff. Only a client
	//     authentication failure triggers the second try, never an
	//     answer about the grant, so a refresh token is never sent twice.
	//   - oauth2.AuthStyleInHeader: HTTP Basic only.
	//   - oauth2.AuthStyleInParams: form fields only. Zoho documents this
	//     style; set it for Zoho to save the detection request.
	//
	// With an explicit style, an invalid_client answer names the other
	// style in its error.
	AuthStyle oauth2.AuthStyle
}

// validate checks the fields New and NewPool need.
func (c Config) validate() error {
	if c.TokenURL == "" {
		return fmt.Errorf("%w: Config.TokenURL is empty", ErrInvalidConfig)
	}
	if u, err := url.Parse(c.TokenURL); err != nil || u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("%w: Config.TokenURL is not an absolute URL", ErrInvalidConfig)
	}
	if c.RevokeURL != "" {
		if u, err := url.Parse(c.RevokeURL); err != nil || u.Scheme == "" || u.Host == "" {
			return fmt.Errorf("%w: Config.RevokeURL is not an absolute URL", ErrInvalidConfig)
		}
	}
	switch c.AuthStyle {
	case oauth2.AuthStyleAutoDetect, oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams:
	default:
		return fmt.Errorf("%w: unknown Config.AuthStyle %d", ErrInvalidConfig, c.AuthStyle)
	}
	return nil
}

// ConfigFromOAuth2 returns the Config of an [oauth2.Config] (its
// Endpoint.TokenURL, Endpoint.AuthStyle, client ID and secret and
// redirect URL) with the provider's revoke endpoint, which oauth2.Config
// lacks. An oauth2.Config without an AuthStyle detects it, as in x/oauth2
// (see Config.AuthStyle).
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
	// DefaultStaleReadWait: how long a Source re-reads a store that
	// returns a superseded refresh token before giving up with
	// ErrStaleRead (GCP Secret Manager documents alias reads that lag;
	// the project's staleness harness lags 2 s).
	DefaultStaleReadWait = 10 * time.Second
	// DefaultPoolSize: how many Sources a Pool keeps. A full Pool of
	// 1024 holds about 1.5 MiB (BenchmarkPoolMemory: ~1.5 KiB per
	// Source), small next to a 128 MiB Lambda function, while covering
	// the users one execution environment or Cloud Run instance serves
	// in a token lifetime (an hour) at thousands of invocations a minute
	// spread over a fleet; a dropped Source costs one store read.
	DefaultPoolSize = 1024
)

// Option configures a [Source], a [Pool] (which passes its options to
// every Source it makes) and [Revoke]. An Option returns an error for a
// bad value; [New], [NewPool] and [Revoke] then fail with an error
// wrapping [ErrInvalidConfig]. A nil Option is such an error too.
type Option func(*options) error

type options struct {
	margin                  time.Duration
	http                    *http.Client
	leaseTTL                time.Duration
	now                     func() time.Time
	logger                  *slog.Logger
	logUserNames            bool
	backoff, maxBackoff     time.Duration
	transient, maxTransient time.Duration
	pollInitial, pollMax    time.Duration
	staleWait               time.Duration
	tokenType               string
	saveTimeout             time.Duration
	disableLease            bool
	poolSize                int
	observer                observe.Observer
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
		staleWait:    DefaultStaleReadWait,
		tokenType:    "Bearer",
		saveTimeout:  30 * time.Second,
		poolSize:     DefaultPoolSize,
	}
}

// applyOptions returns the defaults with opts applied, or an error
// wrapping ErrInvalidConfig for the first nil or invalid option.
func applyOptions(opts []Option) (options, error) {
	o := defaultOptions()
	for i, opt := range opts {
		if opt == nil {
			return o, fmt.Errorf("%w: option %d is nil", ErrInvalidConfig, i)
		}
		if err := opt(&o); err != nil {
			return o, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	return o, nil
}

// WithRefreshMargin refreshes a token when less than d of validity is
// left (default [DefaultRefreshMargin], 5 s). A negative d is an error.
// A margin of half the token's lifetime or more would refresh the token
// at least twice per lifetime (a 5 s margin on a 3 s token: on every
// call); the Source then uses a tenth of the lifetime instead and logs a
// warning once. The lifetime is the one the provider stated in this
// process's last answer for the same token URL and client. The Source
// that owns a token's lease refreshes earlier, in its window (see "The
// owner's refresh" in the package documentation).
func WithRefreshMargin(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return fmt.Errorf("WithRefreshMargin(%s): negative", d)
		}
		o.margin = d
		return nil
	}
}

// WithHTTPClient sets the HTTP client for the token and revoke endpoints
// (default: the *http.Client in the context under [oauth2.HTTPClient],
// else [http.DefaultClient]). A nil client is an error.
func WithHTTPClient(c *http.Client) Option {
	return func(o *options) error {
		if c == nil {
			return errors.New("WithHTTPClient(nil)")
		}
		o.http = c
		return nil
	}
}

// WithLeaseTTL sets how long the refresh lease lasts (default
// [DefaultLeaseTTL], 30 s): the longest a crashed process can make the
// others wait. It should exceed the time a refresh takes. It must be
// positive.
func WithLeaseTTL(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("WithLeaseTTL(%s): not positive", d)
		}
		o.leaseTTL = d
		return nil
	}
}

// WithLeasePoll sets how often a process that waits for another one's
// refresh re-reads the store: first after initial, then doubling up to
// max (defaults 20 ms and 500 ms, with jitter). Every poll costs a store
// read and a lease attempt. initial must be positive and max at least
// initial. The same schedule paces the re-reads after a stale read (see
// [WithStaleReadWait]).
func WithLeasePoll(initial, max time.Duration) Option {
	return func(o *options) error {
		if initial <= 0 || max < initial {
			return fmt.Errorf("WithLeasePoll(%s, %s): initial must be positive and max at least initial", initial, max)
		}
		o.pollInitial, o.pollMax = initial, max
		return nil
	}
}

// WithStaleReadWait sets how long a Source keeps re-reading a store that
// answers with a refresh token the Source has already seen replaced
// (default [DefaultStaleReadWait], 10 s) before it fails with
// [ErrStaleRead]. It never refreshes with such a token. d must be
// positive.
func WithStaleReadWait(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("WithStaleReadWait(%s): not positive", d)
		}
		o.staleWait = d
		return nil
	}
}

// WithoutLease makes the Source ignore the store's [tokenstore.Leaser]
// and use the best-effort protocol described in the package
// documentation.
func WithoutLease() Option {
	return func(o *options) error {
		o.disableLease = true
		return nil
	}
}

// WithClock sets the clock that decides token expiry and backoff (default
// [time.Now]). It also times the lease a save gives the Source ("The
// owner's refresh" in the package documentation), which the store judges
// by its own clock: give the store the same one
// ([tokenstore.NewMemoryStoreWithClock], casstore's Options.Clock).
// Waiting (lease polls) uses real time. A nil clock is an error.
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return errors.New("WithClock(nil)")
		}
		o.now = now
		return nil
	}
}

// WithLogger sets the logger (default [slog.Default]). The Source logs
// exchanges and refreshes at Debug and failed token requests at Warn,
// with the record ID, never a token value, and the user name only with
// [WithLogUserNames]. A nil logger is an error.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("WithLogger(nil)")
		}
		o.logger = l
		return nil
	}
}

// WithLogUserNames adds the user name ("user_name") to log records (off
// by default: user names are often e-mail addresses, personal data that
// log pipelines should not collect; records carry the record ID, "id",
// which the store maps back to the user).
func WithLogUserNames(on bool) Option {
	return func(o *options) error {
		o.logUserNames = on
		return nil
	}
}

// WithBackoff sets the backoff after a token request the provider
// refused ([ErrRefreshRevoked], [ErrAccessDenied], [ErrInvalidClient]):
// the n-th consecutive failure blocks further requests for
// min(initial*2^(n-1), max). Defaults [DefaultBackoff] and
// [DefaultMaxBackoff] (1 minute, 1 hour). initial must be positive and
// max at least initial.
func WithBackoff(initial, max time.Duration) Option {
	return func(o *options) error {
		return setBackoff("WithBackoff", &o.backoff, &o.maxBackoff, initial, max)
	}
}

// WithTransientBackoff sets the backoff after other failed token requests
// (network errors, HTTP 5xx, malformed answers), in the same way.
// Defaults [DefaultTransientBackoff] and [DefaultMaxTransientBackoff]
// (1 s, 1 minute).
func WithTransientBackoff(initial, max time.Duration) Option {
	return func(o *options) error {
		return setBackoff("WithTransientBackoff", &o.transient, &o.maxTransient, initial, max)
	}
}

// setBackoff validates and sets a backoff pair.
func setBackoff(name string, initial, max *time.Duration, newInitial, newMax time.Duration) error {
	if newInitial <= 0 || newMax < newInitial {
		return fmt.Errorf("%s(%s, %s): initial must be positive and max at least initial", name, newInitial, newMax)
	}
	*initial, *max = newInitial, newMax
	return nil
}

// WithTokenType sets the TokenType of the returned oauth2.Tokens, which
// [oauth2.Transport] puts in the Authorization header (default "Bearer",
// what token answers state; Zoho's API documentation shows
// "Zoho-oauthtoken"). An empty type is an error.
func WithTokenType(typ string) Option {
	return func(o *options) error {
		if typ == "" {
			return errors.New(`WithTokenType(""): empty`)
		}
		o.tokenType = typ
		return nil
	}
}

// WithObserver reports the Source's refreshes, grant code exchanges,
// token requests, lease waits and takeovers and backoffs, and a Pool's
// hits and misses, to o (see package
// [github.com/cloudtokens/cloudtokens/observe]; the module
// github.com/cloudtokens/cloudtokens/otel implements it with
// OpenTelemetry). Give the store the same Observer: the store operations
// a refresh makes then nest in it. Operations carry record IDs, never
// token values or user names. A nil o is an error.
func WithObserver(o observe.Observer) Option {
	return func(opts *options) error {
		if o == nil {
			return errors.New("WithObserver(nil)")
		}
		opts.observer = o
		return nil
	}
}

// WithPoolSize bounds the number of Sources a [Pool] keeps (default
// [DefaultPoolSize], 1024); the least recently used one is dropped first.
// n must be positive. [New] ignores it.
func WithPoolSize(n int) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("WithPoolSize(%d): not positive", n)
		}
		o.poolSize = n
		return nil
	}
}
