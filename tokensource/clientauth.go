package tokensource

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
)

// What this process has learned about a client at a token endpoint: the
// client authentication style the provider accepted and the access token
// lifetime it last stated. Every Source, Pool and Revoke of the process
// shares it, as x/oauth2 shares its auth style cache per Config.

// endpointKey identifies a client at a token endpoint. The accepted
// style is a property of the client's registration (ORY Hydra's
// token_endpoint_auth_method is per client), hence the client ID.
type endpointKey struct{ tokenURL, clientID string }

type endpointInfo struct {
	// probe is held (a one-slot semaphore) while the style is detected,
	// so that concurrent first requests wait for one detection instead of
	// each sending a request in the wrong style.
	probe chan struct{}
	// style is the detected oauth2.AuthStyle, 0 until known.
	style atomic.Int32
	// lifetime is the access token lifetime of the last token answer,
	// in nanoseconds, 0 until one was seen.
	lifetime atomic.Int64
}

// maxEndpoints bounds the table; past it, new keys are served by
// unshared entries (detection then happens per Source).
const maxEndpoints = 1024

var endpoints = struct {
	mu sync.Mutex
	m  map[endpointKey]*endpointInfo
}{m: map[endpointKey]*endpointInfo{}}

// endpointOf returns the shared entry for a token URL and client ID.
func endpointOf(tokenURL, clientID string) *endpointInfo {
	k := endpointKey{tokenURL, clientID}
	endpoints.mu.Lock()
	defer endpoints.mu.Unlock()
	if e := endpoints.m[k]; e != nil {
		return e
	}
	e := &endpointInfo{probe: make(chan struct{}, 1)}
	if len(endpoints.m) < maxEndpoints {
		endpoints.m[k] = e
	}
	return e
}

// knownLifetime returns the lifetime last stated for this endpoint and
// client, or 0.
func (e *endpointInfo) knownLifetime() time.Duration { return time.Duration(e.lifetime.Load()) }

func (e *endpointInfo) setLifetime(d time.Duration) {
	if d > 0 {
		e.lifetime.Store(int64(d))
	}
}

// answer is a raw endpoint answer.
type answer struct {
	status int
	ctype  string
	body   []byte
	// style is the style the credentials went in.
	style oauth2.AuthStyle
	// explicit: the style is Config.AuthStyle's, not a detected one.
	explicit bool
	// probed: both styles were tried and both were rejected.
	probed bool
}

// post sends form to endpoint with the client credentials in the
// configured style, detecting it when Config.AuthStyle is
// AuthStyleAutoDetect (see Config.AuthStyle).
func (c *client) post(ctx context.Context, endpoint string, form url.Values, clientID, clientSecret string) (*answer, error) {
	if c.cfg.AuthStyle != oauth2.AuthStyleAutoDetect {
		a, err := c.send(ctx, endpoint, form, clientID, clientSecret, c.cfg.AuthStyle)
		if a != nil {
			a.explicit = true
		}
		return a, err
	}
	info := endpointOf(c.cfg.TokenURL, clientID)
	if st := oauth2.AuthStyle(info.style.Load()); st != oauth2.AuthStyleAutoDetect {
		return c.send(ctx, endpoint, form, clientID, clientSecret, st)
	}
	select {
	case info.probe <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-info.probe }()
	if st := oauth2.AuthStyle(info.style.Load()); st != oauth2.AuthStyleAutoDetect {
		return c.send(ctx, endpoint, form, clientID, clientSecret, st) // detected while we waited
	}
	// HTTP Basic first (RFC 6749 section 2.3.1: every server must take
	// it), then the form.
	var last *answer
	for _, st := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
		a, err := c.send(ctx, endpoint, form, clientID, clientSecret, st)
		if err != nil {
			return nil, err
		}
		if !a.clientRejected() {
			info.style.Store(int32(st))
			return a, nil
		}
		last = a
	}
	last.probed = true // both rejected: the credentials are wrong; detect again next time
	return last, nil
}

// clientRejected reports whether an answer rejects the client
// authentication: "invalid_client" (RFC 6749 section 5.2), or HTTP 401
// without another error code.
func (a *answer) clientRejected() bool {
	fields, _ := decodeFields(a.ctype, a.body)
	code := strings.ToLower(strings.TrimSpace(str(fields["error"])))
	return code == "invalid_client" || (a.status == http.StatusUnauthorized && code == "")
}

// styleHint explains an invalid_client answer in terms of the style(s)
// sent, for the error message.
func (a *answer) styleHint() string {
	switch {
	case a.probed:
		return "the credentials were rejected both with HTTP Basic (client_secret_basic) and in the form (client_secret_post): check the client ID and secret"
	case !a.explicit:
		return "the credentials went in the style this process detected for the client: check the client ID and secret"
	case a.style == oauth2.AuthStyleInHeader:
		return "the credentials went with HTTP Basic (Config.AuthStyle = oauth2.AuthStyleInHeader, client_secret_basic); if the client is registered for client_secret_post, use oauth2.AuthStyleInParams or oauth2.AuthStyleAutoDetect"
	default:
		return "the credentials went in the form (Config.AuthStyle = oauth2.AuthStyleInParams, client_secret_post); if the client is registered for client_secret_basic, use oauth2.AuthStyleInHeader or oauth2.AuthStyleAutoDetect"
	}
}
