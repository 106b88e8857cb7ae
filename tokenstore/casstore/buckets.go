package casstore

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"time"

	"github.com/cloudtokens/cloudtokens/observe"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/index"
)

// layout is what the Store knows of the shape of the index: a linear
// layout of m buckets (m only ever grows, and is learned from the bucket
// documents it reads), or a fixed format-1 layout of shards.
type layout struct {
	fixed int // > 0: a fixed layout of that many shards
	m     int // linear: the number of buckets known, at least 1
}

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

func (s *Store) currentLayout() layout {
	s.layoutMu.Lock()
	defer s.layoutMu.Unlock()
	return s.layout
}

// learn takes what a bucket document says about the layout.
func (s *Store) learn(b *index.Bucket) {
	s.layoutMu.Lock()
	defer s.layoutMu.Unlock()
	if b.Fixed {
		s.layout.fixed = b.Buckets
		return
	}
	s.layout.fixed = 0
	s.layout.m = max(s.layout.m, b.Buckets)
}

// grow records a split this Store confirmed.
func (s *Store) grow(m int) {
	s.layoutMu.Lock()
	defer s.layoutMu.Unlock()
	s.layout.m = max(s.layout.m, m)
}

// route returns the bucket that holds k in l.
func (l layout) route(k index.Key) int {
	if l.fixed > 0 {
		return index.FixedRoute(k, l.fixed)
	}
	return index.LinearBucket(index.Hash(k), l.m)
}

