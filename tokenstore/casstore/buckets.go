package casstore

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/index"
)

type cachedBucket struct {
	b       *index.Bucket
	version string
}

// bucketSnaps holds the buckets one operation has read or written, so that
// its writes to a bucket it has already read skip the read. One goroutine
// uses it; a nil bucketSnaps keeps nothing.
type bucketSnaps map[int]*cachedBucket

// keep holds b, which nobody may change any more (buckets are copied
// before they are modified).
func (sn bucketSnaps) keep(n int, b *index.Bucket, version string) {
	if sn != nil {
		sn[n] = &cachedBucket{b: b, version: version}
	}
}

// keptBuckets is how many buckets a Store without CacheIndex remembers,
// to keep its reads of them monotonic.
const keptBuckets = 64

func (s *Store) cachedBucket(n int) *cachedBucket {
	s.bucketsMu.Lock()
	defer s.bucketsMu.Unlock()
	return s.buckets[n]
}

// keepBucket remembers bucket n as read or written, unless the Store
// already knows a later generation of it. b must not change any more.
func (s *Store) keepBucket(n int, b *index.Bucket, version string) {
	s.bucketsMu.Lock()
	defer s.bucketsMu.Unlock()
	if c := s.buckets[n]; c != nil && c.b.Gen > b.Gen {
		return
	}
	if !s.opts.CacheIndex && len(s.buckets) >= keptBuckets {
		if _, ok := s.buckets[n]; !ok {
			for k := range s.buckets {
				delete(s.buckets, k)
				break
			}
		}
	}
	s.buckets[n] = &cachedBucket{b: b, version: version}
}

func (s *Store) forgetBucket(n int) {
	s.bucketsMu.Lock()
	defer s.bucketsMu.Unlock()
	delete(s.buckets, n)
}

// relearnLayout forgets the layout and the buckets this Store knows, so
// that the next lookup learns them again from bucket 0.
func (s *Store) relearnLayout() {
	s.layoutMu.Lock()
	if s.layout.fixed == 0 {
		s.layout.m = 1
	}
	s.layoutMu.Unlock()
	s.bucketsMu.Lock()
	clear(s.buckets)
	s.bucketsMu.Unlock()
}

// errIndexAbsent: the index has no bucket 0 yet, and the write that would
// create it must first find out whether the index was lost.
var errIndexAbsent = errors.New("casstore: the index does not exist")

type indexCheckedKey struct{}

// errNoBucket: a bucket that the layout says exists could not be read.
var errNoBucket = errors.New("casstore: index bucket missing")

// readBucket reads bucket n. An index without bucket 0 is empty: bucket 0
// then comes back empty with version "". So do the shards of a fixed
// layout, which are created by their first write. A missing linear bucket
// other than 0 is errNoBucket (wrapping tokenstore.ErrNotFound). A read
// that returns an older generation than the Store knows gives the known
// bucket. The result is kept in snaps.
//
// A bucket the Store knows exists (see expectBucket) that reads as
// missing is read again for Options.StaleReadWait before the answer is
// believed: a lagging replica does not show a bucket that was created
// moments ago (by a split, or the first save of a store).
func (s *Store) readBucket(ctx context.Context, n int, snaps bucketSnaps) (*index.Bucket, string, error) {
	var waitUntil time.Time
	for attempt := 0; ; attempt++ {
		obj, err := s.b.Read(ctx, IndexName(n))
		if errors.Is(err, tokenstore.ErrNotFound) && s.expectBucket(n) {
			if waitUntil.IsZero() {
				waitUntil = time.Now().Add(s.opts.StaleReadWait)
			}
			if time.Now().Before(waitUntil) {
				if err := backoff(ctx, attempt+2); err != nil {
					return nil, "", err
				}
				continue
			}
			if n == 0 {
				s.indexSeen.Store(false) // lost, not lagging
				s.forgetBucket(0)
			}
		}
		if errors.Is(err, tokenstore.ErrNotFound) {
			return s.absentBucket(n, snaps)
		}
		if err != nil {
			return nil, "", err
		}
		return s.admitBucket(n, obj.Value, obj.Version, snaps)
	}
}

