package casstore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudtokens/cloudtokens/observe"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// Options tune a Store. The zero value is valid.
type Options struct {
	// IndexShards is the number of buckets a new, empty store splits its
	// index into on its first write (default 1).
	//
	// Deprecated: the index grows by itself (see package index), and a
	// store created with a fixed number of shards by an earlier version
	// keeps its layout, read from the index; no process needs this.
	IndexShards int
	// CacheIndex keeps the index buckets in memory and answers lookups
	// from them, verifying every answer against the token it reads.
	CacheIndex bool
	// MaxAttempts bounds the compare-and-swap retries of one operation
	// (default 20) before tokenstore.ErrConflict. Waiting for another
	// save's unfinished claim does not count: that wait ends when the
	// claim is fenced, after ClaimWait or longer on a slow backend.
	MaxAttempts int
	// Logger receives warnings about stale or corrupt documents and failed
	// clean-ups: token IDs and document names, never token values or user
	// names. Default slog.Default().
	Logger *slog.Logger
	// DeleteWorkers bounds the parallel deletes of DeleteTokens (default 8).
	DeleteWorkers int
	// RememberTokens is how many tokens the Store remembers as it last
	// read or wrote them (default 4096; negative: none). Saving a
	// remembered token skips the read that learns its version: a refresh
	// costs one compare-and-swap write. A stale entry costs one failed
	// write, then the save reads afresh. It is also what makes reads
	// monotonic: a Store never returns a token older than one it
	// remembers.
	RememberTokens int
	// ClaimWait is how long a save waits for another save's unfinished
	// claim on a key before it fences that claim and takes the key
	// (default 2 s). Fencing is always safe (it is a conditional write
	// that makes the other save retry); the wait only avoids disturbing a
	// save that is about to finish. It bounds how long a user stays
	// blocked after a process died in the middle of saving them. When
	// this Store's own saves take longer from claim to write (a slow or
	// throttled backend), it waits three times as long as they take,
	// up to CleanupTimeout.
	ClaimWait time.Duration
	// StaleReadWait is how long this Store retries a read that does not
	// find a document it knows exists (a lagging replica that does not
	// show it yet) before it takes the answer (default 2 s): a token it
	// wrote less than this long ago, an index bucket that the layout
	// names, and bucket 0 once it has seen it or a listing shows it. A
	// read that returns an older document than this Store has read or
	// written is answered at once with the newer one it knows.
	StaleReadWait time.Duration
	// CleanupTimeout bounds the clean-up an operation still does after its
	// context ended (withdrawing claims, releasing keys, finding out what
	// a write with a lost response did): default 30 s.
	CleanupTimeout time.Duration
	// TombstoneTTL is how long Repair keeps a tombstone (a fence left
	// where a token was deleted or where a crashed save was stopped)
	// before removing it (default 24 h).
	TombstoneTTL time.Duration
	// Quotas overrides the write quotas the backend reports
	// (QuotaReporter); the index grows to stay within them.
	Quotas *Quotas
	// Clock tells the time for leases, claim waits, tombstones and the
	// write-rate accounting of the index (default time.Now).
	Clock func() time.Time
	// Observer, if not nil, receives every operation of the Store and
	// every backend request, nested, and the engine's retries, fences and
	// index splits (see package observe). Default none, at the cost of a
	// nil check.
	Observer observe.Observer
}

// Store implements tokenstore.Store, tokenstore.Leaser and
// tokenstore.Importer on a Backend. See the package documentation.
type Store struct {
	b        Backend
	restorer Restorer // b's, if it has one (the observer's decorator hides it)
	opts     Options
	quotas   Quotas
	batch    int // documents one ReadMany request reads (BatchReader), at least 1

	saveMu   [64]sync.Mutex // serialises this process's saves of one key (striped)
	bucketMu [64]sync.Mutex // serialises this process's writes to one bucket (striped)
	queueMu  sync.Mutex
	queues   map[int][]*bucketChange // changes waiting for the next write of a bucket (commit.go)
	lost     map[int]int             // versions of a bucket that lost compare-and-swaps made (buckets.go)

	layoutMu sync.Mutex
	layout   layout

	bucketsMu sync.Mutex
	buckets   map[int]*cachedBucket // last known content of buckets (all with CacheIndex, else a few)

	recent *recentDocs
	claims *claimWatch
	left   leftovers // entries releases left behind (leftovers.go)

	versionLeaser VersionLeaser // b's, if it has one (the observer's decorator hides it)
	versionLeases versionLeases // version leases taken or seen (lease.go)

	// indexSeen: this Store has seen bucket 0 exist (read, written, or
	// listed), so a read that misses it is first taken for a lagging
	// replica. Cleared when it stays missing for StaleReadWait (lost).
	indexSeen atomic.Bool
}

