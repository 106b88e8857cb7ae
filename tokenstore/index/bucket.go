package index

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
)

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
	// seconds: a measure of the load on the bucket's share of the index
	// (a split deals it between the two halves).
	Writes []int64
	// Versions holds the times of this document's own writes in the last
	// 24 hours, oldest first, in epoch seconds, for backends that count
	// versions per document and day (AWS Secrets Manager). Unlike Writes,
	// a split does not deal them: the parent document keeps its versions.
	Versions []int64
	// Fresh is how many of the newest Versions were written since the
	// bucket was last split or created.
	Fresh int
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
	V0      int64    `json:"v0,omitempty"`
	V       []int64  `json:"v,omitempty"`
	Fresh   int      `json:"fresh,omitempty"`
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
		out.W0, out.W = offsets(b.Writes)
		out.V0, out.V = offsets(b.Versions)
		out.Fresh = b.Fresh
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

// offsets returns times as the first and each one's offset from it, the
// compact form of a bucket document.
func offsets(times []int64) (int64, []int64) {
	if len(times) == 0 {
		return 0, nil
	}
	out := make([]int64, len(times))
	for i, t := range times {
		out[i] = t - times[0]
	}
	return times[0], out
}

// times is the inverse of offsets.
func times(first int64, offsets []int64) []int64 {
	if len(offsets) == 0 {
		return nil
	}
	out := make([]int64, len(offsets))
	for i, o := range offsets {
		out[i] = first + o
	}
	return out
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
	b.Writes = times(in.W0, in.W)
	b.Versions = times(in.V0, in.V)
	b.Fresh = min(max(in.Fresh, 0), len(b.Versions))
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
	c.Versions = slices.Clone(b.Versions)
	return &c
}

// RecordWrite notes a write at now: it appends now to Writes, drops the
// times older than window and keeps at most limit of them.
func (b *Bucket) RecordWrite(now time.Time, window time.Duration, limit int) {
	t := now.Unix()
	b.Writes = keepRecent(append(b.Writes, t), t-int64(window/time.Second), limit)
}

// keepRecent returns the times (oldest first) from the first at or after
// from on, at most limit of them (the newest), in a new slice.
func keepRecent(times []int64, from int64, limit int) []int64 {
	i := 0
	for i < len(times) && times[i] < from {
		i++
	}
	if over := len(times) - i - limit; limit > 0 && over > 0 {
		i += over
	}
	return slices.Clone(times[i:])
}

// RecordVersion notes a write of this document at now in Versions, drops
// the times older than 24 hours and keeps at most limit of them. A split
// passes split: its own write starts the count of Fresh versions anew.
func (b *Bucket) RecordVersion(now time.Time, limit int, split bool) {
	t := now.Unix()
	// AWS counts the versions created in the last 24 hours: one exactly a
	// day old no longer counts.
	b.Versions = keepRecent(append(b.Versions, t), t-int64(24*time.Hour/time.Second)+1, limit)
	if split {
		b.Fresh = 0
	} else {
		b.Fresh = min(b.Fresh+1, len(b.Versions))
	}
}

// VersionsSince returns how many of the document's versions were written
// at or after t, and how many of those since the bucket was last split.
func (b *Bucket) VersionsSince(t time.Time) (all, fresh int) {
	s := t.Unix()
	for i, v := range b.Versions {
		if v >= s {
			all++
			if i >= len(b.Versions)-b.Fresh {
				fresh++
			}
		}
	}
	return all, fresh
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
