package index

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"math/bits"

	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// idEncoding is the alphabet of the IDs NewID and NewTokenID make.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// idPrefixBits is how much of the primary key's hash a NewTokenID ID
// carries: enough to route at MaxDepth, too little to identify a user.
const idPrefixBits = MaxDepth

// Hash returns the routing hash of k.
func Hash(k Key) uint64 {
	if k.Kind == KindID {
		return HashID(k.Value)
	}
	return sha(k.Kind + ":" + k.Value)
}

func sha(s string) uint64 {
	sum := sha256.Sum256([]byte(s))
	return binary.BigEndian.Uint64(sum[:8])
}

// HashID returns the routing hash of the ID key of token id. An ID of 26
// characters of [a-z2-7] (what NewID and NewTokenID make) carries its hash
// in its first 24 bits; any other ID hashes like a key.
func HashID(id string) uint64 {
	if len(id) == 26 {
		var b [16]byte
		if n, err := idEncoding.Decode(b[:], []byte(id)); err == nil && n == 16 {
			return uint64(b[0])<<16 | uint64(b[1])<<8 | uint64(b[2])
		}
	}
	return sha("i:" + id)
}

// NewTokenID returns a new random ID for token t (26 characters of
// [a-z2-7], like tokenstore.NewID) whose first 24 bits are the low bits
// of the hash of t's primary key, so that the ID entry lands in the same
// bucket as that key at every depth and an insert writes one bucket
// fewer. The other 104 bits are random.
func NewTokenID(t *tokenstore.Token) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("index: crypto/rand failed: " + err.Error())
	}
	if k, ok := PrimaryKey(t); ok {
		h := Hash(k)
		b[0], b[1], b[2] = byte(h>>16), byte(h>>8), byte(h)
	}
	return idEncoding.EncodeToString(b[:])
}

// LinearBucket returns the bucket of hash h in a linear layout of m
// buckets (m >= 1).
func LinearBucket(h uint64, m int) int {
	if m <= 1 {
		return 0
	}
	l := bits.Len(uint(m)) - 1 // floor(log2 m)
	b := h & (1<<(l+1) - 1)
	if b >= uint64(m) {
		b = h & (1<<l - 1)
	}
	return int(b)
}

// LinearDepth returns the depth of bucket b in a linear layout of m
// buckets: the number of low hash bits that select it.
func LinearDepth(b, m int) int {
	if m <= 1 {
		return 0
	}
	l := bits.Len(uint(m)) - 1
	if b < m-(1<<l) || b >= 1<<l {
		return l + 1
	}
	return l
}

// SplitNext returns, for a linear layout of m buckets, the bucket that the
// next split divides and the number of the bucket it creates (m).
func SplitNext(m int) (parent, child int) {
	l := bits.Len(uint(max(m, 1))) - 1
	return m - 1<<l, m
}

// FixedRoute returns the shard of key k in a fixed layout of n shards,
// the routing of format-1 indexes: SHA-256("<kind>:<value>") modulo n,
// ID keys included.
func FixedRoute(k Key, n int) int {
	if n <= 1 {
		return 0
	}
	return int(sha(k.Kind+":"+k.Value) % uint64(n))
}
