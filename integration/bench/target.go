package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// Store is what every adapter's Store offers: tokenstore.Store, and Check
// and Repair from the casstore engine (Check's Report has the index
// bucket sizes).
type Store interface {
	tokenstore.Store
	Check(ctx context.Context) (*casstore.Report, error)
	Repair(ctx context.Context) (casstore.RepairReport, error)
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
// server, and the counters that see the requests of both and the
// engine's Backend calls.
type Target struct {
	// Name is "memory", "aws", "vault" or "gcp".
	Name string
	// Server describes the server, e.g. "moto_server at http://...".
	Server string
	// Calls counts every request of the target's clients.
	Calls *Counter
	// Backend counts the casstore.Backend calls of every store the target
	// opened, by method.
	Backend *Counter
	// Costs maps Backend calls onto requests.
	Costs Costs
	// Raw is the SDK client used directly.
	Raw Raw

	// open returns the adapter's Store under prefix with o's options and
	// wrap as its backend wrapper (WithBackendWrapper).
	open    func(ctx context.Context, prefix string, o StoreOptions, wrap func(casstore.Backend) casstore.Backend) (Store, error)
	closers []func() error

	mu      sync.Mutex
	layouts map[string]*Layout
}

// StoreOptions are the options common to every adapter.
type StoreOptions struct {
	// IndexShards is WithIndexShards (deprecated): a new store pre-splits
	// its index into that many buckets. 0: the default options, an index
	// that starts as one bucket and grows by itself.
	IndexShards int
	// IndexCache is WithIndexCache.
	IndexCache bool
	// Wrap, when set, wraps the adapter's backend (WithBackendWrapper):
	// casstoretest.StaleBackend, QuotaBackend. The target's counting
	// wrapper sits above it, so the counts are the engine's calls.
	Wrap func(casstore.Backend) casstore.Backend
}

func newTarget() *Target {
	return &Target{Calls: NewCounter(), Backend: NewCounter(), layouts: map[string]*Layout{}}
}

// Layout returns what the target knows of the index under prefix: the
// buckets its stores created.
func (t *Target) Layout(prefix string) *Layout {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.layouts[prefix]
	if l == nil {
		l = &Layout{}
		t.layouts[prefix] = l
	}
	return l
}

// wrapper returns the backend wrapper of a store under prefix: o.Wrap,
// then the counting backend.
func (t *Target) wrapper(prefix string, o StoreOptions) func(casstore.Backend) casstore.Backend {
	layout := t.Layout(prefix)
	return func(b casstore.Backend) casstore.Backend {
		if o.Wrap != nil {
			b = o.Wrap(b)
		}
		return &countingBackend{next: b, calls: t.Backend, layout: layout}
	}
}

// Open returns a new Store of the target under prefix, built with the
// adapter's public constructor. Prefixes are [a-z0-9-], which every
// backend accepts.
func (t *Target) Open(ctx context.Context, prefix string, o StoreOptions) (Store, error) {
	return t.open(ctx, prefix, o, t.wrapper(prefix, o))
}

// OpenEngine returns the casstore engine with options eo directly on the
// adapter's backend under prefix (wrapped as Open wraps it): for runs
// that need an engine option the adapters do not offer, such as a
// simulated Clock. The adapter's own Store is built only to reach its
// backend.
func (t *Target) OpenEngine(ctx context.Context, prefix string, o StoreOptions, eo casstore.Options) (*casstore.Store, error) {
	var b casstore.Backend
	wrap := t.wrapper(prefix, o)
	if _, err := t.open(ctx, prefix, StoreOptions{}, func(inner casstore.Backend) casstore.Backend {
		b = wrap(inner)
		return inner
	}); err != nil {
		return nil, err
	}
	if b == nil {
		return nil, fmt.Errorf("bench: the %s adapter did not call its backend wrapper", t.Name)
	}
	eo.IndexShards, eo.CacheIndex = o.IndexShards, o.IndexCache
	return casstore.New(b, eo), nil
}

// Shared returns a backend wrapper that wraps the first backend it is
// given with wrap, and returns that same wrapped backend to every later
// store: stores on one prefix then share the wrapper's state, as
// processes share a cloud's (a StaleBackend's history of writes).
func Shared(wrap func(casstore.Backend) casstore.Backend) func(casstore.Backend) casstore.Backend {
	var once sync.Once
	var shared casstore.Backend
	return func(b casstore.Backend) casstore.Backend {
		once.Do(func() { shared = wrap(b) })
		return shared
	}
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
