package tokenstore

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Store persists OAuth tokens. It is the six-method TokenStore contract of
// the Zoho SDKs, with Go errors in place of null results.
//
// All methods are safe for concurrent use. Returned tokens are copies: a
// caller may modify them freely.
type Store interface {
	// FindToken returns the stored token that matches the partial token
	// query, chosen by the lookup rules of [QueryRuleOf]. It returns
	// ErrInvalidToken when no rule applies and ErrNotFound when nothing
	// matches. The query is never modified.
	FindToken(ctx context.Context, query *Token) (*Token, error)
	// FindTokenByID returns the token with the given ID, or ErrNotFound.
	FindTokenByID(ctx context.Context, id string) (*Token, error)
	// SaveToken inserts or updates t (see the package documentation for the
	// upsert rules) and writes the record's ID back into t.ID.
	SaveToken(ctx context.Context, t *Token) error
	// DeleteToken deletes the token with the given ID, or returns ErrNotFound.
	DeleteToken(ctx context.Context, id string) error
	// Tokens returns every token of this store.
	Tokens(ctx context.Context) ([]*Token, error)
	// DeleteTokens deletes every token of this store and nothing else.
	DeleteTokens(ctx context.Context) error
}

// The sentinel errors of this package. Stores wrap them, so test with
// errors.Is; the wrapped message adds context but never a token value.
var (
	// ErrNotFound: no token matches the query or ID.
	ErrNotFound = errors.New("tokenstore: token not found")
	// ErrInvalidToken: the token or query cannot be used: a nil token, a
	// query that no lookup rule accepts, a token with nothing to store.
	ErrInvalidToken = errors.New("tokenstore: invalid token")
	// ErrConflict: a concurrent writer kept changing the same record and the
	// bounded retries ran out, or a token's keys belong to another record.
	ErrConflict = errors.New("tokenstore: conflicting concurrent update")

	// ErrInvalidID: an ID that is not 1 to 64 characters of [A-Za-z0-9_-].
	// It wraps ErrInvalidToken.
	ErrInvalidID = fmt.Errorf("%w: malformed token id", ErrInvalidToken)
	// ErrAmbiguous: a query by user name alone matches tokens of more than
	// one client; add the ClientID. It wraps ErrInvalidToken.
	ErrAmbiguous = fmt.Errorf("%w: query matches tokens of several clients", ErrInvalidToken)
	// ErrTooLarge: the encoded document exceeds MaxDocumentSize. It wraps
	// ErrInvalidToken.
	ErrTooLarge = fmt.Errorf("%w: document too large", ErrInvalidToken)
	// ErrMalformed: a stored document is not valid JSON of this format.
	ErrMalformed = errors.New("tokenstore: malformed document")
	// ErrUnsupportedVersion: a stored document has a format version newer
	// than this library understands. It wraps ErrMalformed.
	ErrUnsupportedVersion = fmt.Errorf("%w: unsupported format version", ErrMalformed)
)

// Importer is an optional Store extension for migrations and restores:
// ImportToken stores t exactly as given, under t.ID, so that a record
// keeps its ID when it moves between stores.
//
// t.ID is required ([ErrInvalidID] otherwise). When a record with that ID
// exists, every field is replaced by t's (empty fields included); when
// none exists, t is inserted under t.ID. The one-record-per-key rule still
// holds: if another record holds t's user name and client, grant token or
// refresh token, ImportToken fails with [ErrConflict] and changes nothing.
// Importing the same token twice is a no-op the second time.
type Importer interface {
	ImportToken(ctx context.Context, t *Token) error
}

// LeaseSaver is an optional Leaser extension: SaveTokenLeased saves t as
// SaveToken does and, in the same write, gives holder the lease on the
// token until the given time. Package tokensource uses it so that the
// process that refreshed a token holds the lease for its next refresh,
// which then needs no lease write of its own.
type LeaseSaver interface {
	SaveTokenLeased(ctx context.Context, t *Token, holder string, until time.Time) error
}

// BatchImporter is an optional Store extension for bulk imports:
// ImportTokens imports many tokens as ImportToken does, with fewer writes
// (the casstore engine groups the index writes of the batch). The result
// has one error per token, nil for each token imported.
type BatchImporter interface {
	ImportTokens(ctx context.Context, toks []*Token) []error
}

// Leaser is an optional Store extension: a short lease on one token that
// processes sharing a store use so that only one of them refreshes it.
// Package tokensource uses it when the store provides it.
type Leaser interface {
	// AcquireLease claims the lease on token id for ttl on behalf of
	// holder and reports whether holder now holds it. It returns false
	// while another holder's lease is unexpired.
	AcquireLease(ctx context.Context, id, holder string, ttl time.Duration) (bool, error)
	// ReleaseLease gives the lease up if holder holds it. Saving the token
	// releases it too.
	ReleaseLease(ctx context.Context, id, holder string) error
}
