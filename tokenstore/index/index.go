// Package index defines the lookup index that the secrets-manager stores
// keep beside their per-token documents, and its JSON format.
//
// # What the index holds
//
// Only stable lookup keys: for every token its ID ("i"), and where set its
// user name ("u"), the SHA-256 digest of its grant token ("g") and of its
// refresh token ("r"), each scoped by the token's client ID ("c").
// Digests are SHA-256 in unpadded base64url (43 characters); no raw token
// value is ever stored in the index. The access token and expiry are not
// keys, so a refresh that changes only those never rewrites the index.
// Rotating a refresh token does rewrite it (the "r" key changes).
//
// # Sharding
//
// The index is split into a fixed number of shards, each one document
// (one secret). A key lives in shard Route(key, shards): the first 8 bytes
// of SHA-256("<kind>:<value>") as a big-endian uint64, modulo the shard
// count (the ID key routes by "i:<id>"). A lookup therefore reads exactly
// one shard. Every store that shares a prefix must use the same shard
// count; each shard records it, and a mismatch is reported as ErrLayout.
//
// # Shard document
//
// The keys of one token that route to a shard form one record:
//
//	{"format":1,"shard":0,"shards":1,"tokens":[
//	  {"id":"<token id>","c":"<client id>","i":1,"u":"<user name>","g":"<digest>","r":"<digest>"}
//	]}
//
// "i":1 says the shard lists the token (Tokens reads these); the other
// fields are present only for the keys routed to this shard. A token may
// briefly have two records in one shard while a key is being replaced.
//
// # Capacity
//
// A token with a 20-byte user name, a 35-byte client ID, a grant and a
// refresh token takes about 215 bytes when all its keys share a shard, so
// one 65,536-byte shard holds about 300 such tokens (TestCapacity: 307).
// With many shards a token's four keys usually land in different shards,
// each record repeating the ID and client ID: about 400 bytes per token
// in all (measured by tokenbench: 406). Plan one shard per 100 tokens: a
// single shard for up to about 250 tokens, 100 shards for 10,000 (largest
// shard measured at 44.8 KiB). Encode fails with ErrShardFull rather than
// write a larger document.
package index

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// FormatVersion is the shard document version this package writes.
const FormatVersion = 1

// Key kinds.
const (
	KindUser    = "u" // Value is the user name.
	KindGrant   = "g" // Value is Digest(grant token).
	KindRefresh = "r" // Value is Digest(refresh token).
	KindID      = "i" // Value is the token ID; every token has one, so Tokens can list them all.
)

var (
	// ErrShardFull: a shard would exceed tokenstore.MaxDocumentSize. Use
	// more shards. It wraps tokenstore.ErrTooLarge.
	ErrShardFull = fmt.Errorf("%w: index shard full; configure more index shards", tokenstore.ErrTooLarge)
	// ErrLayout: a shard document disagrees with the configured shard
	// count or position. It wraps tokenstore.ErrMalformed.
	ErrLayout = fmt.Errorf("%w: index shard layout mismatch", tokenstore.ErrMalformed)
)

// Key is one lookup key of a token.
type Key struct {
	Kind     string `json:"k"`
	Value    string `json:"v"`
	ClientID string `json:"c,omitempty"`
}

// Entry maps a key to the ID of the token that holds it.
type Entry struct {
	Key
	ID string `json:"id"`
}

// Digest returns the unpadded base64url SHA-256 digest of a secret value.
func Digest(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// KeysOf returns the index keys of a stored token: its ID first, then its
// user name, grant token digest and refresh token digest, each where set.
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
	return keys
}

// QueryKey returns the key that a FindToken query looks up, and false for
// a query the index cannot answer (the access-token rule, whose key is not
// indexed, and invalid queries).
func QueryKey(q *tokenstore.Token) (Key, bool) {
	rule, err := tokenstore.QueryRuleOf(q)
	if err != nil {
		return Key{}, false
	}
	switch rule {
	case tokenstore.RuleUserName:
		return Key{Kind: KindUser, Value: q.UserName, ClientID: q.ClientID}, true
	case tokenstore.RuleGrantToken:
		return Key{Kind: KindGrant, Value: Digest(q.GrantToken), ClientID: q.ClientID}, true
	case tokenstore.RuleRefreshToken:
		return Key{Kind: KindRefresh, Value: Digest(q.RefreshToken), ClientID: q.ClientID}, true
	}
	return Key{}, false
}

