package tokenstore

import (
	"fmt"
	"log/slog"
	"time"
)

// Token is one OAuth token record, the Go form of the Zoho SDK's OAuthToken.
//
// The secret fields (ClientSecret, RefreshToken, AccessToken, GrantToken)
// never appear in formatted output: String, GoString, Format (%v, %+v, %#v,
// %s) and LogValue (log/slog) all print "[redacted]" in their place, or
// "" when they are empty, so a log line shows which values are set without
// showing them.
type Token struct {
	// ID identifies the record inside one store. SaveToken assigns it.
	ID string
	// UserName is the user the token belongs to (Zoho's user signature).
	UserName string
	// ClientID is the OAuth client the token was issued to.
	ClientID string
	// ClientSecret is the OAuth client's secret. Redacted in output.
	ClientSecret string
	// RefreshToken is the long-lived refresh token. Redacted in output.
	RefreshToken string
	// AccessToken is the short-lived access token. Redacted in output.
	AccessToken string
	// GrantToken is the one-time authorization code. Redacted in output.
	GrantToken string
	// Expiry is when AccessToken expires; the zero time means unknown.
	Expiry time.Time
	// RedirectURL is the OAuth redirect URL registered for the client.
	RedirectURL string
	// APIDomain is the API host the provider returned with the token.
	APIDomain string
}

const redacted = "[redacted]"

func redact(s string) string {
	if s == "" {
		return ""
	}
	return redacted
}

// Clone returns a deep copy of t; Clone of nil is nil.
func (t *Token) Clone() *Token {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}

// Equal reports whether t and u hold the same record: every field equal,
// the expiry to the millisecond (what a document keeps). Two nil tokens
// are equal.
func (t *Token) Equal(u *Token) bool {
	if t == nil || u == nil {
		return t == u
	}
	return t.ID == u.ID && t.UserName == u.UserName && t.ClientID == u.ClientID &&
		t.ClientSecret == u.ClientSecret && t.RefreshToken == u.RefreshToken &&
		t.AccessToken == u.AccessToken && t.GrantToken == u.GrantToken &&
		t.Expiry.UnixMilli() == u.Expiry.UnixMilli() && t.Expiry.IsZero() == u.Expiry.IsZero() &&
		t.RedirectURL == u.RedirectURL && t.APIDomain == u.APIDomain
}

// String returns a one-line description of t with secret values redacted.
func (t *Token) String() string {
	if t == nil {
		return "<nil>"
	}
	exp := ""
	if !t.Expiry.IsZero() {
		exp = t.Expiry.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("Token{ID:%q UserName:%q ClientID:%q ClientSecret:%q RefreshToken:%q AccessToken:%q GrantToken:%q Expiry:%q RedirectURL:%q APIDomain:%q}",
		t.ID, t.UserName, t.ClientID, redact(t.ClientSecret), redact(t.RefreshToken),
		redact(t.AccessToken), redact(t.GrantToken), exp, t.RedirectURL, t.APIDomain)
}

// GoString implements fmt.GoStringer (%#v) with secret values redacted.
func (t *Token) GoString() string {
	if t == nil {
		return "(*tokenstore.Token)(nil)"
	}
	return "&tokenstore." + t.String()
}

// Format implements fmt.Formatter so that every verb (%v, %+v, %#v, %s, %q)
// prints the redacted form, for both Token and *Token.
func (t Token) Format(f fmt.State, verb rune) {
	switch verb {
	case 'v':
		if f.Flag('#') {
			fmt.Fprint(f, t.GoString())
			return
		}
		fmt.Fprint(f, t.String())
	case 'q':
		fmt.Fprintf(f, "%q", t.String())
	default:
		fmt.Fprint(f, t.String())
	}
}

// LogValue implements slog.LogValuer: the secret values are redacted.
func (t Token) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("id", t.ID),
		slog.String("user_name", t.UserName),
		slog.String("client_id", t.ClientID),
		slog.String("client_secret", redact(t.ClientSecret)),
		slog.String("refresh_token", redact(t.RefreshToken)),
		slog.String("access_token", redact(t.AccessToken)),
		slog.String("grant_token", redact(t.GrantToken)),
	}
	if !t.Expiry.IsZero() {
		attrs = append(attrs, slog.Time("expiry", t.Expiry))
	}
	if t.RedirectURL != "" {
		attrs = append(attrs, slog.String("redirect_url", t.RedirectURL))
	}
	if t.APIDomain != "" {
		attrs = append(attrs, slog.String("api_domain", t.APIDomain))
	}
	return slog.GroupValue(attrs...)
}

// Merge fills the blank fields of dst from stored and leaves dst's own
// values in place: the caller's values win. This is the Zoho SDK's "merge"
// of a partial token with the record found for it. Merge of a nil pointer
// does nothing.
func Merge(dst, stored *Token) {
	if dst == nil || stored == nil {
		return
	}
	fill := func(d *string, s string) {
		if *d == "" {
			*d = s
		}
	}
	fill(&dst.ID, stored.ID)
	fill(&dst.UserName, stored.UserName)
	fill(&dst.ClientID, stored.ClientID)
	fill(&dst.ClientSecret, stored.ClientSecret)
	fill(&dst.RefreshToken, stored.RefreshToken)
	fill(&dst.AccessToken, stored.AccessToken)
	fill(&dst.GrantToken, stored.GrantToken)
	fill(&dst.RedirectURL, stored.RedirectURL)
	fill(&dst.APIDomain, stored.APIDomain)
	if dst.Expiry.IsZero() {
		dst.Expiry = stored.Expiry
	}
}

// ApplyUpdate returns the record that results from saving update over
// stored: every non-empty field of update overwrites the stored one, every
// empty field keeps the stored value. The ID is always stored's.
func ApplyUpdate(stored, update *Token) *Token {
	out := update.Clone()
	Merge(out, stored)
	out.ID = stored.ID
	return out
}
