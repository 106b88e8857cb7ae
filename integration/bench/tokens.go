package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// ClientID is the OAuth client of every generated token: one application
// with many users, as in production. 35 characters, like a Zoho client ID.
const ClientID = "1000.TOKENBENCHCLIENT0000000000000AB"

// ClientSecret goes with ClientID.
const ClientSecret = "0123456789abcdef0123456789abcdef01234567ab"

// NewToken returns a full token for user n: user name, client, client
// secret, grant, refresh and access token, expiry, redirect URL and API
// domain. Its encoded document is about 430 bytes and its index record
// about 215 bytes (the size package index plans shards for).
func NewToken(n int) *tokenstore.Token {
	return &tokenstore.Token{
		UserName:     fmt.Sprintf("user%07d@example.com", n),
		ClientID:     ClientID,
		ClientSecret: ClientSecret,
		GrantToken:   "1000." + RandomHex(16) + "." + RandomHex(16),
		RefreshToken: "1000." + RandomHex(16) + "." + RandomHex(16),
		AccessToken:  "1000." + RandomHex(16) + "." + RandomHex(16),
		Expiry:       time.Now().Add(time.Hour).Truncate(time.Millisecond),
		RedirectURL:  "https://app.example.com/oauth/callback",
		APIDomain:    "https://www.zohoapis.com",
	}
}

// NewAccessOnlyToken returns a record that has only an access token (and
// its expiry and API domain): Zoho's rule 2 records, which are never
// refreshed and are found by their access token alone. The index holds
// the access token's digest for them.
func NewAccessOnlyToken() *tokenstore.Token {
	return &tokenstore.Token{
		AccessToken: "1000." + RandomHex(16) + "." + RandomHex(16),
		Expiry:      time.Now().Add(time.Hour).Truncate(time.Millisecond),
		APIDomain:   "https://www.zohoapis.com",
	}
}

// Refreshed returns the update a refresh saves: the stored token with a
// new access token and expiry (the refresh token is unchanged).
func Refreshed(t *tokenstore.Token) *tokenstore.Token {
	u := t.Clone()
	u.AccessToken = "1000." + RandomHex(16) + "." + RandomHex(16)
	u.Expiry = time.Now().Add(time.Hour).Truncate(time.Millisecond)
	return u
}

// UserQuery, GrantQuery, RefreshQuery and AccessQuery are the FindToken
// queries of the four lookup rules for t.
func UserQuery(t *tokenstore.Token) *tokenstore.Token {
	return &tokenstore.Token{UserName: t.UserName, ClientID: t.ClientID}
}

// GrantQuery: see UserQuery.
func GrantQuery(t *tokenstore.Token) *tokenstore.Token {
	return &tokenstore.Token{ClientID: t.ClientID, ClientSecret: t.ClientSecret, GrantToken: t.GrantToken}
}

// RefreshQuery: see UserQuery.
func RefreshQuery(t *tokenstore.Token) *tokenstore.Token {
	return &tokenstore.Token{ClientID: t.ClientID, ClientSecret: t.ClientSecret, RefreshToken: t.RefreshToken}
}

// AccessQuery: see UserQuery.
func AccessQuery(t *tokenstore.Token) *tokenstore.Token {
	return &tokenstore.Token{AccessToken: t.AccessToken}
}

// RandomHex returns n random bytes in hex.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// NewPrefix returns a unique store prefix "tokenbench-<random>-<name>" of
// [a-z0-9-], valid on every backend.
func NewPrefix(name string) string {
	return "tokenbench-" + RandomHex(4) + "-" + name
}

var warnings atomic.Int64

// Warnings is the number of warnings the stores have logged.
func Warnings() int64 { return warnings.Load() }

var benchLogger = slog.New(&warnCounter{h: slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})})

// logger is the stores' logger: warnings to stderr, counted.
func logger() *slog.Logger { return benchLogger }

// Logger returns the logger of the bench's stores (warnings to stderr,
// counted by Warnings), for engines built with casstore.New.
func Logger() *slog.Logger { return benchLogger }

// warnCounter counts the records it passes on.
type warnCounter struct{ h slog.Handler }

func (w *warnCounter) Enabled(ctx context.Context, l slog.Level) bool { return w.h.Enabled(ctx, l) }

func (w *warnCounter) Handle(ctx context.Context, r slog.Record) error {
	warnings.Add(1)
	return w.h.Handle(ctx, r)
}

func (w *warnCounter) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &warnCounter{h: w.h.WithAttrs(attrs)}
}

func (w *warnCounter) WithGroup(name string) slog.Handler {
	return &warnCounter{h: w.h.WithGroup(name)}
}
