package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// sorted returns the tokens of st sorted by ID.
func sorted(t *testing.T, st testStore) []*tokenstore.Token {
	t.Helper()
	all, err := st.Tokens(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(all, func(a, b *tokenstore.Token) int { return strings.Compare(a.ID, b.ID) })
	return all
}

func sameTokens(t *testing.T, a, b testStore) {
	t.Helper()
	x, y := sorted(t, a), sorted(t, b)
	if len(x) != len(y) {
		t.Fatalf("%s holds %d tokens, %s %d", a.name, len(x), b.name, len(y))
	}
	for i := range x {
		if *x[i] != *y[i] {
			t.Fatalf("%s has %v, %s has %v", a.name, x[i], b.name, y[i])
		}
	}
}

// migrate runs migrate from a to b and checks its summary: n records
// inserted and verified the first time, none copied on a rerun.
func migrate(t *testing.T, run importRun, a, b testStore, n int) {
	t.Helper()
	r := run(t, "migrate", "--from", a.url, "--to", b.url, "--json")
	wantCode(t, r, exitOK)
	res := decode[transferOutput](t, r).Result
	if res.Read != n || res.Inserted != n || res.Verified != n || len(res.Problems) != 0 {
		t.Fatalf("migrate %s -> %s: %+v", a.name, b.name, res)
	}
	sameTokens(t, a, b)
	r = run(t, "migrate", "--from", a.url, "--to", b.url, "--json")
	wantCode(t, r, exitOK)
	again := decode[transferOutput](t, r).Result
	if again.Copied() != 0 || again.Unchanged != n || again.Verified != n || again.Digest != res.Digest {
		t.Fatalf("rerun of migrate %s -> %s copied something: %+v", a.name, b.name, again)
	}
}

// Vault -> AWS -> GCP keeps every ID and value, a rerun copies nothing,
// and check finds every store clean. (Needs casstore's ImportToken.)
func TestMigrateVaultAWSGCP(t *testing.T) {
	v, a, g := vaultStore(t), awsStore(t), gcpStore(t)
	seeded := seed(t, v, 40)
	migrate(t, cli, v, a, len(seeded))
	migrate(t, cli, a, g, len(seeded))
	sameTokens(t, v, g)
	for _, st := range []testStore{v, a, g} {
		r := cli(t, "check", st.url, "--json")
		wantCode(t, r, exitOK)
		if c := decode[map[string]any](t, r); c["ok"] != true || c["tokens"] != float64(len(seeded)) {
			t.Errorf("check %s: %s", st.name, r.stdout)
		}
	}
	// Resumable: a token refreshed in the source since is copied again;
	// one refreshed in the target since is kept.
	ctx := context.Background()
	src, _ := a.FindTokenByID(ctx, seeded[0].ID)
	src.AccessToken, src.Expiry = "1000.at-refreshed-in-aws", src.Expiry.Add(time.Hour)
	if err := a.SaveToken(ctx, src); err != nil {
		t.Fatal(err)
	}
	dst, _ := g.FindTokenByID(ctx, seeded[1].ID)
	dst.AccessToken, dst.Expiry = "1000.at-refreshed-in-gcp", dst.Expiry.Add(2*time.Hour)
	if err := g.SaveToken(ctx, dst); err != nil {
		t.Fatal(err)
	}
	r := cli(t, "migrate", "--from", a.url, "--to", g.url, "--json")
	wantCode(t, r, exitOK)
	res := decode[transferOutput](t, r).Result
	if res.Updated != 1 || res.KeptNewer != 1 || res.Unchanged != len(seeded)-2 {
		t.Fatalf("migrate after refreshes: %+v", res)
	}
	if got, _ := g.FindTokenByID(ctx, seeded[0].ID); got.AccessToken != "1000.at-refreshed-in-aws" {
		t.Errorf("the newer source token was not copied: %v", got)
	}
	if got, _ := g.FindTokenByID(ctx, seeded[1].ID); got.AccessToken != "1000.at-refreshed-in-gcp" {
		t.Errorf("the newer target token was overwritten: %v", got)
	}
	noSecrets(t, r.stdout+r.stderr, seeded...)
}

// The same through MemoryStores in this process: it needs no server and
// no engine change, so it proves the command now.
func TestMigrateMemory(t *testing.T) {
	a, b, c := memStore(t), memStore(t), memStore(t)
	seeded := seed(t, a, 40)
	migrate(t, runApp, a, b, len(seeded))
	migrate(t, runApp, b, c, len(seeded))
	sameTokens(t, a, c)
	r := runApp(t, "migrate", "--from", a.url, "--to", a.url)
	wantCode(t, r, exitUsage)
	// A dry run writes nothing.
	d := memStore(t)
	r = runApp(t, "migrate", "--from", a.url, "--to", d.url, "--dry-run", "--json")
	wantCode(t, r, exitOK)
	if res := decode[transferOutput](t, r).Result; res.Inserted != len(seeded) || !res.DryRun || len(sorted(t, d)) != 0 {
		t.Fatalf("dry run: %+v", res)
	}
}

// export, import into another store, export again: the two files are
// byte for byte the same; the file is private.
func roundTrip(t *testing.T, run importRun, from, to testStore) {
	dir := t.TempDir()
	f1, f2 := filepath.Join(dir, "one.jsonl"), filepath.Join(dir, "two.jsonl")
	wantCode(t, run(t, "export", from.url, "-o", f1), exitOK)
	r := run(t, "import", "--from", "jsonl:"+f1, "--to", to.url, "--json")
	wantCode(t, r, exitOK)
	n := len(sorted(t, from))
	if res := decode[transferOutput](t, r).Result; res.Inserted != n || res.Verified != n {
		t.Fatalf("import of the export: %+v", res)
	}
	wantCode(t, run(t, "export", to.url, "-o", f2), exitOK)
	b1, err1 := os.ReadFile(f1)
	b2, err2 := os.ReadFile(f2)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if len(b1) == 0 || !bytes.Equal(b1, b2) {
		t.Fatalf("the export of the import differs from the export (%d and %d bytes)", len(b1), len(b2))
	}
	if lines := bytes.Count(b1, []byte("\n")); lines != n {
		t.Fatalf("%d lines for %d tokens", lines, n)
	}
	for _, f := range []string{f1, f2} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v, %v; want 0600", f, fi.Mode(), err)
		}
	}
	// An existing file is replaced only with --force.
	r = run(t, "export", from.url, "-o", f1)
	wantCode(t, r, exitUsage)
	wantCode(t, run(t, "export", from.url, "-o", f1, "--force"), exitOK)
	// To a pipe, the same bytes.
	r = run(t, "export", from.url)
	wantCode(t, r, exitOK)
	if r.stdout != string(b1) {
		t.Fatal("export to standard output differs from the file")
	}
}

func TestExportImportRoundTrip(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		a := memStore(t)
		seed(t, a, 30)
		roundTrip(t, runApp, a, memStore(t))
	})
	t.Run("aws-to-vault", func(t *testing.T) {
		a := awsStore(t)
		seed(t, a, 30)
		roundTrip(t, cli, a, vaultStore(t))
	})
	t.Run("vault-to-gcp", func(t *testing.T) {
		v := vaultStore(t)
		seed(t, v, 30)
		roundTrip(t, cli, v, gcpStore(t))
	})
}
