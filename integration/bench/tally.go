package bench

import (
	"context"
	"maps"
	"sync"
)

// Tally counts what one operation sent: the requests at the transport and
// the casstore.Backend calls the engine made, for every call made with
// the context [Track] returned (clean-ups that outlive the caller's
// context keep its values, so they count too). Operations running at the
// same time each have their own Tally. It is safe for concurrent use.
type Tally struct {
	mu sync.Mutex
	u  Usage
}

// Usage is what a Tally counted.
type Usage struct {
	// Requests are the transport requests by operation (GetSecretValue,
	// AccessSecretVersion, "GET data", ...; Backend calls on the memory
	// target).
	Requests Calls
	// Backend are the casstore.Backend calls by method (Read, ReadMany,
	// Create, Update, Delete, List).
	Backend Calls
	// IndexReads, IndexWrites count the Backend Reads and the Creates and
	// Updates of index buckets; TokenWrites the Creates and Updates of
	// token documents.
	IndexReads, IndexWrites, TokenWrites int
	// Splits counts the index buckets created other than bucket 0: each
	// is one split of the growing index.
	Splits int
	// FailedCAS counts Backend Updates that found another version and
	// Creates that found the document there: compare-and-swap writes
	// that lost and made the engine read again.
	FailedCAS int
	// SDKRetries counts the requests that were retries of the SDK (AWS).
	SDKRetries int
}

// NRequests is the number of transport requests.
func (u Usage) NRequests() int { return u.Requests.Total() }

// NBackend is the number of Backend calls.
func (u Usage) NBackend() int { return u.Backend.Total() }

type tallyKey struct{}

// Track returns a context whose calls count in the returned Tally (and
// still in every Counter).
func Track(ctx context.Context) (context.Context, *Tally) {
	t := &Tally{u: Usage{Requests: Calls{}, Backend: Calls{}}}
	return context.WithValue(ctx, tallyKey{}, t), t
}

func tallyOf(ctx context.Context) *Tally {
	t, _ := ctx.Value(tallyKey{}).(*Tally)
	return t
}

// Usage returns a copy of the counts so far.
func (t *Tally) Usage() Usage {
	t.mu.Lock()
	defer t.mu.Unlock()
	u := t.u
	u.Requests, u.Backend = maps.Clone(t.u.Requests), maps.Clone(t.u.Backend)
	return u
}

func (t *Tally) request(op string) {
	t.mu.Lock()
	t.u.Requests[op]++
	t.mu.Unlock()
}

func (t *Tally) sdkRetry() {
	t.mu.Lock()
	t.u.SDKRetries++
	t.mu.Unlock()
}

func (t *Tally) update(fn func(u *Usage)) {
	t.mu.Lock()
	fn(&t.u)
	t.mu.Unlock()
}
