package vault_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
	ctvault "github.com/cloudtokens/cloudtokens/vault"
	"github.com/hashicorp/vault/api"
)

// Invalid input is refused before any request reaches Vault.
func TestInvalidInputSendsNothing(t *testing.T) {
	e := newEnv(t, "")
	ctx := ctxT(t)
	check := func(what string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", what, err, want)
		}
		if calls := e.rec.take(); len(calls) > 0 {
			t.Errorf("%s sent %d requests: %v", what, len(calls), calls)
		}
	}
	check("SaveToken(nil)", e.store.SaveToken(ctx, nil), tokenstore.ErrInvalidToken)
	_, err := e.store.FindToken(ctx, nil)
	check("FindToken(nil)", err, tokenstore.ErrInvalidToken)
	_, err = e.store.FindToken(ctx, &tokenstore.Token{})
	check("FindToken(empty query)", err, tokenstore.ErrInvalidToken)
	_, err = e.store.FindToken(ctx, &tokenstore.Token{ClientID: clientA})
	check("FindToken(client ID only)", err, tokenstore.ErrInvalidToken)
	check("SaveToken(no secret)", e.store.SaveToken(ctx, &tokenstore.Token{UserName: "x"}), tokenstore.ErrInvalidToken)

	for _, id := range []string{"", "..", "../index-0", "../../sys/mounts", "a/b", "token/../../x", "%2e%2e", "a\x00b", "a\nb", "a b", "ä", strings.Repeat("a", 65)} {
		_, err := e.store.FindTokenByID(ctx, id)
		check(fmt.Sprintf("FindTokenByID(%q)", id), err, tokenstore.ErrInvalidID)
		check(fmt.Sprintf("DeleteToken(%q)", id), e.store.DeleteToken(ctx, id), tokenstore.ErrInvalidID)
		if id != "" {
			check(fmt.Sprintf("SaveToken(ID %q)", id), e.store.SaveToken(ctx, &tokenstore.Token{ID: id, UserName: "u", AccessToken: "a"}), tokenstore.ErrInvalidID)
		}
		_, err = e.store.AcquireLease(ctx, id, "me", 0)
		check(fmt.Sprintf("AcquireLease(%q)", id), err, tokenstore.ErrInvalidID)
	}
	b := e.store.Backend()
	for _, name := range []string{"../index-0", "token-../../x", "index-0/..", "", "token-a/b"} {
		_, err := b.Read(ctx, name)
		check(fmt.Sprintf("Backend.Read(%q)", name), err, tokenstore.ErrInvalidID)
		_, err = b.Create(ctx, name, []byte("{}"))
		check(fmt.Sprintf("Backend.Create(%q)", name), err, tokenstore.ErrInvalidID)
		check(fmt.Sprintf("Backend.Delete(%q)", name), b.Delete(ctx, name), tokenstore.ErrInvalidID)
	}

	// Huge values: the engine refuses a token document over 64 KiB, and
	// the backend refuses any document (token or index) over it.
	huge := strings.Repeat("A", tokenstore.MaxDocumentSize)
	check("SaveToken(huge access token)", e.store.SaveToken(ctx, &tokenstore.Token{UserName: "huge", AccessToken: huge}), tokenstore.ErrTooLarge)
	check("SaveToken(huge user name)", e.store.SaveToken(ctx, &tokenstore.Token{UserName: huge, AccessToken: "a"}), tokenstore.ErrTooLarge)
	_, err = b.Create(ctx, "token-huge", []byte(huge+"x"))
	check("Backend.Create(65,537 bytes)", err, tokenstore.ErrTooLarge)
	_, err = b.Update(ctx, "index-0", []byte(huge+"x"), "1")
	check("Backend.Update(index, 65,537 bytes)", err, tokenstore.ErrTooLarge)
	_, err = b.Create(ctx, "token-bad-utf8", []byte("{\"x\":\"\xff\"}"))
	check("Backend.Create(invalid UTF-8)", err, tokenstore.ErrInvalidToken)
}

