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
	// Lease is store metadata: a cross-process refresh lease (see Lease).
	Lease *Lease `json:"lease,omitempty"`
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
	if t == nil {
		return nil, fmt.Errorf("%w: nil token", ErrInvalidToken)
	}
	d := document{
		Format: FormatVersion, ID: t.ID, UserName: t.UserName, ClientID: t.ClientID,
		ClientSecret: t.ClientSecret, RefreshToken: t.RefreshToken, AccessToken: t.AccessToken,
		GrantToken: t.GrantToken, RedirectURL: t.RedirectURL, APIDomain: t.APIDomain, Lease: lease,
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
	var d document
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		return nil, nil, fmt.Errorf("%w: %s", ErrMalformed, jsonProblem(err))
	}
	if dec.More() {
		return nil, nil, fmt.Errorf("%w: trailing data after the JSON object", ErrMalformed)
	}
	switch {
	case d.Format < 1:
		return nil, nil, fmt.Errorf("%w: missing or invalid \"format\"", ErrMalformed)
	case d.Format > FormatVersion:
		return nil, nil, fmt.Errorf("%w: format %d, this library reads up to %d", ErrUnsupportedVersion, d.Format, FormatVersion)
	}
	if d.ID != "" {
		if err := ValidateID(d.ID); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrMalformed, err)
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
	return t, d.Lease, nil
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
