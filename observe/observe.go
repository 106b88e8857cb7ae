// Package observe is the hook through which the cloudtokens engine
// ([github.com/cloudtokens/cloudtokens/tokenstore/casstore]), the adapters
// built on it (awssm, gcpsm, vault) and
// [github.com/cloudtokens/cloudtokens/tokensource] report what they do: every
// store operation and backend request as a nested operation with a start and
// an end, and the retries, conflicts, fences, index splits, lease waits and
// backoffs inside them as events. An [Observer] turns them into traces,
// metrics or logs; the module github.com/cloudtokens/cloudtokens/otel
// implements one with OpenTelemetry.
//
// The package has no dependencies beyond the standard library, and an
// absent Observer costs one nil check per operation (BenchmarkNilObserver):
// a program that never sets one compiles and runs as before.
//
// # Wiring
//
// Give the same Observer to the store (casstore.Options.Observer, or the
// adapters' WithObserver option) and to the token sources
// (tokensource.WithObserver): a refresh then nests the store operations it
// makes, and those nest their backend requests, because each operation runs
// in the context its Start returned.
//
// # What an Observer sees
//
// Operations carry the record ID of the token when it is known, and the
// name of the backend document a request reads or writes ("token-<id>",
// "index-<n>"); never a token value, a client secret or a user name. Errors
// passed to End and in events are the errors the caller gets: they never
// contain token values, but a few may name a user (an ambiguous query by user
// name, [github.com/cloudtokens/cloudtokens/tokenstore.ErrAmbiguous]); an
// Observer that exports error messages should say so.
//
// An Observer must be safe for concurrent use, and fast: it runs inline.
package observe

import (
	"context"
	"time"
)

// Observer receives operations and events. See the package documentation.
type Observer interface {
	// Start is called when op begins. It returns the context op runs in:
	// the operations op starts, and its events, get that context (or one
	// derived from it), which is how they nest.
	Start(ctx context.Context, op Op) context.Context
	// End is called once when op ends, with the context Start returned,
	// op (with fields learned since Start filled in, such as the ID of a
	// token that a save inserted) and the operation's error (nil on
	// success).
	End(ctx context.Context, op Op, err error)
	// Event reports something that happened inside the operation whose
	// context ctx is (or descends from).
	Event(ctx context.Context, ev Event)
}

// Layer groups the kinds of operation.
type Layer uint8

// The layers.
const (
	// LayerStore: a method of a store (tokenstore.Store and its
	// extensions, casstore.Store's Check and Repair).
	LayerStore Layer = iota + 1
	// LayerBackend: one request of the engine to its backend (a secrets
	// manager call, or a few for the adapters that need them).
	LayerBackend
	// LayerSource: the work of a tokensource.Source.
	LayerSource
)

// String returns "store", "backend" or "source".
func (l Layer) String() string {
	switch l {
	case LayerStore:
		return "store"
	case LayerBackend:
		return "backend"
	case LayerSource:
		return "source"
	}
	return "unknown"
}

// Kind is the kind of an operation; its String is the method's name.
type Kind uint8

// Store operations: the methods of the same names.
const (
	FindToken Kind = iota + 1
	FindTokenByID
	SaveToken
	DeleteToken
	Tokens
	DeleteTokens
	AcquireLease
	ReleaseLease
	ImportToken
	Check
	Repair
	ImportTokens
	SaveTokenLeased
	Migrate
)

// Backend requests: the methods of casstore.Backend, casstore.Lister
// and casstore.VersionLeaser.
const (
	Read Kind = iota + 32
	ReadMany
	Create
	Update
	Delete
	List
	// LeaseVersion: casstore.VersionLeaser's lease on a document's
	// version (GCP Secret Manager: the previous version's destruction).
	LeaseVersion
)

// Source operations.
const (
	// Refresh: a Source found its token expiring (or rejected by the API)
	// and gets a new one, from the provider or, when another process holds
	// the store's lease, from that process through the store. It spans the
	// lease, the reads, the token request and the save. It ends with the
	// error the caller gets, nil once a usable token is saved or found.
	Refresh Kind = iota + 64
	// Exchange: a Source exchanges a grant code for a token and saves it
	// (a login).
	Exchange
	// LeaseWait: inside a Refresh, another holder has the store's lease
	// and this Source polls the store for that holder's token. It ends
	// when the token appears (nil), when this Source takes the lease over
	// (nil, with a LeaseTakeover event), or with an error such as
	// tokensource.ErrLeaseTimeout.
	LeaseWait
	// TokenRequest: one call to the provider's token endpoint, inside a
	// Refresh or an Exchange; Op.Grant says which grant.
	TokenRequest
)

// The names of the kinds, by layer, indexed from the layer's first kind:
// arrays, so that a program pays no initialisation for them.
var (
	storeNames = [...]string{"FindToken", "FindTokenByID", "SaveToken", "DeleteToken", "Tokens",
		"DeleteTokens", "AcquireLease", "ReleaseLease", "ImportToken", "Check", "Repair",
		"ImportTokens", "SaveTokenLeased", "Migrate"}
	backendNames = [...]string{"Read", "ReadMany", "Create", "Update", "Delete", "List", "LeaseVersion"}
	sourceNames  = [...]string{"Refresh", "Exchange", "LeaseWait", "TokenRequest"}
)