var (
	_ tokenstore.Store    = (*Store)(nil)
	_ tokenstore.Leaser   = (*Store)(nil)
	_ tokenstore.Importer = (*Store)(nil)
)

// New returns a Store on b.
func New(b Backend, opts Options) *Store {
	if opts.IndexShards <= 0 {
		opts.IndexShards = 1
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.DeleteWorkers <= 0 {
		opts.DeleteWorkers = 8
	}
	if opts.RememberTokens == 0 {
		opts.RememberTokens = 4096
	}
	if opts.ClaimWait <= 0 {
		opts.ClaimWait = 2 * time.Second
	}
	if opts.StaleReadWait <= 0 {
		opts.StaleReadWait = 2 * time.Second
	}
	if opts.CleanupTimeout <= 0 {
		opts.CleanupTimeout = 30 * time.Second
	}
	if opts.TombstoneTTL <= 0 {
		opts.TombstoneTTL = 24 * time.Hour
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	restorer, _ := b.(Restorer)
	versionLeaser, _ := b.(VersionLeaser)
	s := &Store{
		b:             b,
		restorer:      restorer,
		versionLeaser: versionLeaser,
		opts:          opts,
		layout:        layout{m: 1},
		buckets:       map[int]*cachedBucket{},
		queues:        map[int][]*bucketChange{},
		lost:          map[int]int{},
		recent:        newRecentDocs(opts.RememberTokens),
		claims:        newClaimWatch(),
	}
	if q, ok := b.(QuotaReporter); ok {
		s.quotas = q.Quotas()
	}
	s.batch = 1
	if br, ok := b.(BatchReader); ok {
		s.batch = max(br.BatchSize(), 1)
	}
	if opts.Quotas != nil {
		s.quotas = *opts.Quotas
	}
	if opts.Observer != nil {
		s.b = observeBackend(b, opts.Observer)
		if versionLeaser != nil {
			s.versionLeaser = observedVersionLeaser{versionLeaser, opts.Observer}
		}
	}
	return s
}

func (s *Store) now() time.Time { return s.opts.Clock() }

// errRetry restarts an operation with fresh reads.
var errRetry = errors.New("casstore: retry")

// errClaimPending (with errRetry): a key the operation needs is claimed
// by another save that has not finished, and has not waited its patience.
var errClaimPending = errors.New("casstore: another save's claim is pending")

// retryable reports whether an attempt of an operation failed in a way
// that a fresh attempt may fix.
func retryable(err error) bool {
	return errors.Is(err, errRetry) || errors.Is(err, ErrVersionMismatch) || errors.Is(err, ErrExists)
}

// backoff sleeps before attempt number attempt (0-based) with jitter.
func backoff(ctx context.Context, attempt int) error {
	if attempt == 0 {
		return ctx.Err()
	}
	d := time.Duration(5<<min(attempt, 6)) * time.Millisecond // 10ms .. 320ms
	d = d/2 + rand.N(d)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// retry runs attempt until it succeeds, fails for good, or MaxAttempts
// attempts failed in a retryable way (tokenstore.ErrConflict).
//
// An attempt that waits for another save's unfinished claim
// (errClaimPending) does not count: that wait is bounded by the claim's
// patience, after which the next attempt fences the claim (claimKey), and
// on a slow backend it can outlast MaxAttempts quick retries. At most
// maxClaimPolls such attempts are made.
func (s *Store) retry(ctx context.Context, op string, attempt func() error) error {
	var last error
	polls := 0
	for i, pause := 0, 0; i < s.opts.MaxAttempts; pause++ {
		if err := backoff(ctx, pause); err != nil {
			return err
		}
		err := attempt()
		if err == nil || !retryable(err) {
			return err
		}
		last = err
		s.emit(ctx, observe.Event{Kind: observe.Retry, Attempt: pause + 1, Err: err})
		if errors.Is(err, errClaimPending) && polls < maxClaimPolls {
			polls++
			continue
		}
		i++
	}
	return conflict(op, s.opts.MaxAttempts, last)
}

// maxClaimPolls bounds the attempts of one operation that find another
// save's claim pending: 400 pauses of at least 0.16 s outlast the longest
// patience (Options.CleanupTimeout, 30 s by default).
const maxClaimPolls = 400

func conflict(op string, attempts int, last error) error {
	return fmt.Errorf("%w: %s gave up after %d attempts (last: %v)", tokenstore.ErrConflict, op, attempts, last)
}

// cleanupContext returns a context for clean-up work that must run even
// when ctx has ended: it keeps ctx's values, drops its cancellation and
// has its own timeout.
func (s *Store) cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), s.opts.CleanupTimeout)
}

// stripe returns the mutex of key among mus.
func stripe(mus *[64]sync.Mutex, key string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(key))
	return &mus[h.Sum32()%uint32(len(mus))]
}