func TestNewRefusesBadPrefixAndOptions(t *testing.T) {
	client, rec := newClient(t, "")
	ctx := ctxT(t)
	for _, p := range []string{"", "/abs", "a/", "a//b", "..", "a/../b", "a/..", "./a", "a\x00", "a\tb", "a b", "a*", "a+", "ä"} {
		_, err := ctvault.New(ctx, client, p)
		if !errors.Is(err, ctvault.ErrInvalidPrefix) {
			t.Errorf("New(prefix %q): %v, want ErrInvalidPrefix", p, err)
		}
	}
	for _, m := range []string{"", "/secret", "a//b", "../secret", "secret/.."} {
		_, err := ctvault.New(ctx, client, "p", ctvault.WithMount(m))
		if !errors.Is(err, ctvault.ErrInvalidPrefix) {
			t.Errorf("New(mount %q): %v, want ErrInvalidPrefix", m, err)
		}
	}
	for name, o := range map[string]ctvault.Option{
		"WithIndexShards(0)": ctvault.WithIndexShards(0), "WithMaxAttempts(0)": ctvault.WithMaxAttempts(0),
		"WithMaxVersions(-1)": ctvault.WithMaxVersions(-1), "WithReadWorkers(0)": ctvault.WithReadWorkers(0),
		"WithLogger(nil)": ctvault.WithLogger(nil), "nil Option": nil,
	} {
		if _, err := ctvault.New(ctx, client, "p", o); !errors.Is(err, ctvault.ErrInvalidConfig) {
			t.Errorf("New(%s): %v, want ErrInvalidConfig", name, err)
		}
	}
	if _, err := ctvault.New(ctx, nil, "p"); !errors.Is(err, ctvault.ErrInvalidConfig) {
		t.Errorf("New(nil client): %v, want ErrInvalidConfig", err)
	}
	if calls := rec.take(); len(calls) > 0 {
		t.Errorf("invalid configurations sent %d requests: %v", len(calls), calls)
	}
	// A trailing "/" on the mount, as Vault prints mounts, is accepted.
	if _, err := ctvault.New(ctx, client, newPrefix(t), ctvault.WithMount("secret/")); err != nil {
		t.Errorf("New(WithMount(\"secret/\")): %v", err)
	}
}

// mount enables a secrets engine at a random path for the test.
func mount(t *testing.T, typ string, options map[string]string) string {
	t.Helper()
	root := rootClient(t)
	path := "ct-" + typ + "-" + randomHex(4)
	if err := root.Sys().MountWithContext(ctxT(t), path, &api.MountInput{Type: typ, Options: options}); err != nil {
		t.Fatalf("mount %s: %v", typ, err)
	}
	t.Cleanup(func() { _ = root.Sys().UnmountWithContext(context.Background(), path) })
	return path
}

func TestNewRefusesKVv1AndOtherEngines(t *testing.T) {
	client, _ := newClient(t, "")
	for _, tc := range []struct {
		name, typ, version string
		path               string
	}{
		{"kv version 1", "kv", "1", mount(t, "kv", map[string]string{"version": "1"})},
		{"kv without version", "kv", "", mount(t, "kv", nil)},
		{"cubbyhole", "cubbyhole", "", "cubbyhole"},
		{"transit", "transit", "", mount(t, "transit", nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ctvault.New(ctxT(t), client, "p", ctvault.WithMount(tc.path))
			var me *ctvault.MountError
			if !errors.Is(err, ctvault.ErrNotKVv2) || !errors.As(err, &me) {
				t.Fatalf("New on a %s mount: %v, want a *MountError wrapping ErrNotKVv2", tc.name, err)
			}
			if me.Type != tc.typ || me.Mount != tc.path || errors.Is(err, ctvault.ErrMountNotFound) {
				t.Errorf("MountError %+v, want type %q mount %q", me, tc.typ, tc.path)
			}
			t.Logf("%v", err)
		})
	}
	// The same KV v1 mount upgraded to v2 is accepted.
	path := mount(t, "kv", map[string]string{"version": "2"})
	if _, err := ctvault.New(ctxT(t), client, "p", ctvault.WithMount(path)); err != nil {
		t.Errorf("New on a kv-v2 mount: %v", err)
	}
}