// expectBucket reports whether bucket n is known to exist: a bucket of a
// linear layout other than 0 exists once the layout names it (a split
// creates the new bucket before any bucket names it), and bucket 0 once
// this Store has seen it.
func (s *Store) expectBucket(n int) bool {
	l := s.currentLayout()
	if l.fixed > 0 {
		return false
	}
	if n == 0 {
		return s.indexSeen.Load()
	}
	return n < l.m
}

// absentBucket is what readBucket answers for a bucket that does not
// exist.
func (s *Store) absentBucket(n int, snaps bucketSnaps) (*index.Bucket, string, error) {
	l := s.currentLayout()
	switch {
	case l.fixed > 0:
		b := index.NewFixedShard(n, l.fixed)
		snaps.keep(n, b, "")
		return b, "", nil
	case n == 0:
		b := index.NewBucket(0, 1)
		snaps.keep(n, b, "")
		return b, "", nil
	}
	return nil, "", fmt.Errorf("%w: %w: %s", errNoBucket, tokenstore.ErrNotFound, IndexName(n))
}

func (s *Store) admitBucket(n int, value []byte, version string, snaps bucketSnaps) (*index.Bucket, string, error) {
	b, err := index.Decode(value, n)
	if err != nil {
		return nil, "", err
	}
	if c := s.cachedBucket(n); c != nil && c.b.Gen > b.Gen {
		b, version = c.b.Clone(), c.version // a stale replica: a copy the caller may change
	}
	s.learn(b)
	s.keepBucket(n, b, version)
	snaps.keep(n, b, version)
	if n == 0 {
		s.indexSeen.Store(true)
	}
	return b, version, nil
}

// bucketFor returns the bucket that holds key k, read from the backend
// (or, with CacheIndex and cached true, from memory), following the
// layout as the buckets reveal it.
func (s *Store) bucketFor(ctx context.Context, k index.Key, snaps bucketSnaps, cached bool) (*index.Bucket, string, int, error) {
	relearned := false
	fromZero := false // the layout was learned from bucket 0 by this lookup
	for range index.MaxDepth + 3 {
		l := s.currentLayout()
		n := l.route(k)
		var b *index.Bucket
		var version string
		if c := s.cachedBucket(n); cached && s.opts.CacheIndex && c != nil {
			b, version = c.b, c.version
		} else if pb, pv, pn, ok := s.readPair(ctx, k, l, snaps, fromZero); ok {
			b, version, n = pb, pv, pn
		} else {
			var err error
			b, version, err = s.readBucket(ctx, n, snaps)
			if errors.Is(err, errNoBucket) && !relearned {
				// The layout this Store knows names a bucket that is not
				// there: the index was rebuilt smaller (Repair of a lost
				// bucket 0, in another process). Learn it again from
				// bucket 0, once.
				s.relearnLayout()
				relearned = true
				continue
			}
			if err != nil {
				return nil, "", n, err
			}
		}
		if covers(b, k) {
			return b, version, n, nil
		}
		s.learn(b)
		fromZero = n == 0 && l.fixed == 0 && l.m == 1
		if s.currentLayout().route(k) == n {
			return nil, "", n, fmt.Errorf("%w: bucket %d (depth %d, %d buckets) does not hold a key the layout sends to it", index.ErrLayout, n, b.Depth, b.Buckets)
		}
	}
	return nil, "", 0, fmt.Errorf("%w: no bucket holds the key", index.ErrLayout)
}

