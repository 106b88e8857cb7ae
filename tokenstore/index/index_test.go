package index_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/index"
)

func tok(i int) *tokenstore.Token {
	t := &tokenstore.Token{UserName: fmt.Sprintf("user%04d@example.com", i),
		ClientID: "1000.ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", ClientSecret: "cs",
		GrantToken: fmt.Sprintf("1000.grant.%d", i), RefreshToken: fmt.Sprintf("1000.refresh.%d", i), AccessToken: "1000.access.secret"}
	t.ID = index.NewTokenID(t)
	return t
}

func put(b *index.Bucket, t *tokenstore.Token, gen uint64) {
	for _, k := range index.KeysOf(t) {
		b.Put(k, t.ID, gen)
	}
}

func TestIndexHoldsNoSecrets(t *testing.T) {
	b := index.NewBucket(0, 1)
	tk := tok(1)
	put(b, tk, 1)
	access := &tokenstore.Token{ID: tokenstore.NewID(), AccessToken: "lone-access-secret"}
	put(b, access, 1)
	enc, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{tk.GrantToken, tk.RefreshToken, tk.AccessToken, "\"cs\"", access.AccessToken} {
		if strings.Contains(string(enc), secret) {
			t.Fatalf("index contains a raw secret value %q: %s", secret, enc)
		}
	}
	for _, digest := range []string{index.Digest(tk.RefreshToken), index.Digest(access.AccessToken)} {
		if !strings.Contains(string(enc), digest) {
			t.Fatalf("index lacks digest %s: %s", digest, enc)
		}
	}
}

