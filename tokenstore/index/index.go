// Package index defines the lookup index that the secrets-manager stores
// keep beside their per-token documents: its keys, how keys are spread
// over bucket documents as the index grows, and its JSON format. It is a
// pure data structure: it reads and writes nothing.
//
// # What the index holds
//
// Only stable lookup keys: for every token its ID ("i"), and where set its
// user name ("u"), the SHA-256 digest of its grant token ("g") and of its
// refresh token ("r"), each scoped by the token's client ID ("c"). A
// record that has nothing but an access token (no user name, grant or
// refresh token: the Zoho SDK's rule-2 records, which are never refreshed)
// also has the digest of its access token ("a"), so a query by access
// token finds it without a scan; a query by the access token of any other
// record scans. Digests are SHA-256 in unpadded base64url (43
// characters); no raw token value is ever stored in the index. A refresh
// that changes only the access token and expiry of a refreshable record
// never rewrites the index; rotating its refresh token does (the "r" key
// changes).
//
// # Claims
//
// Every entry records the generation of the token document that it was
// claimed for ("n"): a save that adds key k to a document at generation
// g claims k with n = g+1 before it writes generation g+1. So an entry
// whose document is at generation n or later and does not hold the key
// is dead: no write that could still land needs it, because any such
// write would have to claim the key again with a larger n. An entry with
// n above the document's generation belongs to a save in progress (or one
// that crashed); see package casstore for how such claims are fenced.
// Entries written by version 1 of the format have n = 0.
//
// # Buckets: an index that grows by itself
//
// The entries live in bucket documents. A key has a 64-bit hash (Hash):
// the first 8 bytes of SHA-256("<kind>:<value>") as a big-endian integer;
// an ID key hashes as the ID says (HashID), so that a token's ID entry
// shares the bucket of its primary key. With m buckets (numbered 0 to
// m-1) the index is a linear hash table: with L = floor(log2 m), the key
// lives in bucket h mod 2^(L+1), or h mod 2^L when that is m or more
// (LinearBucket). Bucket b covers the hashes whose low Depth bits equal b.
// Growing from m to m+1 buckets splits one bucket, m - 2^L, whose keys
// with bit L set move to the new bucket m. Every bucket document records
// its own depth and the bucket count its writer knew ("buckets"), so a
// reader whose idea of m is stale finds out from the first bucket it
// reads and re-routes (see Bucket.Covers); m itself is never stored in one
// place that every writer would have to update.
//
// Stores made by the first version of this package kept a fixed number of
// shards (format 1, "shards": n); FixedRoute routes in such a layout.
// With n = 1 it is the same as one linear bucket.
//
// # Bucket document (format 2)
//
//	{"format":2,"bucket":5,"depth":3,"buckets":12,"gen":41,
//	 "w0":1767225600,"w":[0,8,8,61],
//	 "tokens":[
//	  {"id":"<token id>","c":"<client id>","n":3,"i":1,"u":"<user name>","g":"<digest>","r":"<digest>"}
//	]}
//
// "gen" counts the writes of the bucket; "w0" and "w" are the times of its
// recent writes (epoch seconds: w0 plus each offset), which the store uses
// to keep every bucket under its backend's write quota. A record groups
// the keys of one token, one client and one claim generation: "i":1 says
// the bucket lists the token (Tokens reads these), the other fields are
// present for the keys routed to this bucket. A token may briefly have two
// records while a key is being replaced.
//
// # Capacity
//
// A token with a 20-byte user name, a 35-byte client ID, a grant and a
// refresh token takes about 230 bytes when all its keys share a bucket and
// about 400 in all when they are spread: one 64 KiB document could hold
// about 300 such tokens. A store splits a bucket when it passes SplitSize
// (16 KiB) or its write-rate threshold, so no option is needed; Encode
// fails with ErrBucketFull rather than write a document over the limit.
package index

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/bits"
	"slices"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// FormatVersion is the bucket document version this package writes.