// readPair serves a lookup whose layout was just learned from bucket 0
// (fromZero: a new process, or one that had to learn it again) on a
// backend that reads several documents in one request (BatchReader).
// Bucket 0 records the bucket count at each power of two and whenever it
// is written for another reason, so splits made since may have moved the
// key from its bucket a to a's child in the current round: readPair reads
// both with one ReadMany request and returns the one that holds k, with
// ok true. It returns ok false, having read nothing, when the pair does
// not apply (the key's bucket is certain, or the backend reads one
// document per request), and when the pair read did not settle it (a
// failed request, a bucket missing that should be there, neither bucket
// holding k): the caller then reads one bucket at a time, as without it.
func (s *Store) readPair(ctx context.Context, k index.Key, l layout, snaps bucketSnaps, fromZero bool) (*index.Bucket, string, int, bool) {
	if !fromZero || s.batch < 2 || l.fixed > 0 || l.m < 2 {
		return nil, "", 0, false
	}
	h := index.Hash(k)
	a := index.LinearBucket(h, l.m)
	c := index.LinearBucket(h, 1<<bits.Len(uint(l.m-1))) // where k is once the round is complete
	if c == a {
		return nil, "", 0, false
	}
	res, err := s.b.ReadMany(ctx, []string{IndexName(a), IndexName(c)})
	if err != nil || len(res) != 2 || res[0].Err != nil {
		return nil, "", 0, false
	}
	parent, version, err := s.admitBucket(a, res[0].Value, res[0].Version, snaps)
	if err != nil {
		return nil, "", 0, false
	}
	if covers(parent, k) {
		return parent, version, a, true
	}
	// a is split: k is in c, which the split created before it rewrote a.
	if res[1].Err != nil {
		return nil, "", 0, false
	}
	child, cv, err := s.admitBucket(c, res[1].Value, res[1].Version, snaps)
	if err != nil || !covers(child, k) {
		return nil, "", 0, false
	}
	return child, cv, c, true
}

// readBucketAtLeast reads bucket n, known to be at generation minGen or
// later: a read of an earlier generation (a lagging replica, or this
// Store's memory of one) is made again for Options.StaleReadWait. After
// that the read is believed as it is (the bucket was lost and created
// again, with its generations starting over).
func (s *Store) readBucketAtLeast(ctx context.Context, n int, snaps bucketSnaps, minGen uint64) (*index.Bucket, string, error) {
	var waitUntil time.Time
	for attempt := 0; ; attempt++ {
		b, v, err := s.readBucket(ctx, n, snaps)
		if err != nil || b.Gen >= minGen {
			return b, v, err
		}
		if waitUntil.IsZero() {
			waitUntil = time.Now().Add(s.opts.StaleReadWait)
		}
		if time.Now().After(waitUntil) {
			s.forgetBucket(n) // what this Store remembers is from before
			delete(snaps, n)
			return s.readBucket(ctx, n, snaps)
		}
		if err := backoff(ctx, attempt+2); err != nil {
			return nil, "", err
		}
	}
}

// writeBucket writes b as the next generation of bucket n over version
// ("" creates it) and remembers it.
func (s *Store) writeBucket(ctx context.Context, n int, b *index.Bucket, version string) (string, error) {
	return s.writeBucketAs(ctx, n, b, version, false)
}

