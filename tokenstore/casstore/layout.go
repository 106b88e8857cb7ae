package casstore

import (
	"context"
	"math/bits"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore/index"
)

// layout is what the Store knows of the shape of the index: a linear
// layout of m buckets (m only ever grows, and is learned from the bucket
// documents it reads), or a fixed format-1 layout of shards.
type layout struct {
	fixed int // > 0: a fixed layout of that many shards
	m     int // linear: the number of buckets known, at least 1
}

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

// splitWanted reports whether bucket b, just written, should make the
// index grow: it is over index.SplitSize, or its recent write rate,
// scaled to the whole index, would take the busiest buckets (those not
// yet split in the current round, with twice the share of the others) past
// half of the backend's quota: half the versions a secret may get in a
// day (AWS), half the writes a second (GCP, measured over the last
// minute); or, under a daily quota, its own document takes a burst
// (burstWanted). It stops when the load is spread thin enough.
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
	// A daily quota is a count: the versions of the last 24 hours. A
	// burst is measured on the bucket's own document (burstWanted); two
	// measures of the load on the bucket's share of the index, scaled to
	// the busiest share: its count of the last 24 hours (which sees a
	// burst), and its recent rate, projected over a day (which sees a
	// sustained load long before its count does; it needs a minute of
	// writes, so that a short burst does not make the index grow for good).
	// A split deals the parent's history between the halves, so both stay
	// measures of the bucket's share, and growth stops once the busiest
	// share is under half the quota.
	if q := s.quotas.VersionsPerDay; q > 0 {
		if s.burstWanted(b, q) {
			return true
		}
		limit := float64(q) / 2
		if c := b.WritesSince(s.now().Add(-24 * time.Hour)); c >= 8 && float64(c)*scale > limit {
			return true
		}
		if r := recentRate(b.Writes); r*scale*86400 > limit {
			return true
		}
	}
	// A per-second quota is measured over the last rateWindow (GCP also
	// has a per-minute one), so that a moment's burst does not make the
	// index grow for good.
	if q := s.quotas.WritesPerSecond; q > 0 && float64(b.WritesSince(s.now().Add(-rateWindow)))/rateWindow.Seconds()*scale > q/2 {
		return true
	}
	return false
}

// burstWanted reports whether bucket b, just written, takes a burst of
// writes that the index must grow under before the document's own
// versions near the daily quota q. A split deals a bucket's share of the
// load, but not the versions its document already has: under a burst
// (many writes within the day, before any rate can be measured) the
// oldest buckets, split first in every round, would add up versions
// round after round (206 sign-ups in a minute exhausted bucket 0 of a new
// store before this rule). So the index grows a round whenever a bucket
// has taken, in fresh writes (since its last split) within the last hour,
// a tenth (burstShare) of its document's headroom (90% of the quota less
// its versions of the last 24 hours): the oldest documents then spend a
// shrinking part of what is left in each round while the rounds,
// doubling, take ever more writes. Measured on a new store, one sign-up
// after the other within a minute (casstoretest.QuotaBackend): 10
// sign-ups make 2 buckets, 100 make 29, 1,000 make 305, 10,000 make 3,468
// with at most 92 versions of one secret, and the 19,275th is refused. A
// smaller share costs fewer buckets per burst but takes less (a sixth:
// 16 buckets for 100, the 6,714th refused). Several processes writing at
// once take less, because the splits (one at a time, in bucket order)
// fall behind their writers and each lost compare-and-swap is a version
// too: 4 processes × 16 goroutines, 250 sign-ups, 60–74 versions of the
// busiest secret in 10 runs (TestScaleBurstOfProcessesWithinAWSQuota),
// while 1,000 had a write refused. A steady load spreads its writes over
// the day and seldom fills an hour this way (the rate measures below
// govern it).
func (s *Store) burstWanted(b *index.Bucket, q int) bool {
	now := s.now()
	all, _ := b.VersionsSince(now.Add(-24 * time.Hour))
	_, fresh := b.VersionsSince(now.Add(-time.Hour))
	headroom := float64(q)*0.9 - float64(all)
	return float64(fresh) >= max(burstFresh, headroom/burstShare)
}

const (
	// burstShare: a bucket may take 1/burstShare of its headroom in fresh
	// writes before the index grows a round (see burstWanted).
	burstShare = 10
	// burstFresh: the fewest fresh writes that make the index grow.
	burstFresh = 2
)

// rateWindow is how far back a per-second write quota is measured.
const rateWindow = 30 * time.Second

// recentRate estimates writes a second from the last write times (epoch
// seconds, oldest first): 0 unless at least 8 of them span a minute.
func recentRate(w []int64) float64 {
	w = w[max(len(w)-32, 0):]
	if len(w) < 8 || w[len(w)-1]-w[0] < 60 {
		return 0
	}
	return float64(len(w)-1) / float64(w[len(w)-1]-w[0])
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