func TestNewMissingMount(t *testing.T) {
	client, rec := newClient(t, "")
	_, err := ctvault.New(ctxT(t), client, "p", ctvault.WithMount("no-such-mount-"+randomHex(4)))
	var me *ctvault.MountError
	if !errors.Is(err, ctvault.ErrMountNotFound) || !errors.As(err, &me) || errors.Is(err, ctvault.ErrNotKVv2) {
		t.Fatalf("New on a missing mount: %v, want a *MountError wrapping ErrMountNotFound", err)
	}
	if errors.Is(err, ctvault.ErrPermissionDenied) {
		t.Errorf("a root token must be told the mount is missing, not denied: %v", err)
	}
	t.Logf("%d calls: %v", len(rec.calls), err)

	// A path inside a mount is not a mount.
	_, err = ctvault.New(ctxT(t), client, "p", ctvault.WithMount("secret/sub"))
	if !errors.Is(err, ctvault.ErrMountNotFound) || !strings.Contains(err.Error(), `WithMount("secret")`) {
		t.Errorf("New(WithMount(\"secret/sub\")): %v, want ErrMountNotFound naming the mount", err)
	}
}

// policyToken creates a token with only the given policy.
func policyToken(t *testing.T, name, hcl string) string {
	t.Helper()
	root := rootClient(t)
	name = name + "-" + randomHex(4)
	if err := root.Sys().PutPolicyWithContext(ctxT(t), name, hcl); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = root.Sys().DeletePolicyWithContext(context.Background(), name) })
	sec, err := root.Auth().Token().CreateWithContext(ctxT(t), &api.TokenCreateRequest{Policies: []string{name}, NoDefaultPolicy: true, TTL: "10m"})
	if err != nil {
		t.Fatal(err)
	}
	return sec.Auth.ClientToken
}

func wantDenied(t *testing.T, what string, err error, secrets ...string) {
	t.Helper()
	if !errors.Is(err, ctvault.ErrPermissionDenied) || errors.Is(err, tokenstore.ErrNotFound) {
		t.Errorf("%s: %v, want ErrPermissionDenied and not ErrNotFound", what, err)
		return
	}
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
		t.Errorf("%s: the Vault cause is not wrapped: %v", what, err)
	}
	noSecrets(t, what+" error", err.Error(), secrets...)
}

