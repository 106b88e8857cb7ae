package index

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"

	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// FormatVersion is the bucket document version this package writes.
const FormatVersion = 2

// Key kinds.
const (
	KindUser    = "u" // Value is the user name.
	KindGrant   = "g" // Value is Digest(grant token).
	KindRefresh = "r" // Value is Digest(refresh token).
	KindAccess  = "a" // Value is Digest(access token); only for records with no user name, grant or refresh token.
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
