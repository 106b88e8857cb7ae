package tokenstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// FormatVersion is the version of the token document this library writes.
// Decoding accepts versions 1 to FormatVersion.
const FormatVersion = 1

// MaxDocumentSize is the largest encoded document, token or index, that a
// store writes: 65,536 bytes, the value limit of AWS Secrets Manager and
// of a GCP Secret Manager payload.
const MaxDocumentSize = 65536

// document is the JSON form of a Token; see the package documentation.
type document struct {
	Format       int    `json:"format"`
	ID           string `json:"id"`
	UserName     string `json:"user_name,omitempty"`
	ClientID     string `json:"client_id,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	AccessToken  string `json:"access_token,omitempty"`
	GrantToken   string `json:"grant_token,omitempty"`
	ExpiryTime   int64  `json:"expiry_time,omitempty"`
	RedirectURL  string `json:"redirect_url,omitempty"`
	APIDomain    string `json:"api_domain,omitempty"`
	// Store metadata (see Meta).
	Lease   *Lease `json:"lease,omitempty"`
	Gen     uint64 `json:"gen,omitempty"`
	SavedAt int64  `json:"saved_at,omitempty"`
	Deleted int64  `json:"deleted,omitempty"`
}

// Meta is what a store keeps in a token document beside the token.
// Readers that do not know a field ignore it, so these fields are
// optional additions to format 1.
type Meta struct {
	// Gen is the document's generation: 1 for the first write, one more
	// for every write after it ("gen"). A tombstone written where no
	// document is (the name may have held a deleted one) starts from the
	// writer's clock in nanoseconds instead, above any earlier document of
	// the name. A store never returns a document of a lower generation
	// than one it has read or written. 0 means a document written before
	// generations existed.
	Gen uint64
	// SavedAt is when the document was written, in epoch milliseconds
	// ("saved_at"), by the writer's clock.
	SavedAt int64
	// Lease is a cross-process refresh lease, or nil ("lease").
	Lease *Lease
	// Deleted is set, in epoch milliseconds, on a tombstone: a document
	// that holds no token, left where a token was deleted or where a store
	// had to prove that a token does not exist ("deleted"). Stores treat a
	// tombstone as no token at all.
	Deleted int64
}

// Lease is a short cross-process claim on a token, held by the process that
// is refreshing it, so that other processes wait for its result instead of
// refreshing too. It travels in the token's document ("lease" object).
type Lease struct {
	// Holder identifies the process that holds the lease.
	Holder string `json:"holder"`
	// Until is when the lease lapses, in epoch milliseconds.
	Until int64 `json:"until"`
}

// Expired reports whether the lease has lapsed at now.
func (l *Lease) Expired(now time.Time) bool {
	return l == nil || now.UnixMilli() >= l.Until
}

// MarshalDocument encodes t as a token document. It returns ErrTooLarge
// (wrapped) when the result would exceed MaxDocumentSize.
func MarshalDocument(t *Token) ([]byte, error) {
	return MarshalDocumentWithLease(t, nil)
}

// MarshalDocumentWithLease encodes t with a refresh lease; a nil lease is
// omitted.
func MarshalDocumentWithLease(t *Token, lease *Lease) ([]byte, error) {
	return MarshalStored(t, Meta{Lease: lease})
}

// MarshalStored encodes t with the store metadata m. For a tombstone
// (m.Deleted set) only t.ID is written.
func MarshalStored(t *Token, m Meta) ([]byte, error) {
	if t == nil {
		return nil, fmt.Errorf("%w: nil token", ErrInvalidToken)
	}
	d := document{
		Format: FormatVersion, ID: t.ID, UserName: t.UserName, ClientID: t.ClientID,
		ClientSecret: t.ClientSecret, RefreshToken: t.RefreshToken, AccessToken: t.AccessToken,
		GrantToken: t.GrantToken, RedirectURL: t.RedirectURL, APIDomain: t.APIDomain,
		Lease: m.Lease, Gen: m.Gen, SavedAt: m.SavedAt, Deleted: m.Deleted,
	}
	if m.Deleted != 0 {
		d = document{Format: FormatVersion, ID: t.ID, Gen: m.Gen, SavedAt: m.SavedAt, Deleted: m.Deleted}
	}
	if !t.Expiry.IsZero() {
		d.ExpiryTime = t.Expiry.UnixMilli()
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("tokenstore: encoding token %q: %w", t.ID, err)
	}
	if len(b) > MaxDocumentSize {
		return nil, fmt.Errorf("%w: token %q encodes to %d bytes, the limit is %d", ErrTooLarge, t.ID, len(b), MaxDocumentSize)
	}
	return b, nil
}

// UnmarshalDocument decodes a token document. Malformed input gives
// ErrMalformed and a format newer than FormatVersion gives
// ErrUnsupportedVersion; neither message quotes the input.
func UnmarshalDocument(b []byte) (*Token, error) {
	t, _, err := UnmarshalDocumentWithLease(b)
	return t, err
}

// UnmarshalDocumentWithLease decodes a token document and its lease, if any.
func UnmarshalDocumentWithLease(b []byte) (*Token, *Lease, error) {
	t, m, err := UnmarshalStored(b)
	if err != nil {
		return nil, nil, err
	}
	return t, m.Lease, nil
}

// UnmarshalStored decodes a token document and its store metadata.
func UnmarshalStored(b []byte) (*Token, Meta, error) {
	var d document
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		return nil, Meta{}, fmt.Errorf("%w: %s", ErrMalformed, jsonProblem(err))
	}
	if dec.More() {
		return nil, Meta{}, fmt.Errorf("%w: trailing data after the JSON object", ErrMalformed)
	}
	switch {
	case d.Format < 1:
		return nil, Meta{}, fmt.Errorf("%w: missing or invalid \"format\"", ErrMalformed)
	case d.Format > FormatVersion:
		return nil, Meta{}, fmt.Errorf("%w: format %d, this library reads up to %d", ErrUnsupportedVersion, d.Format, FormatVersion)
	}
	if d.ID != "" {
		if err := ValidateID(d.ID); err != nil {
			return nil, Meta{}, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
	}
	t := &Token{
		ID: d.ID, UserName: d.UserName, ClientID: d.ClientID, ClientSecret: d.ClientSecret,
		RefreshToken: d.RefreshToken, AccessToken: d.AccessToken, GrantToken: d.GrantToken,
		RedirectURL: d.RedirectURL, APIDomain: d.APIDomain,
	}
	if d.ExpiryTime != 0 {
		t.Expiry = time.UnixMilli(d.ExpiryTime).UTC()
	}
	return t, Meta{Gen: d.Gen, SavedAt: d.SavedAt, Lease: d.Lease, Deleted: d.Deleted}, nil
}

// jsonProblem describes a decoding error without quoting the input, which
// may hold token values.
func jsonProblem(err error) string {
	switch e := err.(type) {
	case *json.SyntaxError:
		return fmt.Sprintf("invalid JSON at offset %d", e.Offset)
	case *json.UnmarshalTypeError:
		return fmt.Sprintf("field %q has the wrong JSON type (%s)", e.Field, e.Value)
	}
	return "invalid JSON"
}
