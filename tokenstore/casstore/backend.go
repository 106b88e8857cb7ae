package casstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sync/errgroup"
)

// Backend is a store of small named documents with versions. A backend
// maps the names it is given to its own namespace (a prefix) and reports
// its failures with the errors below, wrapping the cause.
type Backend interface {
	// Read returns the current value of name and its version. A missing
	// document gives an error wrapping tokenstore.ErrNotFound.
	Read(ctx context.Context, name string) (Object, error)
	// ReadMany reads several documents. The result has one Result per
	// name, in order; a missing document has Err wrapping
	// tokenstore.ErrNotFound. A non-nil error means the whole call failed.
	ReadMany(ctx context.Context, names []string) ([]Result, error)
	// Create stores a new document and returns its version. An existing
	// document gives an error wrapping ErrExists.
	Create(ctx context.Context, name string, value []byte) (version string, err error)
	// Update replaces the document if its current version is version and
	// returns the new version. Another version gives an error wrapping
	// ErrVersionMismatch; a missing document, tokenstore.ErrNotFound, or
	// ErrVersionMismatch where the backend cannot tell the two apart (Vault
	// KV v2): the engine retries with a fresh read either way.
	Update(ctx context.Context, name string, value []byte, version string) (newVersion string, err error)
	// Delete removes the document. A missing document gives an error
	// wrapping tokenstore.ErrNotFound.
	Delete(ctx context.Context, name string) error
}

// Object is a document's value and version.
type Object struct {
	Value   []byte
	Version string
}

// Result is one document of a ReadMany call.
type Result struct {
	Name    string
	Value   []byte
	Version string
	Err     error
}

var (
	// ErrExists: Create found the document already there.
	ErrExists = errors.New("casstore: document already exists")
	// ErrDeleted: Create found that the name belonged to a document that
	// was deleted and cannot be created again yet (AWS Secrets Manager
	// keeps a deleted secret's name during its recovery window). It wraps
	// ErrExists. For the engine it proves that no document of that name
	// can appear, which is all a fence needs.
	ErrDeleted = fmt.Errorf("%w: the name belongs to a deleted document", ErrExists)
	// ErrVersionMismatch: Update found another version than expected.
	ErrVersionMismatch = errors.New("casstore: document version changed")
	// ErrThrottled: the backend refused the request for its rate (GCP
	// Secret Manager's per-secret write rate, RESOURCE_EXHAUSTED) after
	// its own retries, and applied nothing. The engine tries an index
	// bucket's write again from a fresh read, as after a lost
	// compare-and-swap: several processes that write one bucket at once
	// can exceed the rate for longer than one call's retries last.
	ErrThrottled = errors.New("casstore: the backend refused the request for its rate")
	// ErrNoVersionLease: a VersionLeaser cannot lease this version of the
	// document without a write (see VersionLeaser.LeaseVersion).
	ErrNoVersionLease = errors.New("casstore: the version cannot be leased without a write")
	// ErrDeleteUnfinished: the document is deleted for the store, but a
	// delete that takes the backend several steps stopped half way and the
	// backend still holds some of it (Vault: a deletion marker whose purge
	// failed, or a purge cut short, which leaves the entry's metadata and
	// some of its versions). A Read or ReadMany result wraps it together
	// with tokenstore.ErrNotFound; Delete finishes the delete. [Store.Check]
	// reports such documents and [Store.Repair] deletes them, so that no
	// earlier version of a deleted token stays behind.
	ErrDeleteUnfinished = errors.New("casstore: the document's delete did not finish")
)

// Quotas describes how often one document of a backend may be written.
// The engine splits index buckets early enough that no bucket comes near
// them; see package index.
type Quotas struct {
	// VersionsPerDay is how many writes a document takes in any 24 hours:
	// AWS Secrets Manager keeps at most 100 versions created in the last
	// 24 hours per secret. 0 means no limit.
	VersionsPerDay int
	// WritesPerSecond is how many writes a second a document takes
	// sustained: GCP Secret Manager soft-limits a global secret to 2
	// AddSecretVersion and UpdateSecret requests a second, and a store
	// write makes one of each, so 1. 0 means no limit.
	WritesPerSecond float64
}

// QuotaReporter is implemented by backends whose documents have write
// quotas.
type QuotaReporter interface {
	Quotas() Quotas
}

// BatchReader is implemented by backends whose ReadMany reads several
// documents in one request (AWS Secrets Manager's BatchGetSecretValue
// reads 20). A Store that knows nothing of the index layout yet (a new
// process) then reads both buckets a key may be in with one request,
// instead of learning the bucket count from bucket 0 on every split (see
// [Store.FindToken]): on AWS every write of bucket 0 is a version against
// its daily quota.
type BatchReader interface {
	// BatchSize is how many documents one ReadMany request reads; 1 or
	// less means one request per document.
	BatchSize() int
}

// VersionLeaser is implemented by backends that can lease a document
// without writing a new version of it. GCP Secret Manager bills every
// write request against a project quota (600 a minute), and a lease
// written into the document costs as many requests as a save; there, a
// lease destroys the version before the current one, which succeeds once
// per version, so the refresh it guards costs the requests of the save
// alone (the save keeps 2 live versions as before, and destroys nothing
// more). See [Store.AcquireLease] for how the Store combines these leases
// with those written in documents.
type VersionLeaser interface {
	// LeaseVersion takes an exclusive lease on the document at name,
	// whose current version is version. taken reports whether this call
	// took it. When another call took it first, since is when, by the
	// backend's clock (now if the backend cannot tell): the lease runs
	// until since plus the lease's TTL, then a lease written into the
	// document takes it over.
	//
	// An error wrapping ErrVersionMismatch: version is no longer current;
	// the Store reads the document again. An error wrapping
	// ErrNoVersionLease: this version cannot be leased so (it is the
	// document's first, or a newer version may be in the making); the
	// Store writes its lease into the document, a compare-and-swap. A
	// backend never reports taken for a version that is not current when
	// the call returns, nor for a version two calls can both take.
	LeaseVersion(ctx context.Context, name, version string) (taken bool, since time.Time, err error)
}

// Restorer is implemented by backends whose deleted names stay taken for
// a while (ErrDeleted), so that the Store can take back the name of a
// lost index bucket: without it, an index deleted out of band with AWS
// Secrets Manager's default recovery window of 7 to 30 days could not be
// created again, and every save would fail until the window ended. The
// Store never restores a token document: a deleted token stays deleted.
type Restorer interface {
	// Restore cancels the deletion of the document at name, which then
	// reads as it was when it was deleted.
	Restore(ctx context.Context, name string) error
}

// TokenName returns the backend name of the document of token id.
func TokenName(id string) string { return "token-" + id }

// IndexName returns the backend name of index shard n.
func IndexName(n int) string { return fmt.Sprintf("index-%d", n) }

// ReadEach implements ReadMany for a backend that can read only one
// document per call: it calls read for every name with at most workers
// calls in flight (workers <= 0 means 4 × GOMAXPROCS).
func ReadEach(ctx context.Context, names []string, workers int, read func(ctx context.Context, name string) (Object, error)) ([]Result, error) {
	if workers <= 0 {
		workers = 4 * runtime.GOMAXPROCS(0)
	}
	out := make([]Result, len(names))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for i, name := range names {
		g.Go(func() error {
			obj, err := read(gctx, name)
			out[i] = Result{Name: name, Value: obj.Value, Version: obj.Version, Err: err}
			if err := gctx.Err(); err != nil {
				return err
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}
