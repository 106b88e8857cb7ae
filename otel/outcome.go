package cloudtokensotel

import (
	"context"
	"errors"

	"github.com/cloudtokens/cloudtokens/tokensource"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// The outcomes [Outcome] returns.
const (
	OutcomeOK            = "ok"
	OutcomeNotFound      = "not_found"      // tokenstore.ErrNotFound
	OutcomeConflict      = "conflict"       // tokenstore.ErrConflict; a backend's casstore.ErrVersionMismatch or casstore.ErrExists
	OutcomeInvalid       = "invalid"        // tokenstore.ErrInvalidToken (and ErrInvalidID, ErrAmbiguous, ErrTooLarge)
	OutcomeMalformed     = "malformed"      // tokenstore.ErrMalformed: a corrupt document
	OutcomeCanceled      = "canceled"       // context.Canceled
	OutcomeTimeout       = "timeout"        // context.DeadlineExceeded
	OutcomeStaleRead     = "stale_read"     // tokensource.ErrStaleRead
	OutcomeBackingOff    = "backing_off"    // tokensource.ErrBackingOff
	OutcomeRevoked       = "revoked"        // tokensource.ErrRefreshRevoked: a new login is needed
	OutcomeAccessDenied  = "access_denied"  // tokensource.ErrAccessDenied: the provider's rate limit
	OutcomeInvalidClient = "invalid_client" // tokensource.ErrInvalidClient
	OutcomeLeaseTimeout  = "lease_timeout"  // tokensource.ErrLeaseTimeout
	OutcomeNoToken       = "no_token"       // tokensource.ErrNoToken
	OutcomeError         = "error"          // anything else: a network error, a denied permission, a throttled call...
)

// Outcome classifies err for the cloudtokens.outcome attribute: "ok" for
// nil, else the first of the outcomes above that err matches
// (errors.Is), tokensource's errors first because they wrap the store's
// (a backoff wraps the failure that started it, for example).
func Outcome(err error) string {
	switch {
	case err == nil:
		return OutcomeOK
	case errors.Is(err, context.Canceled):
		return OutcomeCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return OutcomeTimeout
	case errors.Is(err, tokensource.ErrBackingOff):
		return OutcomeBackingOff
	case errors.Is(err, tokensource.ErrStaleRead):
		return OutcomeStaleRead
	case errors.Is(err, tokensource.ErrLeaseTimeout):
		return OutcomeLeaseTimeout
	case errors.Is(err, tokensource.ErrRefreshRevoked):
		return OutcomeRevoked
	case errors.Is(err, tokensource.ErrAccessDenied):
		return OutcomeAccessDenied
	case errors.Is(err, tokensource.ErrInvalidClient):
		return OutcomeInvalidClient
	case errors.Is(err, tokensource.ErrNoToken):
		return OutcomeNoToken
	case errors.Is(err, tokenstore.ErrNotFound):
		return OutcomeNotFound
	case errors.Is(err, tokenstore.ErrConflict), errors.Is(err, casstore.ErrVersionMismatch), errors.Is(err, casstore.ErrExists):
		return OutcomeConflict
	case errors.Is(err, tokenstore.ErrMalformed):
		return OutcomeMalformed
	case errors.Is(err, tokenstore.ErrInvalidToken):
		return OutcomeInvalid
	}
	return OutcomeError
}
