package main

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/cloudtokens/cloudtokens/awssm"
	"github.com/cloudtokens/cloudtokens/oauthtest"
	"github.com/cloudtokens/cloudtokens/tokensource"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
	"github.com/cloudtokens/cloudtokens/vault"
)

func TestListAndShow(t *testing.T) {
	st := vaultStore(t)
	seeded := seed(t, st, 12)

	r := cli(t, "list", st.url)
	wantCode(t, r, exitOK)
	if !strings.HasPrefix(r.stdout, "ID ") || strings.Count(r.stdout, "\n") != len(seeded)+1 || !strings.Contains(r.stdout, "user001@example.com") {
		t.Fatalf("list:\n%s", r)
	}
	noSecrets(t, r.stdout+r.stderr, seeded...)

	r = cli(t, "list", st.url, "--json")
	wantCode(t, r, exitOK)
	l := decode[listOutput](t, r)
	if l.Count != len(seeded) || len(l.Tokens) != len(seeded) || !slices.IsSortedFunc(l.Tokens, func(a, b tokenView) int { return strings.Compare(a.ID, b.ID) }) {
		t.Fatalf("list --json: %+v", l)
	}
	for _, v := range l.Tokens {
		i := slices.IndexFunc(seeded, func(s *tokenstore.Token) bool { return s.ID == v.ID })
		want := viewOf(seeded[i], zohoBase)
		if v.UserName != want.UserName || v.ClientID != want.ClientID || v.ExpiryTime != want.ExpiryTime || v.Present != want.Present {
			t.Errorf("list shows %+v for %v", v, seeded[i])
		}
	}
	noSecrets(t, r.stdout, seeded...)

	tk := seeded[1]
	r = cli(t, "show", st.url, tk.ID)
	wantCode(t, r, exitOK)
	if !strings.Contains(r.stdout, "refresh_token:  [redacted]") || !strings.Contains(r.stdout, tk.UserName) {
		t.Fatalf("show:\n%s", r)
	}
	noSecrets(t, r.stdout+r.stderr, seeded...)
	r = cli(t, "show", st.url, "--user", tk.UserName, "--json")
	wantCode(t, r, exitOK)
	if s := decode[showOutput](t, r); s.Token.ID != tk.ID || !s.Token.Present.RefreshToken {
		t.Fatalf("show --user: %+v", s)
	}

	wantCode(t, cli(t, "show", st.url, "nosuchid"), exitNotFound)
	wantCode(t, cli(t, "show", st.url, "--user", "nobody@example.com"), exitNotFound)
	wantCode(t, cli(t, "show", st.url, "bad/id"), exitUsage)
	wantCode(t, cli(t, "show", st.url, tk.ID, "--user", tk.UserName), exitUsage)
	wantCode(t, cli(t, "show", st.url), exitUsage)
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"list"},
		{"list", "s3://bucket"},
		{"list", "aws://p?regoin=x"},
		{"list", "vault://secret/p", "--no-such-flag"},
		{"import", "--to", "vault://secret/p"},
		{"import", "--from", "parquet:x", "--to", "vault://secret/p"},
		{"import", "--from", "zoho-sql:postgres://x", "--to", "vault://secret/p"},
		{"revoke", "vault://secret/p", "someid"},
	} {
		r := cli(t, args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "cloudtokens") {
			t.Errorf("cloudtokens %v: want exit 2 and a message, got %s", args, r)
		}
	}
	// An unreachable server is an error (1), not a usage error.
	r := cli(t, "list", "vault://secret/p?addr=http://127.0.0.1:1")
	wantCode(t, r, exitError)
	r = cli(t, "--timeout", "1ns", "list", "vault://secret/p?addr=http://127.0.0.1:1")
	wantCode(t, r, exitError)
	// A store without check.
	r = runApp(t, "check", memStore(t).url)
	wantCode(t, r, exitError)
}

