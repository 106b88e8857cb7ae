package bench

import (
	"context"
	"errors"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// Store is what every adapter's Store offers: tokenstore.Store, and Check
// from the casstore engine (its Report has the index shard sizes).
type Store interface {
	tokenstore.Store
	Check(ctx context.Context) (*casstore.Report, error)
}

// Costs is the number of transport requests that one call of each
// casstore.Backend method makes on a target. The engine's cost table
// (package casstore) is in Backend calls; these turn it into requests.
type Costs struct {
	Read   int // one Backend.Read
	Create int // one Backend.Create of a new document
	Update int // one Backend.Update (compare-and-swap)
	Delete int // one Backend.Delete
	// ReadMany is the cost of Backend.ReadMany of n documents.
	ReadMany func(n int) int
}

// Doc is a document as the raw SDK reads it.
type Doc struct {
	Value   []byte
	Version string
}

// Raw is the official SDK client of a target used directly, without the
// store: the requests that a store operation reduces to. Each method makes
// the same requests as the adapter's casstore.Backend method of the same
// name, on the same secret (name is an engine name such as "token-<id>",
// mapped under prefix exactly as the adapter maps it), so the latency
// ratio of an operation to its raw sequence is the cost of the library.
type Raw interface {
	Read(ctx context.Context, prefix, name string) (Doc, error)
	Write(ctx context.Context, prefix, name string, value []byte, version string) (string, error)
	Create(ctx context.Context, prefix, name string, value []byte) (string, error)
	Delete(ctx context.Context, prefix, name string) error
}

// Target is one backend: stores opened on it, the raw SDK on the same
// server, and the counter that sees the requests of both.
type Target struct {
	// Name is "memory", "aws", "vault" or "gcp".
	Name string
	// Server describes the server, e.g. "moto_server at http://...".
	Server string
	// Calls counts every request of the target's clients.
	Calls *Counter
	// Costs maps Backend calls onto requests.
	Costs Costs
	// Raw is the SDK client used directly.
	Raw Raw

	open    func(ctx context.Context, prefix string, opts StoreOptions) (Store, error)
	closers []func() error
}

// StoreOptions are the options common to every adapter.
type StoreOptions struct {
	IndexShards int  // WithIndexShards; 0 means the default (1)
	IndexCache  bool // WithIndexCache
}

// Open returns a new Store of the target under prefix. Prefixes are
// [a-z0-9-], which every backend accepts.
func (t *Target) Open(ctx context.Context, prefix string, opts StoreOptions) (Store, error) {
	return t.open(ctx, prefix, opts)
}

// Close releases the clients (and stops the GCP emulator).
func (t *Target) Close() error {
	var errs []error
	for i := len(t.closers) - 1; i >= 0; i-- {
		errs = append(errs, t.closers[i]())
	}
	t.closers = nil
	return errors.Join(errs...)
}

func ceilDiv(n, d int) int { return (n + d - 1) / d }