// Route returns the shard, in [0, shards), that holds key k.
func Route(k Key, shards int) int {
	if shards <= 1 {
		return 0
	}
	sum := sha256.Sum256([]byte(k.Kind + ":" + k.Value))
	return int(binary.BigEndian.Uint64(sum[:8]) % uint64(shards))
}

// Clashes reports whether two keys cannot belong to two different tokens:
// the same kind and value, and client IDs that a lookup would not tell
// apart (equal, or for a user name, either one empty).
func Clashes(a, b Key) bool {
	if a.Kind != b.Kind || a.Value != b.Value {
		return false
	}
	if a.ClientID == b.ClientID {
		return true
	}
	return a.Kind == KindUser && (a.ClientID == "" || b.ClientID == "")
}

// Shard is one shard document of the index. In memory it is a list of
// entries; its JSON groups the entries of one token (and client) into one
// record, see the package documentation.
type Shard struct {
	Format  int
	Shard   int
	Shards  int
	Entries []Entry
}

// record is the JSON form of the entries of one token and client in a
// shard: each key kind at most once ("i": 1 marks the ID entry).
type record struct {
	ID       string `json:"id"`
	ClientID string `json:"c,omitempty"`
	Listed   int    `json:"i,omitempty"`
	User     string `json:"u,omitempty"`
	Grant    string `json:"g,omitempty"`
	Refresh  string `json:"r,omitempty"`
}

type shardJSON struct {
	Format  int      `json:"format"`
	Shard   int      `json:"shard"`
	Shards  int      `json:"shards"`
	Records []record `json:"tokens"`
}

// MarshalJSON implements json.Marshaler.
func (s *Shard) MarshalJSON() ([]byte, error) {
	out := shardJSON{Format: s.Format, Shard: s.Shard, Shards: s.Shards, Records: []record{}}
	open := map[string][]int{} // token id -> indexes of its records
	for _, e := range s.Entries {
		placed := false
		for _, i := range open[e.ID] {
			if r := &out.Records[i]; r.set(e) {
				placed = true
				break
			}
		}
		if !placed {
			r := record{ID: e.ID}
			if !r.set(e) {
				return nil, fmt.Errorf("index: unknown key kind %q", e.Kind)
			}
			open[e.ID] = append(open[e.ID], len(out.Records))
			out.Records = append(out.Records, r)
		}
	}
	return json.Marshal(out)
}

