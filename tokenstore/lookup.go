package tokenstore

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"unicode/utf8"
)

// Rule names the lookup rule that decides a query. The first rule that
// applies decides; there is no fallback to a later rule.
type Rule int

const (
	// RuleInvalid: no rule applies; the query is rejected with ErrInvalidToken.
	RuleInvalid Rule = iota
	// RuleUserName: the query has a UserName. It matches stored tokens with
	// that user name; where both the query and the stored token have a
	// ClientID, they must be equal.
	RuleUserName
	// RuleAccessToken: no UserName, an AccessToken, and neither ClientID nor
	// ClientSecret. It matches the stored token with that access token.
	RuleAccessToken
	// RuleGrantToken: no UserName, a GrantToken, ClientID and ClientSecret.
	// It matches the stored token with that grant token and ClientID.
	RuleGrantToken
	// RuleRefreshToken: as RuleGrantToken, with a RefreshToken and no
	// GrantToken. It matches on refresh token and ClientID.
	RuleRefreshToken
)

// String returns the rule's name.
func (r Rule) String() string {
	switch r {
	case RuleUserName:
		return "user_name"
	case RuleAccessToken:
		return "access_token"
	case RuleGrantToken:
		return "grant_token"
	case RuleRefreshToken:
		return "refresh_token"
	}
	return "invalid"
}

// QueryRuleOf returns the rule that decides query, or ErrInvalidToken
// (wrapped) when no rule applies, including for a nil query.
func QueryRuleOf(query *Token) (Rule, error) {
	if query == nil {
		return RuleInvalid, fmt.Errorf("%w: nil query", ErrInvalidToken)
	}
	if err := ValidateUTF8(query); err != nil {
		return RuleInvalid, err
	}
	switch {
	case query.UserName != "":
		return RuleUserName, nil
	case query.AccessToken != "" && query.ClientID == "" && query.ClientSecret == "":
		return RuleAccessToken, nil
	case query.ClientID != "" && query.ClientSecret != "" && query.GrantToken != "":
		return RuleGrantToken, nil
	case query.ClientID != "" && query.ClientSecret != "" && query.RefreshToken != "":
		return RuleRefreshToken, nil
	}
	return RuleInvalid, fmt.Errorf("%w: query has no user name, no lone access token, and no grant or refresh token with client id and secret", ErrInvalidToken)
}

// Matches reports whether stored satisfies query under the rule that
// decides query. An invalid query matches nothing.
func Matches(query, stored *Token) bool {
	if stored == nil {
		return false
	}
	rule, err := QueryRuleOf(query)
	if err != nil {
		return false
	}
	switch rule {
	case RuleUserName:
		return stored.UserName == query.UserName &&
			(query.ClientID == "" || stored.ClientID == "" || stored.ClientID == query.ClientID)
	case RuleAccessToken:
		return stored.AccessToken == query.AccessToken
	case RuleGrantToken:
		return stored.ClientID == query.ClientID && stored.GrantToken == query.GrantToken
	case RuleRefreshToken:
		return stored.ClientID == query.ClientID && stored.RefreshToken == query.RefreshToken
	}
	return false
}

// Select applies the lookup rules to candidates and returns the one token
// that answers query, a copy. It returns ErrInvalidToken for an invalid
// query, ErrNotFound for no match, and ErrAmbiguous when a query by user
// name without ClientID matches tokens of several clients. Where a query
// with a ClientID matches both a token of that client and one with no
// client, the exact client wins. Every store answers FindToken through
// Select, so the rules live in one place.
func Select(query *Token, candidates []*Token) (*Token, error) {
	rule, err := QueryRuleOf(query)
	if err != nil {
		return nil, err
	}
	var matches []*Token
	for _, c := range candidates {
		if Matches(query, c) {
			matches = append(matches, c)
		}
	}
	if len(matches) == 0 {
		return nil, fmt.Errorf("%w: no token matches the query by %s", ErrNotFound, rule)
	}
	if len(matches) == 1 {
		return matches[0].Clone(), nil
	}
	if rule == RuleUserName && query.ClientID != "" {
		for _, m := range matches {
			if m.ClientID == query.ClientID {
				return m.Clone(), nil
			}
		}
	}
	if rule == RuleUserName {
		return nil, fmt.Errorf("%w (%d tokens for user %q)", ErrAmbiguous, len(matches), query.UserName)
	}
	// Grant, refresh and access tokens are unique per client by the save
	// rules; several matches mean a store broke that invariant.
	return nil, fmt.Errorf("%w: %d tokens match the query by %s", ErrConflict, len(matches), rule)
}

// HasSecret reports whether t carries an access, refresh or grant token,
// the minimum SaveToken accepts.
func HasSecret(t *Token) bool {
	return t != nil && (t.AccessToken != "" || t.RefreshToken != "" || t.GrantToken != "")
}

// ValidateUTF8 returns ErrInvalidToken (wrapped) when a string field of t
// is not valid UTF-8. Such a value cannot round-trip through JSON (it
// would be stored as U+FFFD and never match again), so every store
// rejects it before any call. The message names the field, never the
// value.
func ValidateUTF8(t *Token) error {
	if t == nil {
		return nil
	}
	for _, f := range []struct{ name, v string }{
		{"id", t.ID}, {"user_name", t.UserName}, {"client_id", t.ClientID},
		{"client_secret", t.ClientSecret}, {"refresh_token", t.RefreshToken},
		{"access_token", t.AccessToken}, {"grant_token", t.GrantToken},
		{"redirect_url", t.RedirectURL}, {"api_domain", t.APIDomain},
	} {
		if !utf8.ValidString(f.v) {
			return fmt.Errorf("%w: field %s is not valid UTF-8", ErrInvalidToken, f.name)
		}
	}
	return nil
}

// ValidateForSave returns ErrInvalidToken (wrapped) for a nil token, a
// token with a field that is not valid UTF-8, a token with no access,
// refresh or grant token, or a malformed ID.
func ValidateForSave(t *Token) error {
	if t == nil {
		return fmt.Errorf("%w: nil token", ErrInvalidToken)
	}
	if err := ValidateUTF8(t); err != nil {
		return err
	}
	if !HasSecret(t) {
		return fmt.Errorf("%w: token has no access, refresh or grant token", ErrInvalidToken)
	}
	if t.ID != "" {
		if err := ValidateID(t.ID); err != nil {
			return err
		}
	}
	return nil
}

// MaxIDLength is the longest token ID accepted.
const MaxIDLength = 64

// ValidateID returns ErrInvalidID (wrapped) unless id is 1 to MaxIDLength
// characters of [A-Za-z0-9_-], the characters that are valid in a secret
// name on AWS, GCP and Vault alike. The message quotes at most a short,
// sanitised prefix of the ID.
func ValidateID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty id", ErrInvalidID)
	}
	if len(id) > MaxIDLength {
		return fmt.Errorf("%w: id is %d bytes, the limit is %d", ErrInvalidID, len(id), MaxIDLength)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("%w: id has character %q at offset %d; allowed are A-Z a-z 0-9 _ -", ErrInvalidID, c, i)
		}
	}
	return nil
}

// idEncoding is lowercase base32 without padding: [a-z2-7], no '-' or '_',
// so a generated ID never ends a name in AWS's reserved "-XXXXXX" shape.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns a new random token ID: 128 bits from crypto/rand, encoded
// as 26 characters of lowercase base32 ([a-z2-7]), so IDs made by
// independent processes do not collide.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("tokenstore: crypto/rand failed: " + err.Error())
	}
	return idEncoding.EncodeToString(b[:])
}
