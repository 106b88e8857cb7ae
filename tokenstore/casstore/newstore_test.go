package casstore_test

import (
	"math/bits"
	"strings"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore/casstoretest"
	"github.com/cloudtokens/cloudtokens/tokenstore/index"
)

// batchMemory is a MemoryBackend whose ReadMany reads up to 20 documents
// in one request, as the AWS adapter's does (casstore.BatchReader).
type batchMemory struct{ *casstore.MemoryBackend }

func (batchMemory) BatchSize() int { return 20 }

// TestNewStoreFindsInThreeRequests: a process that knows nothing of the
// index layout (every cold start of a serverless function) finds a token
// by user name in at most 3 requests: bucket 0, the key's bucket, the
// token. The store has grown from one bucket with default options and
// stands in the middle of a round of splits, where a key's bucket may
// have been split after bucket 0 was last written. Two ways:
//   - without a write quota, bucket 0 takes the bucket count at every
//     split;
//   - under AWS's daily version quota it must not (a burst makes
//     thousands of splits a day), and a backend that reads several
//     documents a request reads the key's bucket and its child at once.
func TestNewStoreFindsInThreeRequests(t *testing.T) {
	for _, tc := range []struct {
		name        string
		quota       casstore.Quotas
		batch       bool
		step        time.Duration // between sign-ups, on a simulated clock
		countInZero bool          // bucket 0 must record the bucket count
	}{
		{"no quota: the count in bucket 0", casstore.Quotas{}, false, 0, true},
		{"GCP write rate: the count in bucket 0", casstore.Quotas{WritesPerSecond: 1}, false, 5 * time.Second, true},
		{"AWS quota and batch reads: both buckets in one request", casstore.Quotas{VersionsPerDay: casstoretest.AWSVersionsPerDay}, true, 5 * time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			mem := casstore.NewMemoryBackend()
			var b casstore.Backend = mem
			if tc.batch {
				b = batchMemory{mem}
			}
			clock, q := underQuota(b)
			if tc.quota.VersionsPerDay > 0 {
				b = q
			}
			opts := casstore.Options{Clock: clock.Now, Quotas: &tc.quota}
			s := casstore.New(b, opts)
			// Sign up users until the index is in the middle of a round
			// and (under AWS's quota, where bucket 0 is not written for
			// it) bucket 0 records fewer buckets than there are.
			zero := func() *index.Bucket {
				obj, err := mem.Read(ctx, casstore.IndexName(0))
				if err != nil {
					t.Fatal(err)
				}
				z, err := index.Decode(obj.Value, 0)
				if err != nil {
					t.Fatal(err)
				}
				return z
			}
			buckets := func() int {
				names, err := mem.List(ctx)
				if err != nil {
					t.Fatal(err)
				}
				m := 0
				for _, name := range names {
					if strings.HasPrefix(name, "index-") {
						m++
					}
				}
				return m
			}
			// At least 4 splits into a round, and under AWS's quota 2
			// buckets that bucket 0 does not know of.
			midRound := func() bool {
				m := buckets()
				return m-1<<(bits.Len(uint(m))-1) >= 4 && (tc.countInZero || m-zero().Buckets >= 2)
			}
			// Where bucket 0 takes the count, stop right after a sign-up
			// that split a bucket without writing bucket 0 for its keys:
			// then only the count's own write can have told bucket 0.
			splitElsewhere := func(tok *tokenstore.Token, before, after int) bool {
				if after == before {
					return false
				}
				for _, k := range index.KeysOf(tok) {
					if k.Kind != index.KindID && index.LinearBucket(index.Hash(k), before) == 0 {
						return false
					}
				}
				return true
			}
			n, last := 0, false
			for n < 600 || (!tc.countInZero && n%10 != 0) || (tc.countInZero && !last) || !midRound() {
				if n == 5000 {
					t.Fatalf("no stopping point in %d sign-ups", n)
				}
				before, tok := buckets(), zohoToken(n)
				if err := s.SaveToken(ctx, tok); err != nil {
					t.Fatalf("sign-up %d: %v", n, err)
				}
				last = splitElsewhere(tok, before, buckets())
				clock.Advance(tc.step)
				n++
			}
			rep, err := s.Check(ctx)
			if err != nil || !rep.OK() || rep.Tokens != n {
				t.Fatalf("Check: %v (%v), want %d tokens", rep.String(), err, n)
			}
			m := rep.Buckets
			t.Logf("%d tokens, %d buckets; bucket 0 records %d", n, m, zero().Buckets)
			if tc.countInZero && zero().Buckets != m {
				t.Errorf("bucket 0 records %d buckets, the index has %d", zero().Buckets, m)
			}

			pairs, three, moved := 0, 0, 0
			for i := 0; i < n; i += 5 {
				query := &tokenstore.Token{UserName: zohoToken(i).UserName}
				if k, _ := index.QueryKey(query); index.LinearBucket(index.Hash(k), m) >= zero().Buckets {
					moved++ // in a bucket that bucket 0 does not know of
				}
				fresh := casstore.New(b, opts) // a new process
				mem.ResetCalls()
				got, err := fresh.FindToken(ctx, query)
				if err != nil || got.RefreshToken != zohoToken(i).RefreshToken {
					t.Fatalf("find user %d: %v", i, err)
				}
				c := mem.Calls()
				requests := c["Read"] + c["ReadMany"]
				if requests > 3 || len(c) > min(requests, 2) {
					t.Errorf("find user %d by a new Store: %v Backend calls, want at most 3 reads", i, c)
				}
				pairs += c["ReadMany"]
				if requests == 3 {
					three++
				}
			}
			t.Logf("%d finds in 3 requests, %d with a pair read, %d of keys in a bucket that bucket 0 does not know of", three, pairs, moved)
			if !tc.countInZero && moved == 0 {
				t.Error("no key was in a bucket that bucket 0 does not know of: the test did not reach a split made since bucket 0 was written")
			}
		})
	}
}
