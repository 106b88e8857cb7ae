package tokensource

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// The sentinel errors of this package; test with errors.Is. Errors never
// contain token values or the client secret.
var (
	// ErrRefreshRevoked: the provider rejected the refresh token or the
	// grant code ("invalid_code", Zoho's answer, or "invalid_grant",
	// RFC 6749's): it was revoked, rotated out, used already or expired.
	// The user has to log in again (a new grant code). A *ProviderError
	// with such a code matches it.
	ErrRefreshRevoked = errors.New("tokensource: the provider rejected the refresh token or grant code; a new login is needed")
	// ErrAccessDenied: the provider refused to issue a token because of
	// its rate limit (Zoho answers "Access Denied" after 10 token
	// generations in 10 minutes, "access_denied" for too many grant
	// codes). A *ProviderError with such a code matches it.
	ErrAccessDenied = errors.New("tokensource: the provider denied the token request (rate limit)")
	// ErrInvalidClient: the provider rejected the client ID or secret
	// ("invalid_client", "unauthorized_client"). A *ProviderError with
	// such a code matches it.
	ErrInvalidClient = errors.New("tokensource: the provider rejected the client credentials")
	// ErrBackingOff: Token did not call the provider because an earlier
	// attempt failed and the backoff period has not passed. The error
	// also wraps that earlier failure, so errors.Is(err,
	// ErrRefreshRevoked) still holds.
	ErrBackingOff = errors.New("tokensource: backing off after a failed token request")
	// ErrNoToken: there is no stored token and the partial token has no
	// grant code to exchange, or the access token has expired and there
	// is no refresh token. It wraps tokenstore.ErrNotFound when no record
	// exists.
	ErrNoToken = errors.New("tokensource: no usable token")
	// ErrLeaseTimeout: another process held the refresh lease and did not
	// store a fresh token within twice the lease TTL.
	ErrLeaseTimeout = errors.New("tokensource: timed out waiting for another process to refresh the token")
	// ErrNoRevokeURL: Revoke needs Config.RevokeURL.
	ErrNoRevokeURL = errors.New("tokensource: no revoke URL configured")
	// ErrInvalidConfig: [New], [NewPool] or [Revoke] got a bad [Config]
	// (no token URL, an unknown AuthStyle), a nil store, a nil [Option]
	// or an option with a bad value (a negative duration, a nil logger,
	// clock or HTTP client, a maximum below its initial value).
	ErrInvalidConfig = errors.New("tokensource: invalid configuration")
	// ErrStaleRead: the store kept answering with a refresh token that
	// this Source has already seen replaced by a newer one (a stale read
	// of an eventually consistent store) for longer than
	// [WithStaleReadWait]. The Source did not send that refresh token to
	// the provider, since reusing a rotated-out refresh token makes
	// providers such as ORY Hydra revoke the whole token chain. The error
	// also matches [tokenstore.ErrConflict].
	ErrStaleRead = fmt.Errorf("tokensource: the store keeps returning a superseded refresh token: %w", tokenstore.ErrConflict)
)

// ProviderError is an error answer of the provider's token or revoke
// endpoint, whether it came with an error status or, as Zoho sends it,
// in an HTTP 200 body.
type ProviderError struct {
	// Op is "exchange" (authorization_code), "refresh" or "revoke".
	Op string
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// Code is the "error" field ("invalid_code", "Access Denied", ...),
	// or "" when the answer had none.
	Code string
	// Description is the "error_description" field, truncated, with any
	// token value or secret that was sent replaced by "[redacted]".
	Description string
}

// Error implements error.
func (e *ProviderError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "tokensource: %s: the provider answered", e.Op)
	if e.Code != "" {
		fmt.Fprintf(&b, " error %q", e.Code)
	}
	fmt.Fprintf(&b, " (HTTP %d)", e.StatusCode)
	if e.Description != "" {
		fmt.Fprintf(&b, ": %s", e.Description)
	}
	return b.String()
}

// Is makes a ProviderError match ErrRefreshRevoked, ErrAccessDenied or
// ErrInvalidClient according to its Code.
func (e *ProviderError) Is(target error) bool {
	code := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(e.Code), " ", "_"))
	switch target {
	case ErrRefreshRevoked:
		return code == "invalid_code" || code == "invalid_grant"
	case ErrAccessDenied:
		return code == "access_denied"
	case ErrInvalidClient:
		return code == "invalid_client" || code == "unauthorized_client"
	}
	return false
}

// permanent reports whether err is a failure that retrying soon cannot
// fix: the long backoff applies.
func permanent(err error) bool {
	return errors.Is(err, ErrRefreshRevoked) || errors.Is(err, ErrAccessDenied) || errors.Is(err, ErrInvalidClient)
}

// redactIn replaces every non-empty secret in s and truncates it.
func redactIn(s string, secrets ...string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	const limit = 256
	if len(s) > limit {
		s = s[:limit] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}