// writeBucketAs is writeBucket for a split's two writes (split true),
// which start the bucket's count of fresh versions anew.
func (s *Store) writeBucketAs(ctx context.Context, n int, b *index.Bucket, version string, split bool) (string, error) {
	lost := 0
	if b.Fixed && b.Buckets == 1 {
		// The one shard of a fixed layout is bucket 0 of a linear one:
		// written in the new format, the index can grow.
		b.Fixed, b.Format, b.Depth = false, index.FormatVersion, 0
	}
	if version == "" {
		b.Gen = max(b.Gen, s.incarnationGen())
	}
	b.Gen++
	if !b.Fixed {
		b.Buckets = max(b.Buckets, s.currentLayout().m, n+1)
		if window, limit := s.writeHistory(); limit > 0 {
			b.RecordWrite(s.now(), window, limit)
		}
		if q := s.quotas.VersionsPerDay; q > 0 {
			// A compare-and-swap this Store lost on the bucket made a
			// version too (AWS puts the version before it moves the
			// label): the bucket's count includes it.
			lost = s.lostVersions(n, 0)
			for range lost {
				b.RecordVersion(s.now(), q, false)
			}
			b.RecordVersion(s.now(), q, split)
		}
	}
	doc, err := b.Encode()
	if err != nil {
		return "", err
	}
	b.EncodedSize = len(doc)
	var v string
	if version == "" {
		v, err = s.create(ctx, IndexName(n), doc)
		if errors.Is(err, ErrDeleted) && s.restorer != nil {
			v, err = s.restoreBucket(ctx, n, b)
		}
	} else {
		v, err = s.update(ctx, IndexName(n), doc, version)
	}
	if err != nil {
		if version != "" && s.quotas.VersionsPerDay > 0 && errors.Is(err, ErrVersionMismatch) {
			s.lostVersions(n, 1)
		}
		return "", err
	}
	s.lostVersions(n, -lost)
	s.keepBucket(n, b, v)
	if n == 0 {
		s.indexSeen.Store(true)
	}
	return v, nil
}

// lostVersions adds d to the versions of bucket n that this Store's lost
// compare-and-swaps made and no write of it has counted yet, and returns
// the count.
func (s *Store) lostVersions(n, d int) int {
	s.queueMu.Lock()
	defer s.queueMu.Unlock()
	c := s.lost[n] + d
	if c <= 0 {
		delete(s.lost, n)
		return 0
	}
	s.lost[n] = c
	return c
}

// incarnationGen is the generation a newly created bucket starts from:
// the clock in nanoseconds. A bucket name can be created again (an index
// lost out of band and rebuilt by Repair, in this process or another), and
// a Store that cached the earlier bucket must take the new one for newer,
// not for a stale replica of the old one; counted one write at a time, an
// earlier bucket's generation stays far below the clock of any later
// creation (clocks skewed by more than the time between the two creations
// excepted).
func (s *Store) incarnationGen() uint64 {
	if ns := s.now().UnixNano(); ns > 0 {
		return uint64(ns)
	}
	return 0
}

// restoreBucket writes b over bucket n, whose name belongs to a deleted
// bucket (an index deleted out of band, with a recovery window): it
// restores the deleted bucket and replaces it with a compare-and-swap, at
// a generation above the old one, so that a Store that remembers the old
// bucket does not take the new one for a stale replica.
func (s *Store) restoreBucket(ctx context.Context, n int, b *index.Bucket) (string, error) {
	name := IndexName(n)
	s.opts.Logger.WarnContext(ctx, "cloudtokens: restoring a deleted index bucket to take its name back", "bucket", n)
	if err := s.restorer.Restore(ctx, name); err != nil {
		return "", fmt.Errorf("casstore: restoring deleted index bucket %d: %w", n, err)
	}
	var obj Object
	var err error
	waitUntil := time.Now().Add(s.opts.StaleReadWait)
	for attempt := 0; ; attempt++ {
		// The restore may take a moment to show.
		if obj, err = s.b.Read(ctx, name); !errors.Is(err, tokenstore.ErrNotFound) || time.Now().After(waitUntil) {
			break
		}
		if err := backoff(ctx, attempt+2); err != nil {
			return "", err
		}
	}
	if err != nil {
		return "", err
	}
	if old, derr := index.Decode(obj.Value, n); derr == nil && old.Gen >= b.Gen {
		b.Gen = old.Gen + 1
	}
	doc, err := b.Encode()
	if err != nil {
		return "", err
	}
	b.EncodedSize = len(doc)
	return s.update(ctx, name, doc, obj.Version)
}