// set stores e in r if r has no key of that kind yet and, for a scoped
// key, r's client is e's (a record with no scoped key yet adopts it).
func (r *record) set(e Entry) bool {
	if e.Kind == KindID {
		if r.Listed != 0 {
			return false
		}
		r.Listed = 1
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
func (s *Shard) UnmarshalJSON(b []byte) error {
	var in shardJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*s = Shard{Format: in.Format, Shard: in.Shard, Shards: in.Shards, Entries: make([]Entry, 0, 3*len(in.Records))}
	for _, r := range in.Records {
		if r.Listed != 0 {
			s.Entries = append(s.Entries, Entry{Key: Key{Kind: KindID, Value: r.ID}, ID: r.ID})
		}
		if r.User != "" {
			s.Entries = append(s.Entries, Entry{Key: Key{Kind: KindUser, Value: r.User, ClientID: r.ClientID}, ID: r.ID})
		}
		if r.Grant != "" {
			s.Entries = append(s.Entries, Entry{Key: Key{Kind: KindGrant, Value: r.Grant, ClientID: r.ClientID}, ID: r.ID})
		}
		if r.Refresh != "" {
			s.Entries = append(s.Entries, Entry{Key: Key{Kind: KindRefresh, Value: r.Refresh, ClientID: r.ClientID}, ID: r.ID})
		}
	}
	return nil
}

// NewShard returns an empty shard number n of shards.
func NewShard(n, shards int) *Shard {
	return &Shard{Format: FormatVersion, Shard: n, Shards: shards, Entries: []Entry{}}
}

// Decode parses a shard document and checks that it is shard n of shards.
func Decode(b []byte, n, shards int) (*Shard, error) {
	var s Shard
	if err := s.UnmarshalJSON(b); err != nil { // not json.Unmarshal: that would scan the document twice
		return nil, fmt.Errorf("%w: index shard %d is not valid JSON", tokenstore.ErrMalformed, n)
	}
	switch {
	case s.Format < 1:
		return nil, fmt.Errorf("%w: index shard %d has no format", tokenstore.ErrMalformed, n)
	case s.Format > FormatVersion:
		return nil, fmt.Errorf("%w: index shard %d has format %d, this library reads up to %d", tokenstore.ErrUnsupportedVersion, n, s.Format, FormatVersion)
	case s.Shard != n || s.Shards != shards:
		return nil, fmt.Errorf("%w: document is shard %d of %d, expected shard %d of %d", ErrLayout, s.Shard, s.Shards, n, shards)
	}
	if s.Entries == nil {
		s.Entries = []Entry{}
	}
	return &s, nil
}

// Encode returns the shard's JSON document, or ErrShardFull when it would
// exceed tokenstore.MaxDocumentSize.
func (s *Shard) Encode() ([]byte, error) {
	b, err := s.MarshalJSON()
	if err != nil {
		return nil, err
	}
	if len(b) > tokenstore.MaxDocumentSize {
		return nil, fmt.Errorf("%w: shard %d of %d would be %d bytes with %d entries, the limit is %d",
			ErrShardFull, s.Shard, s.Shards, len(b), len(s.Entries), tokenstore.MaxDocumentSize)
	}
	return b, nil
}

// Size returns the encoded size of the shard in bytes.
func (s *Shard) Size() int {
	b, _ := s.MarshalJSON()
	return len(b)
}

// Clone returns a deep copy of s.
func (s *Shard) Clone() *Shard {
	c := *s
	c.Entries = slices.Clone(s.Entries)
	return &c
}

// Lookup returns the IDs of the tokens whose key could answer a query for
// k: same kind and value and, for grant and refresh keys, the same client;
// for user keys, a client ID that is equal or empty on either side. IDs
// are returned once each, in index order.
func (s *Shard) Lookup(k Key) []string {
	var ids []string
	for _, e := range s.Entries {
		if e.Kind != k.Kind || e.Value != k.Value {
			continue
		}
		if k.Kind == KindUser {
			if k.ClientID != "" && e.ClientID != "" && e.ClientID != k.ClientID {
				continue
			}
		} else if e.ClientID != k.ClientID {
			continue
		}
		if !slices.Contains(ids, e.ID) {
			ids = append(ids, e.ID)
		}
	}
	return ids
}

// Owners returns the IDs, other than id, of entries whose key clashes
// with k.
func (s *Shard) Owners(k Key, id string) []string {
	var ids []string
	for _, e := range s.Entries {
		if e.ID != id && Clashes(e.Key, k) && !slices.Contains(ids, e.ID) {
			ids = append(ids, e.ID)
		}
	}
	return ids
}

// Has reports whether the shard maps k to id.
func (s *Shard) Has(k Key, id string) bool {
	return slices.Contains(s.Entries, Entry{Key: k, ID: id})
}

// Add maps k to id, once.
func (s *Shard) Add(k Key, id string) {
	if !s.Has(k, id) {
		s.Entries = append(s.Entries, Entry{Key: k, ID: id})
	}
}

// Remove deletes the mapping of k to id and reports whether it existed.
func (s *Shard) Remove(k Key, id string) bool {
	n := len(s.Entries)
	s.Entries = slices.DeleteFunc(s.Entries, func(e Entry) bool { return e.Key == k && e.ID == id })
	return len(s.Entries) != n
}

// RemoveID deletes every entry of token id and reports whether any existed.
func (s *Shard) RemoveID(id string) bool {
	n := len(s.Entries)
	s.Entries = slices.DeleteFunc(s.Entries, func(e Entry) bool { return e.ID == id })
	return len(s.Entries) != n
}

// IDs returns the distinct token IDs that the shard refers to, in index
// order.
func (s *Shard) IDs() []string {
	var ids []string
	seen := map[string]bool{}
	for _, e := range s.Entries {
		if !seen[e.ID] {
			seen[e.ID] = true
			ids = append(ids, e.ID)
		}
	}
	return ids
}

// Listed returns the IDs of the tokens whose ID entry ("i" key) is in the
// shard: the tokens this shard lists.
func (s *Shard) Listed() []string {
	var ids []string
	for _, e := range s.Entries {
		if e.Kind == KindID {
			ids = append(ids, e.ID)
		}
	}
	return ids
}
