package casstore

import (
	"context"
	"sync"

	"github.com/cloudtokens/cloudtokens/tokenstore/index"
)

// Releases that ran out of time.
//
// A release (claims.go) removes index entries that no document needs any
// more: the keys a save dropped, the claims of an insert that gave up,
// the entries of a deleted token. (A refresh that lost its compare-and-
// swap leaves its claims here too, without trying: its retry usually
// claims them again, see save.go.) It runs on a clean-up context after
// the operation's own work, and on a busy bucket it can run out of that
// time (Options.CleanupTimeout): GCP takes 2 writes a second per secret,
// and a burst of sign-ups while the index is still small queues many
// changes on few buckets. The entries it leaves are dead: lookups skip
// them, Repair drops them, and a save that needs one of their keys drops
// it, but the keys of a token ID that never comes back are never needed
// again, so until a Repair, Check reports them.
//
// So the Store remembers the entries such a release left (leftovers),
// and its next write of the bucket that holds one drops it in the same
// compare-and-swap: one more change to the bucket copy being written,
// no write of its own when the bucket is written anyway. Before it drops
// an entry it checks, by reading the holder's document, that the entry
// is still dead or that the document is missing (the entry may have been
// claimed again since, by ImportToken of the same ID): a leftover that
// is live or pending is someone else's and is forgotten. What a process
// that stops forgets, Repair drops.

// maxLeftovers bounds the entries a Store remembers; past it, new
// leftovers are left to Repair (and logged as such).
const maxLeftovers = 4096

// A leftover is an entry a release could not remove: the mapping of key
// to id, claimed for generation upTo or earlier.
type leftover struct {
	id   string
	key  index.Key
	upTo uint64
}

// leftovers is the Store's set of them.
type leftovers struct {
	mu sync.Mutex
	m  map[leftover]bool
}

// add remembers the mappings of keys to id (up to generation upTo) and
// reports whether all of them fit.
func (l *leftovers) add(id string, keys []index.Key, upTo uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[leftover]bool{}
	}
	for _, k := range keys {
		if len(l.m) >= maxLeftovers {
			return false
		}
		l.m[leftover{id, k, upTo}] = true
	}
	return true
}

// in returns the leftovers whose key bucket b holds.
func (l *leftovers) in(b *index.Bucket) []leftover {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []leftover
	for lo := range l.m {
		if covers(b, lo.key) {
			out = append(out, lo)
		}
	}
	return out
}

// forget drops los: they are done.
func (l *leftovers) forget(los []leftover) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, lo := range los {
		delete(l.m, lo)
	}
}

// len returns how many leftovers there are.
func (l *leftovers) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// leftBehind remembers what a release of the mappings of keys to id (up
// to generation upTo) could not remove, and logs it.
func (s *Store) leftBehind(ctx context.Context, id string, keys []index.Key, upTo uint64, err error) {
	s.logLeftBehind(ctx, s.left.add(id, keys, upTo), "id", id, "error", err)
}

// logLeftBehind logs a release that could not finish; kept says whether
// the Store remembers all it left.
func (s *Store) logLeftBehind(ctx context.Context, kept bool, args ...any) {
	if kept {
		s.opts.Logger.WarnContext(ctx, "cloudtokens: could not release index entries in time; they are dead, and this Store drops them with its next write of their bucket (Repair otherwise)", args...)
		return
	}
	s.opts.Logger.WarnContext(ctx, "cloudtokens: could not release index entries; they are dead and Repair drops them", args...)
}

// dropLeftovers removes from b, a bucket about to be written, the
// leftovers it holds that are still dead (see above). It returns the
// bucket (a changed copy, or b), whether it changed, and the leftovers
// that are done once the bucket is written: those it removed, those b
// no longer holds, and those that turned out not to be dead. docs
// memoises the holders' documents for the writing attempt.
func (s *Store) dropLeftovers(ctx context.Context, b *index.Bucket, docs map[string]*storedToken) (*index.Bucket, bool, []leftover) {
	if s.left.len() == 0 {
		return b, false, nil
	}
	var done []leftover
	var next *index.Bucket
	for _, lo := range s.left.in(b) {
		e, ok := b.Find(lo.key, lo.id)
		if !ok || e.Gen > lo.upTo {
			// Gone already, or claimed again by a later save.
			done = append(done, lo)
			continue
		}
		state, _, err := s.classify(ctx, e, docs)
		if err != nil {
			continue // try again with the next write
		}
		if state == ownerDead || state == ownerMissing {
			if next == nil {
				next = b.Clone()
			}
			next.RemoveEntry(e)
		}
		done = append(done, lo)
	}
	if next == nil {
		return b, false, done
	}
	return next, true, done
}