func TestPermissionDenied(t *testing.T) {
	prefix := newPrefix(t)
	owner := newEnv(t, prefix)
	a := alice()
	mustSave(t, owner.store, a)
	secrets := []string{a.AccessToken, a.RefreshToken, a.GrantToken, a.ClientSecret}

	t.Run("BogusToken", func(t *testing.T) {
		client, _ := newClient(t, "hvs.bogus-"+randomHex(8))
		_, err := ctvault.New(ctxT(t), client, prefix)
		if !errors.Is(err, ctvault.ErrPermissionDenied) {
			t.Errorf("New with a bogus token: %v, want ErrPermissionDenied", err)
		}
		t.Logf("%v", err)
	})
	t.Run("TokenRevokedAfterNew", func(t *testing.T) {
		client, _ := newClient(t, "")
		s, err := ctvault.New(ctxT(t), client, prefix)
		if err != nil {
			t.Fatal(err)
		}
		client.SetToken("hvs.bogus-" + randomHex(8))
		_, err = s.FindTokenByID(ctxT(t), a.ID)
		wantDenied(t, "FindTokenByID", err, secrets...)
		_, err = s.FindToken(ctxT(t), &tokenstore.Token{UserName: a.UserName})
		wantDenied(t, "FindToken", err, secrets...)
		_, err = s.Tokens(ctxT(t))
		wantDenied(t, "Tokens", err, secrets...)
		wantDenied(t, "SaveToken", s.SaveToken(ctxT(t), &tokenstore.Token{ID: a.ID, AccessToken: "1000.new-access"}), append(secrets, "1000.new-access")...)
		wantDenied(t, "DeleteToken", s.DeleteToken(ctxT(t), a.ID), secrets...)
		t.Logf("%v", err)
	})
	t.Run("NoDataAccess", func(t *testing.T) {
		// The token may list the prefix (so New passes) but not read or write entries.
		tok := policyToken(t, "ct-list-only", fmt.Sprintf(`path "secret/metadata/%s/*" { capabilities = ["list"] }`, prefix))
		client, _ := newClient(t, tok)
		s, err := ctvault.New(ctxT(t), client, prefix)
		if err != nil {
			t.Fatalf("New with a list-only token: %v", err)
		}
		_, err = s.FindTokenByID(ctxT(t), a.ID)
		wantDenied(t, "FindTokenByID", err, secrets...)
		_, err = s.FindToken(ctxT(t), &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, RefreshToken: a.RefreshToken})
		wantDenied(t, "FindToken by refresh token", err, secrets...)
		wantDenied(t, "SaveToken", s.SaveToken(ctxT(t), &tokenstore.Token{UserName: "new", AccessToken: "1000.x"}), "1000.x")
	})
	t.Run("ReadOnly", func(t *testing.T) {
		tok := policyToken(t, "ct-read-only", fmt.Sprintf(`path "secret/data/%s/*" { capabilities = ["read"] }`, prefix))
		client, _ := newClient(t, tok)
		s, err := ctvault.New(ctxT(t), client, prefix)
		if err != nil {
			t.Fatalf("New with a read-only token: %v", err)
		}
		got, err := s.FindToken(ctxT(t), &tokenstore.Token{UserName: a.UserName})
		if err != nil || got.ID != a.ID {
			t.Fatalf("FindToken with a read-only token: %v, %v", got, err)
		}
		wantDenied(t, "SaveToken (refresh)", s.SaveToken(ctxT(t), &tokenstore.Token{ID: a.ID, AccessToken: "1000.y"}), "1000.y")
		wantDenied(t, "DeleteToken", s.DeleteToken(ctxT(t), a.ID))
	})
	t.Run("NoMountAccess", func(t *testing.T) {
		tok := policyToken(t, "ct-other", `path "cubbyhole/*" { capabilities = ["read"] }`)
		client, _ := newClient(t, tok)
		_, err := ctvault.New(ctxT(t), client, prefix)
		var me *ctvault.MountError
		if !errors.Is(err, ctvault.ErrPermissionDenied) || !errors.As(err, &me) {
			t.Errorf("New with a token without access to the mount: %v, want a *MountError wrapping ErrPermissionDenied", err)
		}
		t.Logf("%v", err)
	})
}

// writeRaw writes data into the entry of document name, bypassing the store.
func writeRaw(t *testing.T, e *env, name string, data map[string]any) {
	t.Helper()
	if _, err := rootClient(t).Logical().WriteWithContext(ctxT(t), e.store.Backend().DataPath(name), map[string]any{"data": data}); err != nil {
		t.Fatal(err)
	}
}