const FormatVersion = 2

// Key kinds.
const (
	KindUser    = "u" // Value is the user name.
	KindGrant   = "g" // Value is Digest(grant token).
	KindRefresh = "r" // Value is Digest(refresh token).
	KindAccess  = "a" // Value is Digest(access token); only for records without grant and refresh token.
	KindID      = "i" // Value is the token ID; every token has one, so Tokens can list them all.
)

// MaxDepth bounds how often a bucket can split: 2^24 buckets at most.
const MaxDepth = 24

// SplitSize is the encoded size above which a store splits a bucket:
// 16 KiB, a quarter of the hard limit. Small buckets are quick to encode
// and decode on every write and cold lookup; the price is more bucket
// documents (about one per 50 to 75 tokens).
const SplitSize = 16 << 10

var (
	// ErrBucketFull: a bucket would exceed tokenstore.MaxDocumentSize. It
	// wraps tokenstore.ErrTooLarge.
	ErrBucketFull = fmt.Errorf("%w: index bucket full", tokenstore.ErrTooLarge)
	// ErrShardFull is the former name of ErrBucketFull.
	//
	// Deprecated: use ErrBucketFull.
	ErrShardFull = ErrBucketFull
	// ErrLayout: a bucket document disagrees with its name or with the
	// layout of the other buckets. It wraps tokenstore.ErrMalformed.
	ErrLayout = fmt.Errorf("%w: index layout mismatch", tokenstore.ErrMalformed)
)

// Key is one lookup key of a token.
type Key struct {
	Kind     string `json:"k"`
	Value    string `json:"v"`
	ClientID string `json:"c,omitempty"`
}

// Entry maps a key to the ID of the token that holds it, claimed for the
// token document's generation Gen (see the package documentation).
type Entry struct {
	Key
	ID  string
	Gen uint64
}

