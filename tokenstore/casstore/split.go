package casstore

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"time"

	"github.com/cloudtokens/cloudtokens/observe"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/index"
)

// split grows a linear index by one bucket: with m buckets it divides
// bucket p = m - 2^L into p and a new bucket m, online, while other
// processes read and write. It costs two writes:
//
//  1. the child bucket m is created holding the parent's entries that
//     move, with From set to the generation of the parent they were
//     copied from (or, when a crashed or concurrent split left the child
//     behind, brought up to date with a compare-and-swap when its copy is
//     older than the parent read);
//  2. the parent, still at that generation, is rewritten one level deeper
//     without the moved entries, with a compare-and-swap. That write is
//     the split: before it the parent holds every key and no reader is
//     sent to the child; after it the child holds exactly the moved
//     entries, because the parent did not change in between.
//
// Any write to the parent in between (a claim, a release) makes step 2
// fail; the split then starts again from a fresh read of the parent. A
// process that dies between the steps leaves a child that nobody reads
// (readers learn of bucket m only from buckets written by step 2 or
// later); the next split finds it and brings it up to date. A stale read
// of the parent cannot confirm a split (step 2 is conditional) and cannot
// overwrite a confirmed child (a child is only rewritten from a parent
// generation newer than the one it was copied from, and once the parent
// is deeper no such generation exists at its old depth).
func (s *Store) split(ctx context.Context) error {
	var last error
	for attempt := range s.opts.MaxAttempts {
		if err := backoff(ctx, attempt); err != nil {
			return err
		}
		l := s.currentLayout()
		if l.fixed > 0 {
			return nil
		}
		p, c := index.SplitNext(l.m)
		if index.LinearDepth(p, l.m) >= index.MaxDepth {
			return nil
		}
		err := s.splitOnce(ctx, p, c, l.m)
		if err == nil || !retryable(err) {
			return err
		}
		last = err
	}
	return conflict("index split", s.opts.MaxAttempts, last)
}

func (s *Store) splitOnce(ctx context.Context, p, c, m int) error {
	unlock := s.lockBuckets(p, c)
	parent, pv, err := s.readBucket(ctx, p, nil)
	if err != nil {
		unlock()
		return err
	}
	depth := index.LinearDepth(p, m)
	switch {
	case parent.Depth > depth:
		unlock()
		return nil // split already (our layout was behind; reading it taught us)
	case parent.Depth < depth:
		unlock()
		return fmt.Errorf("%w: bucket %d has depth %d, the layout of %d buckets says %d", index.ErrLayout, p, parent.Depth, m, depth)
	}
	next := parent.Clone()
	child := &index.Bucket{Format: index.FormatVersion, Number: c, Buckets: c + 1, From: parent.Gen}
	child.Entries = next.Split(index.EntryHash)
	child.Depth = next.Depth
	// Each half had about half of the writes: deal the history between
	// them, so that both measure the rate of their own share at once.
	next.Writes, child.Writes = halve(parent.Writes)

	obj, err := s.b.Read(ctx, IndexName(c))
	switch {
	case errors.Is(err, tokenstore.ErrNotFound):
		_, err = s.writeBucketAs(ctx, c, child, "", true)
	case err != nil:
	default:
		var old *index.Bucket
		if old, err = index.Decode(obj.Value, c); err != nil {
			break
		}
		switch {
		case old.From > parent.Gen:
			err = fmt.Errorf("%w: the parent read is older than the child's copy", errRetry)
		case old.From < parent.Gen:
			child.Gen, child.Versions = old.Gen, old.Versions
			_, err = s.writeBucketAs(ctx, c, child, obj.Version, true)
		}
	}
	if err != nil {
		unlock()
		return err
	}
	next.Buckets = c + 1
	_, err = s.writeBucketAs(ctx, p, next, pv, true)
	unlock()
	if err != nil {
		return err
	}
	s.grow(c + 1)
	s.opts.Logger.DebugContext(ctx, "cloudtokens: index grew", "buckets", c+1, "split", p)
	s.emit(ctx, observe.Event{Kind: observe.Split, Bucket: p, Buckets: c + 1})
	if p != 0 {
		s.hintBuckets(ctx, c+1)
	}
	return nil
}

// hintBuckets writes the bucket count m into bucket 0, where a process
// that knows nothing of the layout starts (bucket 0's own split records it
// anyway). Then that process's first lookup reads bucket 0, the key's
// bucket and the token, and no more: without the count it could find the
// key's bucket split since and read its child too.
//
// Bucket 0 takes the count at every split where the write costs nothing
// against a quota: always on backends without one (Vault); under a
// per-second quota (GCP) unless bucket 0 was written within the last 2/q
// seconds, so that the count's writes take at most half of bucket 0's
// rate, and alone never make it split (splitWanted's rate rule wants more
// than half); and never under a daily version quota (AWS: every write is
// a version of bucket 0, and a burst makes thousands of splits a day; the
// AWS adapter reads a key's two possible buckets in one request instead,
// see readPair). At a power of two (a round of splits begins) it always
// takes it: one write per round. Every other write of bucket 0 records
// the count its writer knows too. Best effort.
func (s *Store) hintBuckets(ctx context.Context, m int) {
	round := bits.OnesCount(uint(m)) == 1
	if !round && (s.quotas.VersionsPerDay > 0 || s.batch > 1) {
		return
	}
	_, err := s.commit(ctx, 0, nil, func(b *index.Bucket) (bool, error) {
		if b.Fixed || b.Buckets >= m {
			return false, nil
		}
		if q := s.quotas.WritesPerSecond; !round && q > 0 && b.WritesSince(s.now().Add(-time.Duration(2*float64(time.Second)/q))) > 0 {
			return false, nil // written within the last 2/q seconds
		}
		b.Buckets = m
		return true, nil
	})
	if err != nil {
		s.opts.Logger.DebugContext(ctx, "cloudtokens: could not update the layout hint of bucket 0", "error", err)
	}
}

// lockBuckets takes this process's locks of buckets a and b.
func (s *Store) lockBuckets(a, b int) func() {
	ma, mb := &s.bucketMu[a%len(s.bucketMu)], &s.bucketMu[b%len(s.bucketMu)]
	if ma == mb {
		ma.Lock()
		return ma.Unlock
	}
	if a%len(s.bucketMu) > b%len(s.bucketMu) {
		ma, mb = mb, ma
	}
	ma.Lock()
	mb.Lock()
	return func() { mb.Unlock(); ma.Unlock() }
}

// halve deals a write history between the two halves of a split bucket.
func halve(w []int64) (a, b []int64) {
	for i, t := range w {
		if i%2 == 0 {
			a = append(a, t)
		} else {
			b = append(b, t)
		}
	}
	return a, b
}