func TestDelete(t *testing.T) {
	st := vaultStore(t)
	ctx := context.Background()
	seeded := seed(t, st, 5)
	id := seeded[0].ID

	wantCode(t, cli(t, "delete", st.url, "nosuchid", "--yes"), exitNotFound)
	// Without a terminal to confirm on, no --yes means no.
	r := cli(t, "delete", st.url, id)
	wantCode(t, r, exitUsage)
	if !strings.Contains(r.stderr, "--yes") {
		t.Errorf("the refusal does not mention --yes:\n%s", r)
	}
	if _, err := st.FindTokenByID(ctx, id); err != nil {
		t.Fatalf("refused delete deleted: %v", err)
	}
	wantCode(t, cli(t, "delete", st.url, id, "--yes"), exitOK)
	if _, err := st.FindTokenByID(ctx, id); !tokenstoreNotFound(err) {
		t.Fatalf("token still there: %v", err)
	}

	wantCode(t, cli(t, "delete-all", st.url), exitUsage)
	if n := len(sorted(t, st)); n != 4 {
		t.Fatalf("refused delete-all left %d tokens, want 4", n)
	}
	r = cli(t, "delete-all", st.url, "--yes")
	wantCode(t, r, exitOK)
	if !strings.Contains(r.stdout, "deleted 4 tokens") || len(sorted(t, st)) != 0 {
		t.Fatalf("delete-all:\n%s", r)
	}
	wantCode(t, cli(t, "delete-all", st.url), exitOK) // nothing to delete, nothing to confirm
}

func tokenstoreNotFound(err error) bool { return errors.Is(err, tokenstore.ErrNotFound) }

// revoke logs a user out at the provider (oauthtest, Zoho's layout) and
// deletes the record.
func TestRevoke(t *testing.T) {
	st := vaultStore(t)
	srv := oauthtest.Start(t)
	ctx := context.Background()
	cfg := tokensource.Config{TokenURL: srv.TokenURL, RevokeURL: srv.RevokeURL, ClientID: srv.ClientID(), ClientSecret: srv.ClientSecret()}
	src, err := tokensource.New(st, &tokenstore.Token{UserName: "alice@example.com", GrantToken: srv.IssueGrant("alice@example.com")}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := src.TokenContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := tok.Extra(tokensource.ExtraTokenID).(string)
	stored, err := st.FindTokenByID(ctx, id)
	if err != nil || stored.RefreshToken == "" {
		t.Fatalf("stored token %v, %v", stored, err)
	}

	wantCode(t, cli(t, "revoke", st.url, id, "--yes"), exitUsage) // no endpoint
	t.Setenv(envTokenURL, srv.TokenURL)                           // revoke URL = token URL + "/revoke"
	wantCode(t, cli(t, "revoke", st.url, "nosuchid", "--yes"), exitNotFound)
	wantCode(t, cli(t, "revoke", st.url, id), exitUsage) // no terminal, no --yes
	if srv.Revocations() != 0 {
		t.Fatal("revoked without confirmation")
	}
	r := cli(t, "revoke", st.url, id, "--yes")
	wantCode(t, r, exitOK)
	noSecrets(t, r.stdout+r.stderr, stored)
	if srv.Revocations() != 1 || srv.RefreshTokenValid(stored.RefreshToken) {
		t.Fatalf("the provider saw %d revocations; refresh token still valid: %v", srv.Revocations(), srv.RefreshTokenValid(stored.RefreshToken))
	}
	if _, err := st.FindTokenByID(ctx, id); !tokenstoreNotFound(err) {
		t.Fatalf("the record survived the revoke: %v", err)
	}
}

// breakStore deletes index bucket 0 of st and writes an orphan token
// document beside the index, as a crash mid-insert leaves one; it
// returns the orphan.
func breakStore(t *testing.T, st testStore) *tokenstore.Token {
	t.Helper()
	ctx := context.Background()
	orphan := &tokenstore.Token{ID: "orphan01", UserName: "orphan@example.com", ClientID: "1000.CLIENT0", RefreshToken: "1000.rt-orphan", AccessToken: "1000.at-orphan"}
	doc, err := tokenstore.MarshalDocument(orphan)
	if err != nil {
		t.Fatal(err)
	}
	switch s := st.Store.Store.(type) {
	case *vault.Store:
		if err := s.Backend().Delete(ctx, casstore.IndexName(0)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Backend().Create(ctx, casstore.TokenName(orphan.ID), doc); err != nil {
			t.Fatal(err)
		}
	case *awssm.Store:
		cfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sm := secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(os.Getenv("CLOUDTOKENS_AWS_ENDPOINT")) })
		if _, err := sm.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{
			SecretId: aws.String(s.Prefix() + "/" + casstore.IndexName(0)), ForceDeleteWithoutRecovery: aws.Bool(true),
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
			Name: aws.String(s.Prefix() + "/" + casstore.TokenName(orphan.ID)), SecretString: aws.String(string(doc)),
		}); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("cannot break a %T", s)
	}
	return orphan
}

