package casstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/cloudtokens/cloudtokens/observe"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/index"
)

// Group commit: the goroutines of one process that change the same index
// bucket at the same time share one compare-and-swap. Each queues its
// change; the one that gets the bucket's lock applies every queued change
// to one copy of the bucket, in order, and writes it once. A bucket takes
// few writes a second on real clouds (GCP: 2 per secret; AWS: 100
// versions per secret a day), so a burst of sign-ups in one process costs
// about one write per round of the burst, not one per sign-up.

// A bucketChange is one goroutine's change to a bucket, queued for the
// next write of that bucket.
type bucketChange struct {
	ctx   context.Context
	snaps bucketSnaps
	fn    func(*index.Bucket) (bool, error)
	// checked: the operation knows the index is not lost (it checked, or
	// it is Repair), so it may create bucket 0.
	checked bool

	// Set by the writing goroutine, under the bucket's lock.
	done    bool
	written *index.Bucket
	err     error

	// Of the current attempt.
	changed bool
	fnErr   error
}

func (c *bucketChange) finish(written *index.Bucket, err error) {
	c.done, c.written, c.err = true, written, err
}

// errWriterGone is what a queued change gets when the goroutine that was
// writing it stopped (its context ended): the change is queued again.
var errWriterGone = errors.New("casstore: the goroutine writing this bucket change stopped")

// modifyBucket applies fn to bucket n and writes the result with a
// compare-and-swap, retrying with a fresh read on a version mismatch. The
// first attempt starts from the cached bucket or the one in snaps, when
// there is one. fn reports whether it changed the bucket; it may be
// called several times and must decide afresh each time. Changes that
// other goroutines of this process make to the same bucket at the same
// time are written with it (group commit, above). The bucket as written
// is returned, or nil when fn changed nothing.
func (s *Store) modifyBucket(ctx context.Context, n int, snaps bucketSnaps, fn func(*index.Bucket) (bool, error)) (*index.Bucket, error) {
	written, err := s.commit(ctx, n, snaps, fn)
	if errors.Is(err, errIndexAbsent) {
		// The first bucket of a new index, or of one that was lost: find
		// out which before creating it.
		repaired, rerr := s.rebuildLostIndex(ctx)
		if rerr != nil {
			return nil, rerr
		}
		if repaired {
			return nil, fmt.Errorf("%w: the lost index was rebuilt", errRetry)
		}
		written, err = s.commit(context.WithValue(ctx, indexCheckedKey{}, true), n, snaps, fn)
	}
	if err == nil && written != nil && ctx.Err() == nil {
		s.presplit(ctx)
	}
	if err == nil && written != nil && ctx.Err() == nil && s.splitWanted(written) {
		if serr := s.split(ctx); serr != nil && ctx.Err() == nil {
			s.opts.Logger.WarnContext(ctx, "cloudtokens: could not split an index bucket; the next write tries again", "bucket", n, "error", serr)
		}
	}
	return written, err
}

