package index_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/index"
)

func tok(i int) *tokenstore.Token {
	return &tokenstore.Token{ID: tokenstore.NewID(), UserName: fmt.Sprintf("user%04d@example.com", i),
		ClientID: "1000.ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", ClientSecret: "cs",
		GrantToken: fmt.Sprintf("1000.grant.%d", i), RefreshToken: fmt.Sprintf("1000.refresh.%d", i), AccessToken: "1000.access.secret"}
}

func TestIndexHoldsNoSecrets(t *testing.T) {
	s := index.NewShard(0, 1)
	tk := tok(1)
	for _, k := range index.KeysOf(tk) {
		s.Add(k, tk.ID)
	}
	b, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{tk.GrantToken, tk.RefreshToken, tk.AccessToken, "\"cs\""} {
		if strings.Contains(string(b), secret) {
			t.Fatalf("index contains a raw secret value %q: %s", secret, b)
		}
	}
	if !strings.Contains(string(b), index.Digest(tk.RefreshToken)) {
		t.Fatalf("index lacks the refresh digest")
	}
}

func TestAccessTokenAndExpiryAreNotKeys(t *testing.T) {
	a := tok(1)
	b := a.Clone()
	b.AccessToken = "new-access"
	b.Expiry = b.Expiry.Add(3600e9)
	if fmt.Sprint(index.KeysOf(a)) != fmt.Sprint(index.KeysOf(b)) {
		t.Fatal("a refresh of the access token changes the index keys")
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	s := index.NewShard(2, 4)
	for i := range 10 {
		tk := tok(i)
		for _, k := range index.KeysOf(tk) {
			s.Add(k, tk.ID)
		}
	}
	b, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	// A token mid-update: a second refresh key and a key of another client.
	s.Add(index.Key{Kind: index.KindRefresh, Value: "second", ClientID: s.Entries[1].ClientID}, s.Entries[1].ID)
	s.Add(index.Key{Kind: index.KindUser, Value: "moved", ClientID: "other-client"}, s.Entries[1].ID)
	if b, err = s.Encode(); err != nil {
		t.Fatal(err)
	}
	got, err := index.Decode(b, 2, 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range s.Entries {
		if !got.Has(e.Key, e.ID) {
			t.Fatalf("entry %+v lost in the round trip", e)
		}
	}
	if len(got.Entries) != len(s.Entries) || got.Size() != len(b) {
		t.Fatalf("round trip: %d entries, size %d; want %d, %d", len(got.Entries), got.Size(), len(s.Entries), len(b))
	}
	if _, err := index.Decode(b, 1, 4); !errors.Is(err, index.ErrLayout) {
		t.Fatalf("wrong shard number: %v", err)
	}
	if _, err := index.Decode(b, 2, 8); !errors.Is(err, index.ErrLayout) {
		t.Fatalf("wrong shard count: %v", err)
	}
	if _, err := index.Decode([]byte("{bad"), 2, 4); !errors.Is(err, tokenstore.ErrMalformed) {
		t.Fatalf("bad json: %v", err)
	}
	if _, err := index.Decode([]byte(`{"format":7,"shard":2,"shards":4}`), 2, 4); !errors.Is(err, tokenstore.ErrUnsupportedVersion) {
		t.Fatalf("newer format: %v", err)
	}
}

func TestLookupScoping(t *testing.T) {
	s := index.NewShard(0, 1)
	s.Add(index.Key{Kind: index.KindUser, Value: "u", ClientID: "c1"}, "id1")
	s.Add(index.Key{Kind: index.KindUser, Value: "u", ClientID: "c2"}, "id2")
	s.Add(index.Key{Kind: index.KindRefresh, Value: "h", ClientID: "c1"}, "id1")
	if got := s.Lookup(index.Key{Kind: index.KindUser, Value: "u"}); len(got) != 2 {
		t.Fatalf("user lookup without client: %v", got)
	}
	if got := s.Lookup(index.Key{Kind: index.KindUser, Value: "u", ClientID: "c2"}); len(got) != 1 || got[0] != "id2" {
		t.Fatalf("user lookup with client: %v", got)
	}
	if got := s.Lookup(index.Key{Kind: index.KindRefresh, Value: "h", ClientID: "c2"}); len(got) != 0 {
		t.Fatalf("refresh lookup crosses clients: %v", got)
	}
}

func TestRouteIsStableAndSpread(t *testing.T) {
	counts := make([]int, 16)
	for i := range 1600 {
		counts[index.Route(index.Key{Kind: index.KindUser, Value: fmt.Sprint("user", i)}, 16)]++
	}
	for n, c := range counts {
		if c < 50 || c > 150 {
			t.Fatalf("shard %d got %d of 1600 keys: routing is skewed %v", n, c, counts)
		}
	}
	// Pinned value: other languages must route identically.
	if got := index.Route(index.Key{Kind: "u", Value: "alice"}, 1000); got != routeAlice {
		t.Fatalf("Route(u:alice, 1000) = %d, want %d", got, routeAlice)
	}
}

// TestCapacity measures how many typical tokens fit in one shard: the
// number the package documentation states.
func TestCapacity(t *testing.T) {
	s := index.NewShard(0, 1)
	n := 0
	for ; ; n++ {
		tk := tok(n)
		next := s.Clone()
		for _, k := range index.KeysOf(tk) {
			next.Add(k, tk.ID)
		}
		if _, err := next.Encode(); err != nil {
			if !errors.Is(err, index.ErrShardFull) || !errors.Is(err, tokenstore.ErrTooLarge) {
				t.Fatalf("full shard error: %v", err)
			}
			break
		}
		s = next
	}
	t.Logf("one shard holds %d tokens with user name, grant and refresh token (%d bytes, %.0f bytes/token)", n, s.Size(), float64(s.Size())/float64(n))
	if n < 280 || n > 330 {
		t.Fatalf("capacity %d tokens per shard; the documented figure (about 300) is out of date", n)
	}
}

// routeAlice is Route(u:alice, 1000) computed independently in Python:
// int.from_bytes(hashlib.sha256(b"u:alice").digest()[:8], "big") % 1000.
const routeAlice = 664

// fullShard returns the encoding of one of 100 shards holding the keys
// of 10,000 tokens that route to it (~40 KB, what a cold lookup at that
// size reads), and a key it holds.
func fullShard(b *testing.B) ([]byte, index.Key) {
	b.Helper()
	const shards = 100
	s := index.NewShard(0, shards)
	var held index.Key
	for i := range 10000 {
		t := tok(i)
		for _, k := range index.KeysOf(t) {
			if index.Route(k, shards) == 0 {
				s.Add(k, t.ID)
				if k.Kind == index.KindUser {
					held = k
				}
			}
		}
	}
	enc, err := s.Encode()
	if err != nil {
		b.Fatal(err)
	}
	return enc, held
}

// BenchmarkDecodeLookup is the CPU of a cold lookup: decode a shard and
// look a key up in it.
func BenchmarkDecodeLookup(b *testing.B) {
	enc, k := fullShard(b)
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		s, err := index.Decode(enc, 0, 100)
		if err != nil {
			b.Fatal(err)
		}
		if len(s.Lookup(k)) != 1 {
			b.Fatal("key not found")
		}
	}
}