func TestAccessTokenIsAKeyOnlyWithoutGrantAndRefresh(t *testing.T) {
	a := tok(1)
	b := a.Clone()
	b.AccessToken = "new-access"
	b.Expiry = b.Expiry.Add(time.Hour)
	if fmt.Sprint(index.KeysOf(a)) != fmt.Sprint(index.KeysOf(b)) {
		t.Fatal("a refresh of the access token changes the index keys of a refreshable record")
	}
	lone := &tokenstore.Token{ID: "x", AccessToken: "acc"}
	if named := (&tokenstore.Token{ID: "y", UserName: "u", AccessToken: "acc"}); len(index.KeysOf(named)) != 2 {
		t.Fatalf("a record with a user name is found by it, not by its access token: %v", index.KeysOf(named))
	}
	keys := index.KeysOf(lone)
	if keys[len(keys)-1] != (index.Key{Kind: index.KindAccess, Value: index.Digest("acc")}) {
		t.Fatalf("access-only record keys %v lack the access key", keys)
	}
	q, ok := index.QueryKey(&tokenstore.Token{AccessToken: "acc"})
	if !ok || q != keys[len(keys)-1] {
		t.Fatalf("rule-2 query key %v, %v", q, ok)
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	b := index.NewBucket(2, 7)
	for i := range 10 {
		put(b, tok(i), uint64(i+1))
	}
	// A token mid-update: a second refresh key claimed for a later
	// generation, and a key of another client.
	e := b.Entries[1]
	b.Put(index.Key{Kind: index.KindRefresh, Value: "second", ClientID: e.ClientID}, e.ID, 9)
	b.Put(index.Key{Kind: index.KindUser, Value: "moved", ClientID: "other-client"}, e.ID, 9)
	b.Put(index.Key{Kind: index.KindAccess, Value: index.Digest("a")}, "lone", 3)
	b.Gen = 12
	b.RecordWrite(time.Unix(1767225600, 0), time.Hour, 10)
	b.RecordWrite(time.Unix(1767225610, 0), time.Hour, 10)
	b.RecordVersion(time.Unix(1767225605, 0), 100, true)
	b.RecordVersion(time.Unix(1767225620, 0), 100, false)
	enc, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := index.Decode(enc, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range b.Entries {
		if g, ok := got.Find(e.Key, e.ID); !ok || g.Gen != e.Gen {
			t.Fatalf("entry %+v lost or changed in the round trip (%+v)", e, g)
		}
	}
	if len(got.Entries) != len(b.Entries) || got.Size() != len(enc) || got.Gen != 12 || got.Depth != b.Depth || got.Buckets != 7 {
		t.Fatalf("round trip: %+v", got)
	}
	if fmt.Sprint(got.Writes) != "[1767225600 1767225610]" {
		t.Fatalf("write history %v", got.Writes)
	}
	if fmt.Sprint(got.Versions) != "[1767225605 1767225620]" || got.Fresh != 1 {
		t.Fatalf("versions %v, %d fresh", got.Versions, got.Fresh)
	}
	if _, err := index.Decode(enc, 1); !errors.Is(err, index.ErrLayout) {
		t.Fatalf("wrong bucket number: %v", err)
	}
	if _, err := index.Decode([]byte("{bad"), 2); !errors.Is(err, tokenstore.ErrMalformed) {
		t.Fatalf("bad json: %v", err)
	}
	if _, err := index.Decode([]byte(`{"format":7,"bucket":2}`), 2); !errors.Is(err, tokenstore.ErrUnsupportedVersion) {
		t.Fatalf("newer format: %v", err)
	}
	if _, err := index.Decode([]byte(`{"format":2,"bucket":5,"depth":2,"buckets":6,"tokens":[]}`), 5); !errors.Is(err, index.ErrLayout) {
		t.Fatalf("bucket 5 at depth 2: %v", err)
	}
}

// A shard written by the first version of the format reads as a fixed
// shard with claim generation 0.
func TestDecodeFormat1(t *testing.T) {
	doc := `{"format":1,"shard":1,"shards":3,"tokens":[{"id":"t1","c":"c","i":1,"u":"alice","r":"rr"}]}`
	b, err := index.Decode([]byte(doc), 1)
	if err != nil {
		t.Fatal(err)
	}
	if !b.Fixed || b.Buckets != 3 || len(b.Entries) != 3 || b.Entries[0].Gen != 0 {
		t.Fatalf("format 1: %+v", b)
	}
	if !b.Has(index.Key{Kind: index.KindUser, Value: "alice", ClientID: "c"}, "t1") {
		t.Fatal("user entry lost")
	}
	enc, _ := b.Encode()
	if !strings.Contains(string(enc), `"shard":1,"shards":3`) || !strings.Contains(string(enc), `"format":1`) {
		t.Fatalf("a fixed shard must be written back in format 1: %s", enc)
	}
	if _, err := index.Decode([]byte(doc), 3); !errors.Is(err, index.ErrLayout) {
		t.Fatalf("shard 3 of 3: %v", err)
	}
}

func TestPutRemoveGenerations(t *testing.T) {
	b := index.NewBucket(0, 1)
	k := index.Key{Kind: index.KindRefresh, Value: "h", ClientID: "c"}
	if !b.Put(k, "id", 3) || b.Put(k, "id", 2) || b.Put(k, "id", 3) {
		t.Fatal("Put must add once and only raise the generation")
	}
	if !b.Put(k, "id", 5) {
		t.Fatal("Put with a later generation must raise it")
	}
	if b.Remove(k, "id", 4) {
		t.Fatal("a release for generation 4 removed a claim for generation 5")
	}
	if !b.Remove(k, "id", 5) || len(b.Entries) != 0 {
		t.Fatal("release for generation 5 kept the claim")
	}
}

func TestLookupScoping(t *testing.T) {
	b := index.NewBucket(0, 1)
	b.Put(index.Key{Kind: index.KindUser, Value: "u", ClientID: "c1"}, "id1", 1)
	b.Put(index.Key{Kind: index.KindUser, Value: "u", ClientID: "c2"}, "id2", 1)
	b.Put(index.Key{Kind: index.KindRefresh, Value: "h", ClientID: "c1"}, "id1", 1)
	if got := b.Lookup(index.Key{Kind: index.KindUser, Value: "u"}); len(got) != 2 {
		t.Fatalf("user lookup without client: %v", got)
	}
	if got := b.Lookup(index.Key{Kind: index.KindUser, Value: "u", ClientID: "c2"}); len(got) != 1 || got[0] != "id2" {
		t.Fatalf("user lookup with client: %v", got)
	}
	if got := b.Lookup(index.Key{Kind: index.KindRefresh, Value: "h", ClientID: "c2"}); len(got) != 0 {
		t.Fatalf("refresh lookup crosses clients: %v", got)
	}
	if h := b.Holders(index.Key{Kind: index.KindUser, Value: "u"}, "id1"); len(h) != 1 || h[0].ID != "id2" {
		t.Fatalf("holders of a client-less user key: %v", h)
	}
}

// Every layout size routes each hash to exactly one bucket, the one that
// covers it at the depth LinearDepth gives, and growing by one bucket
// moves keys only from the split bucket to the new one.
func TestLinearLayout(t *testing.T) {
	hashes := make([]uint64, 5000)
	for i := range hashes {
		hashes[i] = index.Hash(index.Key{Kind: index.KindUser, Value: fmt.Sprint("user", i)})
	}
	for m := 1; m <= 70; m++ {
		counts := make([]int, m)
		parent, child := index.SplitNext(m)
		for _, h := range hashes {
			b := index.LinearBucket(h, m)
			bucket := &index.Bucket{Number: b, Depth: index.LinearDepth(b, m)}
			if !bucket.Covers(h) {
				t.Fatalf("m=%d: hash routed to bucket %d (depth %d) that does not cover it", m, b, bucket.Depth)
			}
			counts[b]++
			if after := index.LinearBucket(h, m+1); after != b && (b != parent || after != child) {
				t.Fatalf("m=%d→%d: a key moved from %d to %d; only %d→%d may move", m, m+1, b, after, parent, child)
			}
		}
		for b, c := range counts {
			share := 1.0 / float64(int(1)<<index.LinearDepth(b, m))
			if want := share * float64(len(hashes)); float64(c) < want*0.6 || float64(c) > want*1.4 {
				t.Fatalf("m=%d: bucket %d holds %d keys, about %.0f expected", m, b, c, want)
			}
		}
	}
	// Pinned value: other languages must hash identically.
	// int.from_bytes(hashlib.sha256(b"u:alice").digest()[:8], "big") % 1000 == 664
	if got := index.Hash(index.Key{Kind: "u", Value: "alice"}) % 1000; got != 664 {
		t.Fatalf("Hash(u:alice) %% 1000 = %d, want 664", got)
	}
	if got := index.FixedRoute(index.Key{Kind: "u", Value: "alice"}, 1000); got != 664 {
		t.Fatalf("FixedRoute(u:alice, 1000) = %d, want 664", got)
	}
}

// A token's ID entry shares the bucket of its primary key at every depth.
func TestNewTokenIDColocates(t *testing.T) {
	for i := range 200 {
		tk := tok(i)
		if err := tokenstore.ValidateID(tk.ID); err != nil || len(tk.ID) != 26 {
			t.Fatalf("NewTokenID gave %q: %v", tk.ID, err)
		}
		pk, _ := index.PrimaryKey(tk)
		for m := 1; m <= 1<<12; m = m*3 + 1 {
			if a, b := index.LinearBucket(index.Hash(pk), m), index.LinearBucket(index.HashID(tk.ID), m); a != b {
				t.Fatalf("m=%d: ID in bucket %d, user key in %d", m, b, a)
			}
		}
	}
	if a, b := index.HashID("custom-id"), index.HashID("custom-id"); a != b || a < 1<<24 && index.HashID("other") < 1<<24 {
		t.Fatalf("IDs of other shapes must hash like keys: %d %d", a, b)
	}
}

func TestSplit(t *testing.T) {
	b := index.NewBucket(1, 3) // depth 1 in a layout of 3
	for i := range 100 {
		t := tok(i)
		for _, k := range index.KeysOf(t) {
			if b.Covers(index.Hash(k)) {
				b.Put(k, t.ID, 1)
			}
		}
	}
	before := len(b.Entries)
	child := b.Split(index.EntryHash)
	if b.Depth != 2 || len(child)+len(b.Entries) != before {
		t.Fatalf("split: depth %d, %d+%d entries of %d", b.Depth, len(b.Entries), len(child), before)
	}
	for _, e := range b.Entries {
		if !b.Covers(index.EntryHash(e)) {
			t.Fatalf("entry %+v stayed in bucket 1 at depth 2", e)
		}
	}
	c := &index.Bucket{Number: 3, Depth: 2}
	for _, e := range child {
		if !c.Covers(index.EntryHash(e)) {
			t.Fatalf("entry %+v moved to bucket 3 that does not cover it", e)
		}
	}
}

func TestWriteHistory(t *testing.T) {
	b := index.NewBucket(0, 1)
	start := time.Unix(1767225600, 0)
	for i := range 30 {
		b.RecordWrite(start.Add(time.Duration(i)*time.Hour), 24*time.Hour, 100)
	}
	if n := b.WritesSince(start.Add(29*time.Hour - 24*time.Hour)); n != 25 {
		t.Fatalf("writes in the last 24 h: %d, want 25", n)
	}
	if len(b.Writes) != 25 {
		t.Fatalf("history keeps %d times, want the 25 of the window", len(b.Writes))
	}
	for range 200 {
		b.RecordWrite(start.Add(29*time.Hour), 24*time.Hour, 100)
	}
	if len(b.Writes) != 100 {
		t.Fatalf("history keeps %d times, the limit is 100", len(b.Writes))
	}
}

// TestCapacity measures how many typical tokens fit in one bucket: the
// number the package documentation states.
// TestVersionHistory: a document's versions are counted over 24 hours,
// and a split's write starts the count of fresh ones anew.
func TestVersionHistory(t *testing.T) {
	b := index.NewBucket(0, 1)
	start := time.Unix(1767225600, 0)
	for i := range 30 {
		b.RecordVersion(start.Add(time.Duration(i)*time.Hour), 100, false)
	}
	now := start.Add(29 * time.Hour)
	if all, fresh := b.VersionsSince(now.Add(-24 * time.Hour)); all != 24 || fresh != 24 {
		t.Fatalf("versions in the last 24 h: %d (%d fresh), want 24", all, fresh)
	}
	b.RecordVersion(now, 100, true) // a split
	b.RecordVersion(now, 100, false)
	b.RecordVersion(now, 100, false)
	if all, fresh := b.VersionsSince(now.Add(-time.Hour)); all != 5 || fresh != 2 {
		t.Fatalf("versions in the last hour: %d (%d fresh since the split), want 5 (2)", all, fresh)
	}
	for range 200 {
		b.RecordVersion(now, 100, false)
	}
	if len(b.Versions) != 100 || b.Fresh != 100 {
		t.Fatalf("history keeps %d versions (%d fresh), the limit is 100", len(b.Versions), b.Fresh)
	}
}

func TestCapacity(t *testing.T) {
	b := index.NewBucket(0, 1)
	n := 0
	for ; ; n++ {
		next := b.Clone()
		put(next, tok(n), 1)
		if _, err := next.Encode(); err != nil {
			if !errors.Is(err, index.ErrBucketFull) || !errors.Is(err, tokenstore.ErrTooLarge) {
				t.Fatalf("full bucket error: %v", err)
			}
			break
		}
		b = next
	}
	t.Logf("one bucket holds %d tokens with user name, grant and refresh token (%d bytes, %.0f bytes/token)", n, b.Size(), float64(b.Size())/float64(n))
	if n < 250 || n > 330 {
		t.Fatalf("capacity %d tokens per bucket; the documented figure is out of date", n)
	}
}

// fullBucket returns the encoding of a bucket of a 128-bucket index
// holding the keys of 10,000 tokens that route to it, and a key it holds.
func fullBucket(b *testing.B) ([]byte, index.Key) {
	b.Helper()
	const m = 128
	bk := index.NewBucket(0, m)
	var held index.Key
	for i := range 10000 {
		t := tok(i)
		for _, k := range index.KeysOf(t) {
			if index.LinearBucket(index.Hash(k), m) == 0 {
				bk.Put(k, t.ID, 1)
				if k.Kind == index.KindUser {
					held = k
				}
			}
		}
	}
	enc, err := bk.Encode()
	if err != nil {
		b.Fatal(err)
	}
	return enc, held
}

// BenchmarkDecodeLookup is the CPU of a cold lookup: decode a bucket and
// look a key up in it.
func BenchmarkDecodeLookup(b *testing.B) {
	enc, k := fullBucket(b)
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		bk, err := index.Decode(enc, 0)
		if err != nil {
			b.Fatal(err)
		}
		if len(bk.Lookup(k)) != 1 {
			b.Fatal("key not found")
		}
	}
}
