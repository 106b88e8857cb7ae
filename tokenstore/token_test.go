package tokenstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
)

func secretToken() *tokenstore.Token {
	return &tokenstore.Token{ID: "id1", UserName: "alice", ClientID: "cid", ClientSecret: "S3CRET-cs",
		RefreshToken: "S3CRET-rt", AccessToken: "S3CRET-at", GrantToken: "S3CRET-gt",
		Expiry: time.Unix(1700000000, 0), RedirectURL: "https://r", APIDomain: "https://d"}
}

func TestRedaction(t *testing.T) {
	tok := secretToken()
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	logger.Info("token", "token", tok, "value", *tok)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("token", "token", tok)
	outputs := map[string]string{
		"%v":        fmt.Sprintf("%v", tok),
		"%+v":       fmt.Sprintf("%+v", tok),
		"%#v":       fmt.Sprintf("%#v", tok),
		"%s":        fmt.Sprintf("%s", tok),
		"%q":        fmt.Sprintf("%q", tok),
		"value %v":  fmt.Sprintf("%v", *tok),
		"value %+v": fmt.Sprintf("%+v", *tok),
		"value %#v": fmt.Sprintf("%#v", *tok),
		"slice":     fmt.Sprintf("%v", []*tokenstore.Token{tok}),
		"String":    tok.String(),
		"error":     fmt.Errorf("saving %v: %w", tok, tokenstore.ErrConflict).Error(),
		"slog":      logs.String(),
	}
	for name, out := range outputs {
		if strings.Contains(out, "S3CRET") {
			t.Errorf("%s leaks a secret: %s", name, out)
		}
		if !strings.Contains(out, "alice") {
			t.Errorf("%s lost the non-secret fields: %s", name, out)
		}
	}
	if !strings.Contains(outputs["%v"], "[redacted]") {
		t.Errorf("set secrets should show as [redacted]: %s", outputs["%v"])
	}
}

func TestMergeCallerWins(t *testing.T) {
	stored := secretToken()
	caller := &tokenstore.Token{UserName: "alice", AccessToken: "mine"}
	tokenstore.Merge(caller, stored)
	if caller.AccessToken != "mine" || caller.RefreshToken != "S3CRET-rt" || caller.ID != "id1" || !caller.Expiry.Equal(stored.Expiry) {
		t.Fatalf("merge: %#v", caller)
	}
	tokenstore.Merge(nil, stored) // no panic
}

func TestQueryRules(t *testing.T) {
	cases := []struct {
		q    *tokenstore.Token
		want tokenstore.Rule
	}{
		{&tokenstore.Token{UserName: "u", AccessToken: "a", ClientID: "c", ClientSecret: "s", GrantToken: "g"}, tokenstore.RuleUserName},
		{&tokenstore.Token{AccessToken: "a"}, tokenstore.RuleAccessToken},
		{&tokenstore.Token{AccessToken: "a", ClientID: "c", ClientSecret: "s", RefreshToken: "r"}, tokenstore.RuleRefreshToken},
		{&tokenstore.Token{ClientID: "c", ClientSecret: "s", GrantToken: "g", RefreshToken: "r"}, tokenstore.RuleGrantToken},
		{&tokenstore.Token{ClientID: "c", GrantToken: "g"}, tokenstore.RuleInvalid},
		{&tokenstore.Token{AccessToken: "a", ClientID: "c"}, tokenstore.RuleInvalid},
		{&tokenstore.Token{}, tokenstore.RuleInvalid},
		{nil, tokenstore.RuleInvalid},
	}
	for i, c := range cases {
		got, err := tokenstore.QueryRuleOf(c.q)
		if got != c.want {
			t.Errorf("case %d: rule %v, want %v", i, got, c.want)
		}
		if (c.want == tokenstore.RuleInvalid) != errors.Is(err, tokenstore.ErrInvalidToken) {
			t.Errorf("case %d: error %v", i, err)
		}
	}
}

func TestNewIDIsUniqueAndValid(t *testing.T) {
	seen := map[string]bool{}
	for range 10000 {
		id := tokenstore.NewID()
		if err := tokenstore.ValidateID(id); err != nil || len(id) != 26 || strings.ContainsAny(id, "-_") {
			t.Fatalf("NewID() = %q: %v", id, err)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
}

// TestEqual: every field counts, the expiry to the millisecond a document
// keeps.
func TestEqual(t *testing.T) {
	exp := time.Date(2026, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	a := &tokenstore.Token{ID: "id", UserName: "u", ClientID: "c", ClientSecret: "s", RefreshToken: "r",
		AccessToken: "a", GrantToken: "g", Expiry: exp, RedirectURL: "https://x", APIDomain: "https://api"}
	b := a.Clone()
	b.Expiry = exp.Add(999 * time.Microsecond).In(time.Local) // same millisecond, other zone
	if !a.Equal(b) || !b.Equal(a) {
		t.Fatal("same record, same millisecond: not equal")
	}
	for name, change := range map[string]func(*tokenstore.Token){
		"ID": func(t *tokenstore.Token) { t.ID = "x" }, "UserName": func(t *tokenstore.Token) { t.UserName = "x" },
		"ClientID": func(t *tokenstore.Token) { t.ClientID = "x" }, "ClientSecret": func(t *tokenstore.Token) { t.ClientSecret = "x" },
		"RefreshToken": func(t *tokenstore.Token) { t.RefreshToken = "x" }, "AccessToken": func(t *tokenstore.Token) { t.AccessToken = "x" },
		"GrantToken": func(t *tokenstore.Token) { t.GrantToken = "x" }, "Expiry": func(t *tokenstore.Token) { t.Expiry = exp.Add(time.Millisecond) },
		"zero Expiry": func(t *tokenstore.Token) { t.Expiry = time.Time{} }, "RedirectURL": func(t *tokenstore.Token) { t.RedirectURL = "x" },
		"APIDomain": func(t *tokenstore.Token) { t.APIDomain = "x" },
	} {
		c := a.Clone()
		change(c)
		if a.Equal(c) {
			t.Errorf("%s differs: equal", name)
		}
	}
	var none *tokenstore.Token
	if !none.Equal(nil) || none.Equal(a) || a.Equal(nil) {
		t.Error("nil tokens")
	}
}