// Digest returns the unpadded base64url SHA-256 digest of a secret value.
func Digest(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// KeysOf returns the index keys of a stored token: its ID first, then its
// user name, grant token digest and refresh token digest, each where set,
// and the access token digest when the token has neither a grant nor a
// refresh token.
func KeysOf(t *tokenstore.Token) []Key {
	keys := []Key{{Kind: KindID, Value: t.ID}}
	if t.UserName != "" {
		keys = append(keys, Key{Kind: KindUser, Value: t.UserName, ClientID: t.ClientID})
	}
	if t.GrantToken != "" {
		keys = append(keys, Key{Kind: KindGrant, Value: Digest(t.GrantToken), ClientID: t.ClientID})
	}
	if t.RefreshToken != "" {
		keys = append(keys, Key{Kind: KindRefresh, Value: Digest(t.RefreshToken), ClientID: t.ClientID})
	}
	if t.AccessToken != "" && t.UserName == "" && t.GrantToken == "" && t.RefreshToken == "" {
		keys = append(keys, Key{Kind: KindAccess, Value: Digest(t.AccessToken)})
	}
	return keys
}

// PrimaryKey returns the first key of t other than its ID: the one whose
// bucket the token's ID entry shares when the ID comes from NewTokenID.
func PrimaryKey(t *tokenstore.Token) (Key, bool) {
	keys := KeysOf(t)
	if len(keys) < 2 {
		return Key{}, false
	}
	return keys[1], true
}

// QueryKey returns the key that a FindToken query looks up, and false for
// an invalid query. A query by access token (rule 2) looks up the access
// key, which only records without grant and refresh token have.
func QueryKey(q *tokenstore.Token) (Key, bool) {
	rule, err := tokenstore.QueryRuleOf(q)
	if err != nil {
		return Key{}, false
	}
	switch rule {
	case tokenstore.RuleUserName:
		return Key{Kind: KindUser, Value: q.UserName, ClientID: q.ClientID}, true
	case tokenstore.RuleAccessToken:
		return Key{Kind: KindAccess, Value: Digest(q.AccessToken)}, true
	case tokenstore.RuleGrantToken:
		return Key{Kind: KindGrant, Value: Digest(q.GrantToken), ClientID: q.ClientID}, true
	case tokenstore.RuleRefreshToken:
		return Key{Kind: KindRefresh, Value: Digest(q.RefreshToken), ClientID: q.ClientID}, true
	}
	return Key{}, false
}

// Clashes reports whether two keys cannot belong to two different tokens:
// the same kind and value, and client IDs that a lookup would not tell
// apart (equal; for a user name, either one empty; access keys have no
// client).
func Clashes(a, b Key) bool {
	if a.Kind != b.Kind || a.Value != b.Value {
		return false
	}
	if a.ClientID == b.ClientID {
		return true
	}
	return a.Kind == KindUser && (a.ClientID == "" || b.ClientID == "")
}

// Matches reports whether an entry's key answers a lookup of q: same kind
// and value and, for grant and refresh keys, the same client; for user
// keys, a client ID that is equal or empty on either side.
func Matches(entry, q Key) bool {
	if entry.Kind != q.Kind || entry.Value != q.Value {
		return false
	}
	switch q.Kind {
	case KindUser:
		return q.ClientID == "" || entry.ClientID == "" || entry.ClientID == q.ClientID
	case KindAccess, KindID:
		return true
	}
	return entry.ClientID == q.ClientID
}

// --- hashing and routing ---

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

// --- bucket documents ---

// Bucket is one bucket document of the index.
type Bucket struct {
	// Format is the document format: 2, or 1 for a legacy shard.
	Format int
	// Number is the bucket's number.
	Number int
	// Depth is how many low hash bits select the bucket (linear layout).
	Depth int
	// Buckets is the bucket count the writer knew (linear layout), or the
	// shard count of a fixed format-1 layout.
	Buckets int
	// Fixed is true for a format-1 shard of a fixed layout of Buckets
	// shards.
	Fixed bool
	// Gen counts the writes of the bucket.
	Gen uint64
	// From is set on a bucket created by a split: the generation of the
	// parent bucket its entries were copied from. The split takes effect
	// when the parent, still at that generation, is rewritten one level
	// deeper (see package casstore).
	From uint64
	// Writes holds the times of recent writes, oldest first, in epoch
	// seconds.
	Writes []int64
	// Entries are the bucket's entries.
	Entries []Entry
	// EncodedSize is the size of the document this bucket was last
	// decoded from or encoded to (0: unknown); not part of the document.
	EncodedSize int
}

// NewBucket returns an empty bucket number n of a linear layout of m
// buckets.
func NewBucket(n, m int) *Bucket {
	return &Bucket{Format: FormatVersion, Number: n, Depth: LinearDepth(n, m), Buckets: m, Entries: []Entry{}}
}

// NewFixedShard returns an empty shard n of a fixed layout of shards.
func NewFixedShard(n, shards int) *Bucket {
	return &Bucket{Format: 1, Number: n, Buckets: shards, Fixed: true, Entries: []Entry{}}
}

// Covers reports whether the bucket holds the keys of hash h: its low
// Depth bits select the bucket. A fixed shard covers what FixedRoute
// sends it, which the caller checks.
func (b *Bucket) Covers(h uint64) bool {
	if b.Fixed {
		return true
	}
	return h&(1<<b.Depth-1) == uint64(b.Number)
}

// record is the JSON form of the entries of one token, client and claim
// generation in a bucket: each key kind at most once.
type record struct {
	ID       string `json:"id"`
	ClientID string `json:"c,omitempty"`
	Gen      uint64 `json:"n,omitempty"`
	Listed   int    `json:"i,omitempty"`
	User     string `json:"u,omitempty"`
	Grant    string `json:"g,omitempty"`
	Refresh  string `json:"r,omitempty"`
	Access   string `json:"a,omitempty"`
}

type bucketJSON struct {
	Format  int      `json:"format"`
	Bucket  *int     `json:"bucket,omitempty"`
	Depth   int      `json:"depth,omitempty"`
	Buckets int      `json:"buckets,omitempty"`
	Gen     uint64   `json:"gen,omitempty"`
	From    uint64   `json:"from,omitempty"`
	W0      int64    `json:"w0,omitempty"`
	W       []int64  `json:"w,omitempty"`
	Shard   *int     `json:"shard,omitempty"`  // format 1
	Shards  int      `json:"shards,omitempty"` // format 1
	Records []record `json:"tokens"`
}

// MarshalJSON implements json.Marshaler.
func (b *Bucket) MarshalJSON() ([]byte, error) {
	out := bucketJSON{Format: b.Format, Gen: b.Gen, From: b.From, Records: []record{}}
	n := b.Number
	if b.Fixed {
		out.Shard, out.Shards = &n, b.Buckets
	} else {
		out.Bucket, out.Depth, out.Buckets = &n, b.Depth, b.Buckets
		if len(b.Writes) > 0 {
			out.W0 = b.Writes[0]
			out.W = make([]int64, len(b.Writes))
			for i, w := range b.Writes {
				out.W[i] = w - out.W0
			}
		}
	}
	type group struct {
		id  string
		gen uint64
	}
	open := map[group][]int{} // indexes of the records of a token and generation
	for _, e := range b.Entries {
		g := group{e.ID, e.Gen}
		placed := false
		for _, i := range open[g] {
			if out.Records[i].set(e) {
				placed = true
				break
			}
		}
		if !placed {
			r := record{ID: e.ID, Gen: e.Gen}
			if !r.set(e) {
				return nil, fmt.Errorf("index: unknown key kind %q", e.Kind)
			}
			open[g] = append(open[g], len(out.Records))
			out.Records = append(out.Records, r)
		}
	}
	return json.Marshal(out)
}

// set stores e in r if r has no key of that kind yet and, for a scoped
// key, r's client is e's (a record with no scoped key yet adopts it).
func (r *record) set(e Entry) bool {
	switch e.Kind {
	case KindID:
		if r.Listed != 0 {
			return false
		}
		r.Listed = 1
		return true
	case KindAccess:
		if r.Access != "" {
			return false
		}
		r.Access = e.Value
		return true
	}
	var slot *string
	switch e.Kind {
	case KindUser:
		slot = &r.User
	case KindGrant:
		slot = &r.Grant
	case KindRefresh:
		slot = &r.Refresh
	default:
		return false
	}
	if *slot != "" {
		return false
	}
	if r.User+r.Grant+r.Refresh == "" {
		r.ClientID = e.ClientID
	} else if r.ClientID != e.ClientID {
		return false
	}
	*slot = e.Value
	return true
}

// UnmarshalJSON implements json.Unmarshaler.
func (b *Bucket) UnmarshalJSON(data []byte) error {
	var in bucketJSON
	if err := json.Unmarshal(data, &in); err != nil {
		return err
	}
	*b = Bucket{Format: in.Format, Depth: in.Depth, Buckets: in.Buckets, Gen: in.Gen, From: in.From, Entries: make([]Entry, 0, 3*len(in.Records))}
	switch {
	case in.Format == 1:
		b.Fixed = true
		b.Buckets = in.Shards
		if in.Shard != nil {
			b.Number = *in.Shard
		}
	case in.Bucket != nil:
		b.Number = *in.Bucket
	}
	if len(in.W) > 0 {
		b.Writes = make([]int64, len(in.W))
		for i, w := range in.W {
			b.Writes[i] = in.W0 + w
		}
	}
	for _, r := range in.Records {
		add := func(kind, value, client string) {
			b.Entries = append(b.Entries, Entry{Key: Key{Kind: kind, Value: value, ClientID: client}, ID: r.ID, Gen: r.Gen})
		}
		if r.Listed != 0 {
			add(KindID, r.ID, "")
		}
		if r.User != "" {
			add(KindUser, r.User, r.ClientID)
		}
		if r.Grant != "" {
			add(KindGrant, r.Grant, r.ClientID)
		}
		if r.Refresh != "" {
			add(KindRefresh, r.Refresh, r.ClientID)
		}
		if r.Access != "" {
			add(KindAccess, r.Access, "")
		}
	}
	return nil
}

// Decode parses a bucket document read under the name of bucket n. A
// format-1 document decodes as a fixed shard (Fixed, Buckets = its shard
// count).
func Decode(data []byte, n int) (*Bucket, error) {
	var b Bucket
	if err := b.UnmarshalJSON(data); err != nil { // not json.Unmarshal: that would scan the document twice
		return nil, fmt.Errorf("%w: index bucket %d is not valid JSON", tokenstore.ErrMalformed, n)
	}
	b.EncodedSize = len(data)
	switch {
	case b.Format < 1:
		return nil, fmt.Errorf("%w: index bucket %d has no format", tokenstore.ErrMalformed, n)
	case b.Format > FormatVersion:
		return nil, fmt.Errorf("%w: index bucket %d has format %d, this library reads up to %d", tokenstore.ErrUnsupportedVersion, n, b.Format, FormatVersion)
	case b.Number != n:
		return nil, fmt.Errorf("%w: document of bucket %d says it is bucket %d", ErrLayout, n, b.Number)
	case b.Fixed && (b.Buckets < 1 || n >= b.Buckets):
		return nil, fmt.Errorf("%w: shard %d of a layout of %d shards", ErrLayout, n, b.Buckets)
	case !b.Fixed && (b.Depth < 0 || b.Depth > MaxDepth || n >= 1<<b.Depth || b.Buckets <= n):
		return nil, fmt.Errorf("%w: bucket %d has depth %d and knows %d buckets", ErrLayout, n, b.Depth, b.Buckets)
	}
	return &b, nil
}

// Encode returns the bucket's JSON document, or ErrBucketFull when it
// would exceed tokenstore.MaxDocumentSize.
func (b *Bucket) Encode() ([]byte, error) {
	data, err := b.MarshalJSON()
	if err != nil {
		return nil, err
	}
	if len(data) > tokenstore.MaxDocumentSize {
		return nil, fmt.Errorf("%w: bucket %d would be %d bytes with %d entries, the limit is %d",
			ErrBucketFull, b.Number, len(data), len(b.Entries), tokenstore.MaxDocumentSize)
	}
	return data, nil
}

// Size returns the encoded size of the bucket in bytes.
func (b *Bucket) Size() int {
	data, _ := b.MarshalJSON()
	return len(data)
}

// Clone returns a deep copy of b.
func (b *Bucket) Clone() *Bucket {
	c := *b
	c.Entries = slices.Clone(b.Entries)
	c.Writes = slices.Clone(b.Writes)
	return &c
}

// RecordWrite notes a write at now: it appends now to Writes, drops the
// times older than window and keeps at most limit of them.
func (b *Bucket) RecordWrite(now time.Time, window time.Duration, limit int) {
	t := now.Unix()
	b.Writes = append(b.Writes, t)
	cut := t - int64(window/time.Second)
	i := 0
	for i < len(b.Writes) && b.Writes[i] < cut {
		i++
	}
	if over := len(b.Writes) - i - limit; limit > 0 && over > 0 {
		i += over
	}
	b.Writes = slices.Clone(b.Writes[i:])
}

// WritesSince returns how many of the recorded writes happened at or
// after t.
func (b *Bucket) WritesSince(t time.Time) int {
	s := t.Unix()
	n := 0
	for _, w := range b.Writes {
		if w >= s {
			n++
		}
	}
	return n
}

// Lookup returns the IDs of the tokens whose entries could answer a query
// for k (see Matches), once each, in index order.
func (b *Bucket) Lookup(k Key) []string {
	var ids []string
	for _, e := range b.Entries {
		if Matches(e.Key, k) && !slices.Contains(ids, e.ID) {
			ids = append(ids, e.ID)
		}
	}
	return ids
}

// Holders returns the entries of tokens other than id whose key clashes
// with k.
func (b *Bucket) Holders(k Key, id string) []Entry {
	var out []Entry
	for _, e := range b.Entries {
		if e.ID != id && Clashes(e.Key, k) {
			out = append(out, e)
		}
	}
	return out
}

// Find returns the entry mapping k to id, if any.
func (b *Bucket) Find(k Key, id string) (Entry, bool) {
	for _, e := range b.Entries {
		if e.Key == k && e.ID == id {
			return e, true
		}
	}
	return Entry{}, false
}

// Has reports whether the bucket maps k to id.
func (b *Bucket) Has(k Key, id string) bool {
	_, ok := b.Find(k, id)
	return ok
}

// Put maps k to id claimed for generation gen: it adds the entry, or
// raises the generation of an existing one. It reports whether the
// bucket changed.
func (b *Bucket) Put(k Key, id string, gen uint64) bool {
	for i, e := range b.Entries {
		if e.Key == k && e.ID == id {
			if e.Gen >= gen {
				return false
			}
			b.Entries[i].Gen = gen
			return true
		}
	}
	b.Entries = append(b.Entries, Entry{Key: k, ID: id, Gen: gen})
	return true
}

// Remove deletes the mapping of k to id if it was claimed for generation
// upTo or earlier, and reports whether it did. A claim for a later
// generation belongs to a newer save and stays.
func (b *Bucket) Remove(k Key, id string, upTo uint64) bool {
	n := len(b.Entries)
	b.Entries = slices.DeleteFunc(b.Entries, func(e Entry) bool { return e.Key == k && e.ID == id && e.Gen <= upTo })
	return len(b.Entries) != n
}

// RemoveEntry deletes exactly e and reports whether it existed.
func (b *Bucket) RemoveEntry(e Entry) bool {
	n := len(b.Entries)
	b.Entries = slices.DeleteFunc(b.Entries, func(x Entry) bool { return x == e })
	return len(b.Entries) != n
}

// RemoveID deletes every entry of token id and reports whether any existed.
func (b *Bucket) RemoveID(id string) bool {
	n := len(b.Entries)
	b.Entries = slices.DeleteFunc(b.Entries, func(e Entry) bool { return e.ID == id })
	return len(b.Entries) != n
}

// IDs returns the distinct token IDs that the bucket refers to, in index
// order.
func (b *Bucket) IDs() []string {
	var ids []string
	seen := map[string]bool{}
	for _, e := range b.Entries {
		if !seen[e.ID] {
			seen[e.ID] = true
			ids = append(ids, e.ID)
		}
	}
	return ids
}

// Listed returns the IDs of the tokens whose ID entry ("i" key) is in the
// bucket: the tokens this bucket lists.
func (b *Bucket) Listed() []string {
	var ids []string
	for _, e := range b.Entries {
		if e.Kind == KindID && !slices.Contains(ids, e.ID) {
			ids = append(ids, e.ID)
		}
	}
	return ids
}

// Split divides a linear bucket: it returns the entries of the child that
// a split at the bucket's depth creates (those whose hash has bit Depth
// set) and keeps the others, one level deeper. hash gives each entry's
// routing hash.
func (b *Bucket) Split(hash func(Entry) uint64) (child []Entry) {
	bit := uint64(1) << b.Depth
	var keep []Entry
	for _, e := range b.Entries {
		if hash(e)&bit != 0 {
			child = append(child, e)
		} else {
			keep = append(keep, e)
		}
	}
	if keep == nil {
		keep = []Entry{}
	}
	b.Entries = keep
	b.Depth++
	return child
}

// EntryHash is the routing hash of an entry's key.
func EntryHash(e Entry) uint64 { return Hash(e.Key) }
