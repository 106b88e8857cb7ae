// Package casstore implements tokenstore.Store once, on top of any
// backend that keeps small named documents with compare-and-swap
// versions. The awssm, gcpsm and vault adapters are such backends; the
// lookup rules, the document and index formats, the upsert logic, the
// index cache and the concurrency control all live here, so every adapter
// behaves the same.
//
// # Layout
//
// A store keeps one document per token, named TokenName(id), and an index
// of Options.IndexShards documents named IndexName(n) (see package index).
// Names use only [a-z0-9-]; a backend adds its own prefix.
//
// # Concurrency
//
// Token documents are the truth; the index is a complete set of hints.
// Every write is a compare-and-swap on one document, retried with a fresh
// read up to Options.MaxAttempts times before tokenstore.ErrConflict.
//   - Insert: create the token document under a new random ID, then claim
//     its keys in the index: first the key its own lookup rule uses (all
//     concurrent inserts of one user contend on that key, so a loser
//     loses before any of its keys is visible), then the other keys, and
//     last the ID key that lists it. A key already held by another live
//     token means a concurrent save of the same record won: the new
//     document is withdrawn and the save retries, and now finds and
//     updates the winner. So no key ever has two records. (A remaining
//     window: a token saved with a user name and one saved with only the
//     same refresh token race on different first keys; the loser's
//     withdrawal can drop an update made to it meanwhile.)
//   - Update: keys the update adds are claimed in the index first, then
//     the token document is swapped, then keys it dropped are released.
//     A refresh that changes only the access token and expiry writes the
//     token document alone.
//   - Delete: the token document goes first, then its index entries.
//
// A write whose response is lost (a network error after the backend
// applied it) and that the SDK then retries meets its own new version and
// reports a mismatch; the engine treats it as lost. For an insert this can
// leave an unindexed document, which Check reports as Unindexed.
//
// An index entry whose token is gone, or no longer holds the key, is
// stale; readers verify every token they read against the query, so a
// stale entry can cost a read but never yields a wrong answer.
//
// # Cost per operation (calls to the Backend)
//
// S is Options.IndexShards, K the number of shards a token's keys route
// to (1 with one shard), "warm" means Options.CacheIndex with the shard
// already in memory.
//
//	FindTokenByID                1 Read
//	FindToken by user/grant/refresh
//	    cold                     2 Reads (index shard, token)
//	    warm cache, verified     1 Read (token)
//	    warm cache, stale        3 Reads (token, index shard, token)
//	FindToken by access token    a full Tokens scan (access tokens are not indexed)
//	SaveToken refresh, by ID
//	    token remembered         1 Update
//	    otherwise                1 Read + 1 Update
//	SaveToken refresh, by rules  lookup (as FindToken) + 1 Update
//	SaveToken new                lookup + 1 Create + K index Updates
//	                             (+1 when the ID key shares the lookup
//	                             key's shard and other keys route
//	                             elsewhere: that shard is written first
//	                             and last; + K-1 index Reads when not
//	                             warm: the lookup's shard is not read
//	                             again)
//	AcquireLease                 1 Update if remembered, else 1 Read + 1 Update
//	DeleteToken                  1 Read + 1 Delete + K index Updates (+ K Reads when not warm)
//	Tokens                       S Reads + ReadMany(N)
//	DeleteTokens                 S Reads + N Deletes + 1 Update per shard that had entries
//
// A token is remembered when this Store has read or written it since
// (Options.RememberTokens, 4096 by default): the Store then knows the
// version its compare-and-swap needs. If another process wrote the token
// in between, the write fails and the save decides again from a fresh
// read: 1 Update + 1 Read + 1 Update.
package casstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"

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
	// ErrVersionMismatch: Update found another version than expected.
	ErrVersionMismatch = errors.New("casstore: document version changed")
)

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