// commit queues fn for bucket n and waits until it is written, by this
// goroutine or by another that got the bucket's lock first.
func (s *Store) commit(ctx context.Context, n int, snaps bucketSnaps, fn func(*index.Bucket) (bool, error)) (*index.Bucket, error) {
	c := &bucketChange{ctx: ctx, snaps: snaps, fn: fn,
		checked: ctx.Value(indexCheckedKey{}) != nil || ctx.Value(repairingKey{}) != nil}
	mu := &s.bucketMu[n%len(s.bucketMu)]
	for {
		s.queueMu.Lock()
		s.queues[n] = append(s.queues[n], c)
		s.queueMu.Unlock()

		mu.Lock()
		if !c.done {
			s.queueMu.Lock()
			batch := s.queues[n]
			delete(s.queues, n)
			s.queueMu.Unlock()
			s.modifyLocked(ctx, n, batch)
		}
		mu.Unlock()
		if !errors.Is(c.err, errWriterGone) {
			return c.written, c.err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		*c = bucketChange{ctx: c.ctx, snaps: c.snaps, fn: c.fn, checked: c.checked}
	}
}

// modifyLocked writes the changes of batch to bucket n, with the bucket's
// lock held, and finishes every change of the batch. ctx is the writing
// goroutine's.
func (s *Store) modifyLocked(ctx context.Context, n int, batch []*bucketChange) {
	// minGen: the bucket is known to be at least at this generation (an
	// operation read or wrote it, or a compare-and-swap over an earlier
	// one failed). A read below it is a lagging replica, and a decision
	// such as "nothing to release" must not be made on it.
	var minGen uint64
	var newest *cachedBucket // the newest copy an operation of the batch has
	for _, c := range batch {
		if sn := c.snaps[n]; sn != nil {
			minGen = max(minGen, sn.b.Gen)
			if newest == nil || sn.b.Gen > newest.b.Gen {
				newest = sn
			}
		}
	}
	stop := func(err error) {
		for _, c := range batch {
			if c.done {
				continue
			}
			if c.ctx != ctx && c.ctx.Err() == nil && ctx.Err() != nil {
				c.finish(nil, errWriterGone)
			} else {
				c.finish(nil, err)
			}
		}
	}
	var last error
	fresh := true // whether the last attempt started from a read
	// The batch's changes, and the leftovers of releases that ran out of
	// time that the bucket holds (leftovers.go).
	docs := map[string]*storedToken{}
	var dropped []leftover
	build := func(b *index.Bucket) (*index.Bucket, bool) {
		next, changed := apply(b, batch)
		next, more, done := s.dropLeftovers(ctx, next, docs)
		dropped = done
		return next, changed || more
	}
	for attempt := range s.opts.MaxAttempts {
		batch = s.pending(batch)
		if len(batch) == 0 {
			return
		}
		if fresh {
			if err := backoff(ctx, attempt); err != nil {
				stop(err)
				return
			}
		}
		var b *index.Bucket
		var version string
		fromMemory := false
		if attempt == 0 {
			// The newest copy this process has: an operation's own, or
			// the one this process last read or wrote.
			c := newest
			if cc := s.cachedBucket(n); cc != nil && (c != nil && cc.b.Gen > c.b.Gen || c == nil && s.guessFromMemory()) {
				c = cc
			}
			if c != nil {
				b, version, fromMemory = c.b, c.version, true
			}
		}
		if !fromMemory {
			var err error
			if b, version, err = s.readBucketAtLeast(ctx, n, nil, minGen); err != nil {
				stop(err)
				return
			}
		}
		fresh = !fromMemory
		next, changed := build(b)
		if !changed && fromMemory {
			// "Nothing to change" in a remembered bucket may only mean
			// that the memory is stale: decide again on a fresh read.
			var err error
			if b, version, err = s.readBucketAtLeast(ctx, n, nil, max(minGen, b.Gen)); err != nil {
				stop(err)
				return
			}
			fresh = true
			next, changed = build(b)
		}
		if !changed {
			// Nothing to write: every decision stands on the bucket read.
			for _, c := range batch {
				c.snaps.keep(n, b, version)
				c.finish(nil, c.fnErr)
			}
			return
		}
		if version == "" && n == 0 && !next.Fixed {
			// Creating bucket 0: only operations that checked that the
			// index is not lost may (modifyBucket checks for the others).
			unchecked := false
			for _, c := range batch {
				if !c.checked {
					c.finish(nil, errIndexAbsent)
					unchecked = true
				}
			}
			if unchecked {
				fresh = false
				continue
			}
		}
		base := next.Gen
		newVersion, err := s.writeBucket(ctx, n, next, version)
		if err == nil {
			s.left.forget(dropped)
			for _, c := range batch {
				c.snaps.keep(n, next, newVersion)
				switch {
				case c.fnErr != nil:
					c.finish(nil, c.fnErr)
				case c.changed:
					c.finish(next, nil)
				default:
					c.finish(nil, nil)
				}
			}
			return
		}
		if !errors.Is(err, ErrVersionMismatch) && !errors.Is(err, ErrExists) && !errors.Is(err, tokenstore.ErrNotFound) && !errors.Is(err, ErrThrottled) {
			stop(err)
			return
		}
		if n == 0 && errors.Is(err, ErrExists) {
			s.indexSeen.Store(true) // the read that missed it lagged
		}
		if errors.Is(err, ErrVersionMismatch) && version != "" {
			minGen = max(minGen, base+1) // someone wrote after the copy we had
		} else {
			s.forgetBucket(n)
		}
		for _, c := range batch {
			delete(c.snaps, n)
		}
		newest = nil
		last = err
		s.emit(ctx, observe.Event{Kind: observe.BucketRetry, Bucket: n, Attempt: attempt + 1, Err: err})
	}
	stop(conflict(fmt.Sprintf("index bucket %d update", n), s.opts.MaxAttempts, last))
}

// pending drops the changes that are done or whose operation's context
// ended, finishing the latter with the context's error.
func (s *Store) pending(batch []*bucketChange) []*bucketChange {
	out := batch[:0]
	for _, c := range batch {
		if c.done {
			continue
		}
		if err := c.ctx.Err(); err != nil {
			c.finish(nil, err)
			continue
		}
		out = append(out, c)
	}
	return out
}

// apply applies the changes of batch to a copy of b, one after the other,
// each to the result of those before it: a change whose fn fails leaves
// the copy as it was. It reports whether any change changed it.
func apply(b *index.Bucket, batch []*bucketChange) (*index.Bucket, bool) {
	changed := false
	for _, c := range batch {
		next := b.Clone()
		c.changed, c.fnErr = c.fn(next)
		if c.fnErr != nil || !c.changed {
			c.changed = false
			continue
		}
		b, changed = next, true
	}
	return b, changed
}