// A store broken on purpose (a deleted index bucket, an orphan document)
// is found broken by check and fixed by repair. (Repair needs the engine
// rewrite; until then repair exits 1 with errors.ErrUnsupported.)
func TestCheckAndRepair(t *testing.T) {
	for _, st := range []testStore{vaultStore(t), awsStore(t)} {
		t.Run(st.name, func(t *testing.T) {
			ctx := context.Background()
			seeded := seed(t, st, 20)
			wantCode(t, cli(t, "check", st.url), exitOK)
			orphan := breakStore(t, st)

			r := cli(t, "check", st.url, "--json")
			wantCode(t, r, exitProblems)
			c := decode[map[string]any](t, r)
			if c["ok"] != false || !slices.Contains(toStrings(c["unindexed"]), orphan.ID) {
				t.Fatalf("check of the broken store: %s", r.stdout)
			}
			r = cli(t, "check", st.url)
			wantCode(t, r, exitProblems)
			if !strings.Contains(r.stdout, "problem: ") || !strings.Contains(r.stdout, orphan.ID) {
				t.Fatalf("check text:\n%s", r)
			}

			r = cli(t, "repair", st.url, "--dry-run", "--json")
			wantCode(t, r, exitProblems)
			if d := decode[repairOutput](t, r); !d.DryRun || d.Repair != nil || len(d.Actions) == 0 {
				t.Fatalf("repair --dry-run: %s", r.stdout)
			}
			wantCode(t, cli(t, "check", st.url), exitProblems) // the dry run changed nothing

			r = cli(t, "repair", st.url, "--json")
			wantCode(t, r, exitOK)
			rep := decode[repairOutput](t, r)
			if rep.Repair == nil || rep.Check["ok"] != true || rep.Check["tokens"] != float64(len(seeded)+1) {
				t.Fatalf("repair: %s", r.stdout)
			}
			wantCode(t, cli(t, "check", st.url), exitOK)
			// The orphan is a token again, found by the lookup rules.
			got, err := st.FindToken(ctx, &tokenstore.Token{UserName: orphan.UserName})
			if err != nil || got.ID != orphan.ID {
				t.Fatalf("orphan after repair: %v, %v", got, err)
			}
			for _, s := range seeded {
				if got, err := st.FindToken(ctx, &tokenstore.Token{UserName: s.UserName, ClientID: s.ClientID}); s.UserName != "" && (err != nil || got.ID != s.ID) {
					t.Fatalf("token %s after repair: %v, %v", s.ID, got, err)
				}
			}
			r = cli(t, "repair", st.url)
			wantCode(t, r, exitOK) // repairing a sound store changes nothing
		})
	}
}

func toStrings(v any) []string {
	var out []string
	if l, ok := v.([]any); ok {
		for _, x := range l {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}