// covers reports whether bucket b holds key k.
func covers(b *index.Bucket, k index.Key) bool {
	if b.Fixed {
		return index.FixedRoute(k, b.Buckets) == b.Number
	}
	return b.Covers(index.Hash(k))
}

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
func (s *Store) readBucket(ctx context.Context, n int, snaps bucketSnaps) (*index.Bucket, string, error) {
	obj, err := s.b.Read(ctx, IndexName(n))
	if errors.Is(err, tokenstore.ErrNotFound) {
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
	if err != nil {
		return nil, "", err
	}
	return s.admitBucket(n, obj.Value, obj.Version, snaps)
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
	return b, version, nil
}

// bucketFor returns the bucket that holds key k, read from the backend
// (or, with CacheIndex and cached true, from memory), following the
// layout as the buckets reveal it.
func (s *Store) bucketFor(ctx context.Context, k index.Key, snaps bucketSnaps, cached bool) (*index.Bucket, string, int, error) {
	for range index.MaxDepth + 2 {
		n := s.currentLayout().route(k)
		var b *index.Bucket
		var version string
		if c := s.cachedBucket(n); cached && s.opts.CacheIndex && c != nil {
			b, version = c.b, c.version
		} else {
			var err error
			if b, version, err = s.readBucket(ctx, n, snaps); err != nil {
				return nil, "", n, err
			}
		}
		if covers(b, k) {
			return b, version, n, nil
		}
		s.learn(b)
		if s.currentLayout().route(k) == n {
			return nil, "", n, fmt.Errorf("%w: bucket %d (depth %d, %d buckets) does not hold a key the layout sends to it", index.ErrLayout, n, b.Depth, b.Buckets)
		}
	}
	return nil, "", 0, fmt.Errorf("%w: no bucket holds the key", index.ErrLayout)
}

// modifyBucket applies fn to bucket n and writes the result with a
// compare-and-swap, retrying with a fresh read on a version mismatch. The
// first attempt starts from the cached bucket or the one in snaps, when
// there is one. fn reports whether it changed the bucket; it may be
// called several times and must decide afresh each time. The bucket as
// written (or as last read, when fn changed nothing) is returned.
func (s *Store) modifyBucket(ctx context.Context, n int, snaps bucketSnaps, fn func(*index.Bucket) (bool, error)) (*index.Bucket, error) {
	mu := &s.bucketMu[n%len(s.bucketMu)]
	mu.Lock()
	written, err := s.modifyLocked(ctx, n, snaps, fn)
	mu.Unlock()
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
		mu.Lock()
		written, err = s.modifyLocked(context.WithValue(ctx, indexCheckedKey{}, true), n, snaps, fn)
		mu.Unlock()
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

func (s *Store) modifyLocked(ctx context.Context, n int, snaps bucketSnaps, fn func(*index.Bucket) (bool, error)) (*index.Bucket, error) {
	var last error
	fresh := true // whether the last attempt started from a read
	for attempt := range s.opts.MaxAttempts {
		if fresh {
			if err := backoff(ctx, attempt); err != nil {
				return nil, err
			}
		}
		var b *index.Bucket
		var version string
		fromMemory := false
		if attempt == 0 {
			// The newest copy this process has: the operation's own, or
			// the one this process last read or wrote.
			c := snaps[n]
			if cc := s.cachedBucket(n); cc != nil && (c != nil && cc.b.Gen > c.b.Gen || c == nil && s.guessFromMemory()) {
				c = cc
			}
			if c != nil {
				b, version, fromMemory = c.b.Clone(), c.version, true
			}
		}
		if !fromMemory {
			var err error
			if b, version, err = s.readBucket(ctx, n, snaps); err != nil {
				return nil, err
			}
			b = b.Clone()
		}
		fresh = !fromMemory
		changed, err := fn(b)
		if err == nil && !changed && fromMemory {
			// "Nothing to change" in a remembered bucket may only mean
			// that the memory is stale: decide again on a fresh read.
			if b, version, err = s.readBucket(ctx, n, snaps); err != nil {
				return nil, err
			}
			b = b.Clone()
			fresh = true
			changed, err = fn(b)
		}
		if err != nil {
			return nil, err
		}
		if !changed {
			return nil, nil
		}
		if version == "" && n == 0 && !b.Fixed && ctx.Value(indexCheckedKey{}) == nil && ctx.Value(repairingKey{}) == nil {
			return nil, errIndexAbsent
		}
		newVersion, err := s.writeBucket(ctx, n, b, version)
		if err == nil {
			snaps.keep(n, b, newVersion)
			return b, nil
		}
		if !errors.Is(err, ErrVersionMismatch) && !errors.Is(err, ErrExists) && !errors.Is(err, tokenstore.ErrNotFound) {
			return nil, err
		}
		s.forgetBucket(n)
		delete(snaps, n)
		last = err
		s.emit(ctx, observe.Event{Kind: observe.BucketRetry, Bucket: n, Attempt: attempt + 1, Err: err})
	}
	return nil, conflict(fmt.Sprintf("index bucket %d update", n), s.opts.MaxAttempts, last)
}

// writeBucket writes b as the next generation of bucket n over version
// ("" creates it) and remembers it.
func (s *Store) writeBucket(ctx context.Context, n int, b *index.Bucket, version string) (string, error) {
	b.Gen++
	if !b.Fixed {
		b.Buckets = max(b.Buckets, s.currentLayout().m, n+1)
		if window, limit := s.writeHistory(); limit > 0 {
			b.RecordWrite(s.now(), window, limit)
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
	} else {
		v, err = s.update(ctx, IndexName(n), doc, version)
	}
	if err != nil {
		return "", err
	}
	s.keepBucket(n, b, v)
	return v, nil
}

// guessFromMemory reports whether a bucket write may start from the copy
// this process last knew rather than from a read: always with CacheIndex;
// otherwise only where a failed guess costs nothing but a retry (on AWS a
// failed compare-and-swap still creates a version, which counts against
// the secret's daily quota).
func (s *Store) guessFromMemory() bool {
	return s.opts.CacheIndex || s.quotas.VersionsPerDay == 0
}

// writeHistory returns how long a bucket keeps its write times for the
// backend's quotas, and how many (0: none).
func (s *Store) writeHistory() (time.Duration, int) {
	switch {
	case s.quotas.VersionsPerDay > 0:
		return 24 * time.Hour, s.quotas.VersionsPerDay
	case s.quotas.WritesPerSecond > 0:
		return time.Minute, 64
	}
	return 0, 0
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
			if attempt >= 5 {
				return nil, nil, fmt.Errorf("%w: %w: %s (run Repair to rebuild it)", errNoBucket, tokenstore.ErrNotFound, IndexName(len(buckets)))
			}
			if err := backoff(ctx, attempt+2); err != nil {
				return nil, nil, err
			}
		}
	}
}

// splitWanted reports whether bucket b, just written, should make the
// index grow: it is over index.SplitSize, or its recent write rate,
// scaled to the whole index, would take the busiest buckets (those not
// yet split in the current round, with twice the share of the others) past
// half of the backend's quota: half the versions a secret may get in a
// day (AWS), half the writes a second (GCP, measured over the last
// minute). It stops when the load is spread thin enough.
func (s *Store) splitWanted(b *index.Bucket) bool {
	if b.Fixed || b.Depth >= index.MaxDepth {
		return false
	}
	size := b.EncodedSize
	if size == 0 {
		size = b.Size()
	}
	if size > index.SplitSize {
		return true
	}
	m := s.currentLayout().m
	busiest := float64(int(1) << (bits.Len(uint(m)) - 1)) // an unsplit bucket's share is 1/2^L
	scale := float64(int(1)<<b.Depth) / busiest
	// A daily quota is a count: the versions of the last 24 hours. Two
	// measures of the load on the bucket's share of the index, scaled to
	// the busiest share: its count of the last 24 hours (which sees a
	// burst), and its recent rate, projected over a day (which sees a
	// sustained load long before its count does; it needs a minute of
	// writes, so that a short burst does not make the index grow for good).
	// A split deals the parent's history between the halves, so both stay
	// measures of the bucket's share, and growth stops once the busiest
	// share is under half the quota.
	if q := s.quotas.VersionsPerDay; q > 0 {
		limit := float64(q) / 2
		if c := b.WritesSince(s.now().Add(-24 * time.Hour)); c >= 8 && float64(c)*scale > limit {
			return true
		}
		if r := recentRate(b.Writes); r*scale*86400 > limit {
			return true
		}
	}
	// A per-second quota is measured over a minute (GCP also has a per-
	// minute one), so that a burst does not make the index grow for good.
	if q := s.quotas.WritesPerSecond; q > 0 && float64(b.WritesSince(s.now().Add(-time.Minute)))/60*scale > q/2 {
		return true
	}
	return false
}

// recentRate estimates writes a second from the last write times (epoch
// seconds, oldest first): 0 unless at least 8 of them span a minute.
func recentRate(w []int64) float64 {
	w = w[max(len(w)-32, 0):]
	if len(w) < 8 || w[len(w)-1]-w[0] < 60 {
		return 0
	}
	return float64(len(w)-1) / float64(w[len(w)-1]-w[0])
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

// presplit grows a new linear index to Options.IndexShards buckets.
func (s *Store) presplit(ctx context.Context) {
	for range s.opts.IndexShards {
		l := s.currentLayout()
		if l.fixed > 0 || l.m >= s.opts.IndexShards {
			return
		}
		if err := s.split(ctx); err != nil {
			s.opts.Logger.WarnContext(ctx, "cloudtokens: could not pre-split the index", "error", err)
			return
		}
	}
}
