// Package tokenstore is the core of cloudtokens: the Token model, the
// six-method Store contract of the Zoho SDKs' TokenStore, the lookup rules
// every store shares, the JSON document format, and MemoryStore, the
// in-memory reference store. It imports no cloud SDK.
//
// # Lookup rules (FindToken)
//
// The first rule that applies decides; there is no fallback to a later
// rule (see QueryRuleOf, Matches and Select, which every store uses):
//
//  1. The query has a UserName: match on user name. Where both the query
//     and the stored token have a ClientID, they must be equal. A query
//     without ClientID that matches tokens of two clients fails with
//     ErrAmbiguous instead of returning an arbitrary one.
//  2. Otherwise the query has an AccessToken and neither ClientID nor
//     ClientSecret: match on access token.
//  3. Otherwise the query has a GrantToken or RefreshToken together with
//     ClientID and ClientSecret: match on the grant token if set, else on
//     the refresh token, always within the same ClientID.
//  4. Otherwise the query is invalid: ErrInvalidToken, never a record.
//
// No match is ErrNotFound. Results are copies; the query is not modified.
// Merge fills a caller's blank fields from a found token (the caller's
// values win).
//
// # Saving (SaveToken)
//
// SaveToken upserts. If t.ID names an existing record, that record is
// updated; otherwise the record found for t by the lookup rules is
// updated; otherwise a record is inserted under a new ID (NewID: 128
// random bits, 26 characters of [a-z2-7]) and the ID is written back to
// t.ID. An unknown t.ID is not reused. On update, the non-empty fields of
// t overwrite the stored ones and empty fields keep the stored values. A
// token with no access, refresh or grant token is ErrInvalidToken. No two
// records ever share a user name and client, or a grant or refresh token
// and client: a save that would create such a pair updates the existing
// record (when its lookup rule finds it) or fails with ErrConflict.
//
// # Errors
//
// Errors wrap the sentinels ErrNotFound, ErrInvalidToken (with the finer
// ErrInvalidID, ErrAmbiguous and ErrTooLarge wrapping it), ErrConflict and
// ErrMalformed (with ErrUnsupportedVersion); test them with errors.Is.
// No error message and no formatted Token ever contains an access,
// refresh or grant token or a client secret: Token implements String,
// GoString, fmt.Formatter and slog.LogValuer with those fields redacted.
//
// # Document format
//
// Each token is stored as one UTF-8 JSON object (MarshalDocument,
// UnmarshalDocument), at most MaxDocumentSize (65,536) bytes:
//
//	{
//	  "format":        1,                  // integer, required; readers reject larger values
//	  "id":            "q3kx...",          // string, [A-Za-z0-9_-]{1,64}
//	  "user_name":     "alice@example.com",// string, optional
//	  "client_id":     "1000.XXXX",        // string, optional
//	  "client_secret": "...",              // string, optional
//	  "refresh_token": "...",              // string, optional
//	  "access_token":  "...",              // string, optional
//	  "grant_token":   "...",              // string, optional
//	  "expiry_time":   1767225600000,      // integer, epoch milliseconds (UTC), optional
//	  "redirect_url":  "https://...",      // string, optional
//	  "api_domain":    "https://...",      // string, optional
//	  "lease":         {"holder": "...", "until": 1767225600000} // optional, see Lease
//	}
//
// Field names follow the Zoho SDK's database columns. Empty strings and a
// zero expiry are omitted; a reader treats a missing field as empty.
// Unknown fields are ignored, so later minor additions stay readable. A
// Python reader needs only json.loads and
// datetime.fromtimestamp(doc["expiry_time"] / 1000, tz=timezone.utc).
//
// The secrets-manager stores also keep an index beside the documents; its
// format is in package index, the engine that implements the rules on a
// versioned backend is package casstore, and package tokenstoretest is
// the conformance suite every store passes.
//
// # Stability
//
// The Go API of this module and of the adapters is v0: a minor release
// (v0.2.0) may change it, and CHANGELOG.md says what changed and what to
// do. Document format 1 is a promise: every later release reads format-1
// documents written by any earlier one ([UnmarshalDocument]), and a new
// format gets a new number ([FormatVersion]), is read beside format 1, and
// is announced in the CHANGELOG before any release writes it. Readers
// ignore unknown fields, so fields added to format 1 stay readable by
// older releases. The index shards of package index have a format number
// of their own; the CHANGELOG lists any change to it with what a store
// shared by two releases needs.
package tokenstore
