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