// An entry edited by hand into invalid JSON, or into another shape, is
// reported as malformed for that token only; the other tokens, Tokens()
// and the lookups of the others keep working, and no value leaks.
func TestCorruptEntry(t *testing.T) {
	e := newEnv(t, "", ctvault.WithIndexShards(2))
	good := alice()
	mustSave(t, e.store, good)
	victims := map[string]map[string]any{
		"invalid JSON":        {"document": `{"format":1,"id":"X","access_token":"SECRET-EDITED-1", oops`},
		"no document field":   {"access_token": "SECRET-EDITED-2"},
		"document not string": {"document": map[string]any{"access_token": "SECRET-EDITED-3"}},
		"wrong id":            {"document": `{"format":1,"id":"someoneelse","access_token":"SECRET-EDITED-4"}`},
		"future format":       {"document": `{"format":99,"id":"X","access_token":"SECRET-EDITED-5"}`},
	}
	secrets := []string{"SECRET-EDITED-1", "SECRET-EDITED-2", "SECRET-EDITED-3", "SECRET-EDITED-4", "SECRET-EDITED-5", good.AccessToken, good.RefreshToken, good.ClientSecret}
	var corrupt []string
	for what, data := range victims {
		v := &tokenstore.Token{UserName: "victim " + what, AccessToken: "1000.victim"}
		mustSave(t, e.store, v)
		if d, ok := data["document"].(string); ok {
			data["document"] = strings.ReplaceAll(d, `"id":"X"`, fmt.Sprintf(`"id":%q`, v.ID))
		}
		writeRaw(t, e, casstore.TokenName(v.ID), data)
		corrupt = append(corrupt, v.ID)

		_, err := e.store.FindTokenByID(ctxT(t), v.ID)
		if !errors.Is(err, tokenstore.ErrMalformed) {
			t.Errorf("%s: FindTokenByID: %v, want ErrMalformed", what, err)
		} else {
			noSecrets(t, what+": FindTokenByID error", err.Error(), secrets...)
		}
		_, err = e.store.FindToken(ctxT(t), &tokenstore.Token{UserName: v.UserName})
		if !errors.Is(err, tokenstore.ErrMalformed) {
			t.Errorf("%s: FindToken: %v, want ErrMalformed", what, err)
		}
	}
	toks, err := e.store.Tokens(ctxT(t))
	if err != nil {
		t.Fatalf("Tokens with corrupt entries: %v", err)
	}
	if len(toks) != 1 || toks[0].ID != good.ID {
		t.Errorf("Tokens: %v, want only the good token", toks)
	}
	if got, err := e.store.FindToken(ctxT(t), &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, RefreshToken: good.RefreshToken}); err != nil || got.ID != good.ID {
		t.Errorf("FindToken of the good token: %v, %v", got, err)
	}
	if err := e.store.SaveToken(ctxT(t), &tokenstore.Token{ID: good.ID, AccessToken: "1000.access-after"}); err != nil {
		t.Errorf("refresh of the good token: %v", err)
	}
	r, err := e.store.Check(ctxT(t))
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if len(r.Corrupt) != len(corrupt) {
		t.Errorf("Check: corrupt %v, want %d entries %v", r.Corrupt, len(corrupt), corrupt)
	}
	noSecrets(t, "Check report", r.String(), secrets...)
	noSecrets(t, "log", e.log.String(), secrets...)
	if !strings.Contains(e.log.String(), "corrupt") && !strings.Contains(e.log.String(), "malformed") {
		t.Errorf("the corrupt entries were not logged: %q", e.log.String())
	}
	// A corrupt token can still be deleted.
	for _, id := range corrupt {
		if err := e.store.DeleteToken(ctxT(t), id); err != nil {
			t.Errorf("DeleteToken of a corrupt token: %v", err)
		}
	}
	if r, err := e.store.Check(ctxT(t)); err != nil || !r.OK() || r.Tokens != 1 {
		t.Errorf("Check after deleting the corrupt tokens: %v, %v", r, err)
	}
}

// A corrupt index entry is an error for the lookups that need it (never a
// silent "not found"); FindTokenByID does not need it.
func TestCorruptIndex(t *testing.T) {
	e := newEnv(t, "")
	a := alice()
	mustSave(t, e.store, a)
	writeRaw(t, e, casstore.IndexName(0), map[string]any{"document": "{broken"})
	_, err := e.store.FindToken(ctxT(t), &tokenstore.Token{UserName: a.UserName})
	if !errors.Is(err, tokenstore.ErrMalformed) {
		t.Errorf("FindToken with a corrupt index: %v, want ErrMalformed", err)
	}
	if _, err := e.store.FindTokenByID(ctxT(t), a.ID); err != nil {
		t.Errorf("FindTokenByID with a corrupt index: %v", err)
	}
}