// String returns the operation's name, such as "FindToken" or "Read".
func (k Kind) String() string {
	switch k.Layer() {
	case LayerStore:
		return storeNames[k-FindToken]
	case LayerBackend:
		return backendNames[k-Read]
	case LayerSource:
		return sourceNames[k-Refresh]
	}
	return "unknown"
}

// Layer returns the layer of the kind.
func (k Kind) Layer() Layer {
	switch {
	case k >= FindToken && int(k-FindToken) < len(storeNames):
		return LayerStore
	case k >= Read && int(k-Read) < len(backendNames):
		return LayerBackend
	case k >= Refresh && int(k-Refresh) < len(sourceNames):
		return LayerSource
	}
	return 0
}

// Op describes an operation.
type Op struct {
	Kind Kind
	// TokenID is the record ID of the token the operation is about, when
	// known: at Start for an operation on an ID, at End for a save that
	// inserted a record. Empty for operations on many tokens.
	TokenID string
	// Document is the backend document a request reads or writes, as the
	// engine names it: "token-<id>" or "index-<n>" (without the adapter's
	// prefix). Empty for ReadMany and List.
	Document string
	// Documents is the number of documents of a ReadMany.
	Documents int
	// Grant is the grant type of a TokenRequest: "refresh_token" or
	// "authorization_code".
	Grant string
}

// EventKind is the kind of an event.
type EventKind uint8

// The events.
const (
	// Retry: an attempt of a store operation failed in a way a fresh
	// attempt may fix (a compare-and-swap lost to another writer, a
	// concurrent save of the same key); the operation starts again after
	// a backoff. Attempt is the number of the attempt that failed (from
	// 1), Err why. An operation that runs out of attempts ends with
	// tokenstore.ErrConflict.
	Retry EventKind = iota + 1
	// BucketRetry: a compare-and-swap write of index bucket Bucket lost
	// to another writer; the engine reads it again and retries. Attempt
	// and Err as for Retry.
	BucketRetry
	// Fence: a save fenced the pending claim of another save (one that
	// crashed, or did not finish within casstore.Options.ClaimWait) on a
	// key of token TokenID. Key is the kind of key: "user_name",
	// "grant_token", "refresh_token", "access_token" or "id".
	Fence
	// Split: the index grew: bucket Bucket was split and the index now
	// has Buckets buckets.
	Split
	// LeaseAcquire: a Source took the store's lease on TokenID to refresh
	// it, without waiting.
	LeaseAcquire
	// LeaseTakeover: a Source took the lease on TokenID after waiting for
	// another holder, whose lease lapsed (a crash) or was given up
	// without a new token (a failed refresh).
	LeaseTakeover
	// Backoff: a token request for TokenID failed (Err) and the Source
	// makes no other for Wait; Attempt counts the consecutive failures.
	Backoff
	// BackoffBlocked: a Source refused to call the provider for TokenID
	// because a backoff is running; Err is the error the caller gets
	// (tokensource.ErrBackingOff).
	BackoffBlocked
	// PoolHit: a tokensource.Pool had a Source for the identity asked
	// for (TokenID: its record ID, when known).
	PoolHit
	// PoolMiss: a Pool made a new Source.
	PoolMiss
)

var eventNames = [...]string{"retry", "bucket_retry", "fence", "split", "lease_acquire", "lease_takeover",
	"backoff", "backoff_blocked", "pool_hit", "pool_miss"}

// String returns the event's name in snake case, such as "bucket_retry".
func (k EventKind) String() string {
	if k >= Retry && int(k-Retry) < len(eventNames) {
		return eventNames[k-Retry]
	}
	return "unknown"
}

// Event is something that happened inside an operation. Which fields are
// set depends on Kind (see the EventKind constants).
type Event struct {
	Kind    EventKind
	TokenID string
	Attempt int
	Bucket  int
	Buckets int
	Key     string
	Wait    time.Duration
	Err     error
}

// Span is an operation in progress, as [Start] returns it, for the code
// that reports operations. The zero Span, and one started with a nil
// Observer, does nothing.
type Span struct {
	o   Observer
	ctx context.Context
	op  Op
}

// Start reports the start of op to o and returns the context op runs in
// and its Span. With a nil o it returns ctx and a Span that does nothing,
// at the cost of a nil check:
//
//	func (s *Store) FindTokenByID(ctx context.Context, id string) (_ *Token, err error) {
//		ctx, span := observe.Start(ctx, s.observer, observe.Op{Kind: observe.FindTokenByID, TokenID: id})
//		defer span.End(&err)
//		...
func Start(ctx context.Context, o Observer, op Op) (context.Context, Span) {
	if o == nil {
		return ctx, Span{}
	}
	ctx = o.Start(ctx, op)
	return ctx, Span{o: o, ctx: ctx, op: op}
}

// SetTokenID records the ID of the operation's token, learned after
// Start.
func (s *Span) SetTokenID(id string) {
	if s.o != nil {
		s.op.TokenID = id
	}
}

// End reports the end of the operation with the error *errp (nil errp:
// success). Later calls do nothing, so that a deferred End may follow an
// early one.
func (s *Span) End(errp *error) {
	if s.o == nil {
		return
	}
	var err error
	if errp != nil {
		err = *errp
	}
	o := s.o
	s.o = nil
	o.End(s.ctx, s.op, err)
}

// Emit reports ev to o, if o is not nil.
func Emit(ctx context.Context, o Observer, ev Event) {
	if o != nil {
		o.Event(ctx, ev)
	}
}