// allBuckets reads every bucket of the index: bucket 0, then the others
// the layout names, again until no bucket names one more. Missing buckets
// are retried for a while (a lagging replica may not show a new one yet),
// then reported with errNoBucket.
func (s *Store) allBuckets(ctx context.Context, snaps bucketSnaps) ([]*index.Bucket, []string, error) {
	b0, v0, err := s.readBucket(ctx, 0, snaps)
	if err != nil {
		return nil, nil, err
	}
	buckets, versions := []*index.Bucket{b0}, []string{v0}
	waitUntil := time.Now().Add(s.opts.StaleReadWait)
	for attempt := 0; ; attempt++ {
		l := s.currentLayout()
		want := l.m
		if l.fixed > 0 {
			want = l.fixed
		}
		if len(buckets) >= want {
			return buckets, versions, nil
		}
		names := make([]string, 0, want-len(buckets))
		for n := len(buckets); n < want; n++ {
			names = append(names, IndexName(n))
		}
		res, err := s.b.ReadMany(ctx, names)
		if err != nil {
			return nil, nil, err
		}
		missing := false
		for i, r := range res {
			n := len(buckets)
			if errors.Is(r.Err, tokenstore.ErrNotFound) {
				if l.fixed > 0 {
					b := index.NewFixedShard(n, l.fixed)
					buckets, versions = append(buckets, b), append(versions, "")
					snaps.keep(n, b, "")
					continue
				}
				missing = true
				break
			}
			if r.Err != nil {
				return nil, nil, r.Err
			}
			b, v, err := s.admitBucket(n, r.Value, r.Version, snaps)
			if err != nil {
				return nil, nil, err
			}
			buckets, versions = append(buckets, b), append(versions, v)
			_ = i
		}
		if missing {
			if time.Now().After(waitUntil) {
				return nil, nil, fmt.Errorf("%w: %w: %s (run Repair to rebuild it)", errNoBucket, tokenstore.ErrNotFound, IndexName(len(buckets)))
			}
			if err := backoff(ctx, attempt+2); err != nil {
				return nil, nil, err
			}
		}
	}
}

// keysOfBucket groups keys by the bucket the layout routes them to, in
// bucket order.
func groupKeys(l layout, keys []index.Key) ([]int, map[int][]index.Key) {
	by := map[int][]index.Key{}
	for _, k := range keys {
		n := l.route(k)
		by[n] = append(by[n], k)
	}
	ns := make([]int, 0, len(by))
	for n := range by {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	return ns, by
}

// modifyKeys applies fn to the keys, bucket by bucket: fn gets a bucket
// and those of the keys that it holds. Keys that a bucket turns out not
// to hold (the index grew since the layout was learned) go round again.
func (s *Store) modifyKeys(ctx context.Context, keys []index.Key, snaps bucketSnaps, fn func(b *index.Bucket, keys []index.Key) (bool, error)) error {
	pending := keys
	for round := 0; len(pending) > 0; round++ {
		if round > index.MaxDepth+2 {
			return fmt.Errorf("%w: keys do not settle in a bucket", index.ErrLayout)
		}
		ns, by := groupKeys(s.currentLayout(), pending)
		pending = nil
		for _, n := range ns {
			var left []index.Key
			_, err := s.modifyBucket(ctx, n, snaps, func(b *index.Bucket) (bool, error) {
				var mine []index.Key
				left = left[:0]
				for _, k := range by[n] {
					if covers(b, k) {
						mine = append(mine, k)
					} else {
						left = append(left, k)
					}
				}
				if len(left) > 0 {
					s.learn(b)
				}
				if len(mine) == 0 {
					return false, nil
				}
				return fn(b, mine)
			})
			if errors.Is(err, index.ErrBucketFull) {
				// The keys do not fit: grow the index, then place them again.
				if serr := s.split(ctx); serr != nil {
					return fmt.Errorf("%w (splitting: %v)", err, serr)
				}
				pending = append(pending, by[n]...)
				continue
			}
			if err != nil {
				return err
			}
			pending = append(pending, left...)
		}
	}
	return nil
}
