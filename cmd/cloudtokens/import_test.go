package main

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/cloudtokens/cloudtokens/cmd/cloudtokens/internal/transfer"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

type importRun func(t *testing.T, args ...string) result

// checkZohoImport checks the outcome of importing the Zoho data into st:
// 495 records imported, exactly the 5 bad ones reported at their
// positions, and every good row stored with all its values, under its
// own ID (keepIDs) or a new one.
func checkZohoImport(t *testing.T, r result, st testStore, badPos []string, keepIDs bool) {
	t.Helper()
	wantCode(t, r, exitPartial)
	out := decode[transferOutput](t, r)
	res := out.Result
	if res.Read != zohoRows || res.Inserted != zohoRows-len(badRows) || len(res.Problems) != len(badRows) || res.Verified != res.Inserted {
		t.Fatalf("import into %s: read %d, inserted %d, verified %d, %d problems: %+v", st.name, res.Read, res.Inserted, res.Verified, len(res.Problems), res.Problems)
	}
	var pos []string
	for _, p := range res.Problems {
		pos = append(pos, p.Pos)
		if p.Kind != transfer.KindInvalid {
			t.Errorf("problem %+v: want kind invalid", p)
		}
	}
	if !slices.Equal(pos, badPos) {
		t.Errorf("problems reported at %v, want %v", pos, badPos)
	}
	want := goodTokens()
	got, err := st.Tokens(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%s holds %d tokens, want %d", st.name, len(got), len(want))
	}
	for _, g := range got {
		w := want[g.ID]
		if !keepIDs {
			// Find the row by its refresh token, unique in the data.
			for _, c := range want {
				if c.RefreshToken == g.RefreshToken {
					w = c.Clone()
					w.ID = g.ID
				}
			}
		}
		if w == nil || *g != *w {
			t.Fatalf("%s: stored %v, want %v", st.name, g, w)
		}
	}
	noSecrets(t, r.stdout+r.stderr, slices.Collect(maps.Values(want))...)
}

// importTwice imports src into st twice: the second run must write
// nothing and find the 495 records unchanged.
func importTwice(t *testing.T, run importRun, st testStore, src string, badPos []string, extra ...string) {
	t.Helper()
	args := append([]string{"import", "--from", src, "--to", st.url, "--json"}, extra...)
	keepIDs := !slices.Contains(extra, "--new-ids")
	checkZohoImport(t, run(t, args...), st, badPos, keepIDs)
	r := run(t, args...)
	wantCode(t, r, exitPartial)
	res := decode[transferOutput](t, r).Result
	if res.Copied() != 0 || res.Unchanged != zohoRows-len(badRows) || len(res.Problems) != len(badRows) || res.Verified != res.Unchanged {
		t.Fatalf("rerun into %s: %+v", st.name, res)
	}
}

func TestImportZohoCSV(t *testing.T) {
	path, bad := writeZohoCSV(t)
	t.Run("memory", func(t *testing.T) { importTwice(t, runApp, memStore(t), "zoho-csv:"+path, bad) })
	t.Run("memory-new-ids", func(t *testing.T) { importTwice(t, runApp, memStore(t), "zoho-csv:"+path, bad, "--new-ids") })
	for _, st := range cloudStores(t) {
		t.Run(st.name, func(t *testing.T) { importTwice(t, cli, st, "zoho-csv:"+path, bad) })
	}
	t.Run("vault-new-ids", func(t *testing.T) { importTwice(t, cli, vaultStore(t), "zoho-csv:"+path, bad, "--new-ids") })
}

// The seed's CustomStoreSQLite table, read by the pure-Go driver.
func TestImportZohoSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "zohooauth.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	rows, bad := zohoSQLRows(true)
	fillTable(t, db, `"oauthtoken"`, "?", rows)
	db.Close()
	src := "zoho-sql:sqlite://" + path
	t.Run("memory", func(t *testing.T) { importTwice(t, runApp, memStore(t), src, bad) })
	t.Run("vault", func(t *testing.T) { importTwice(t, cli, vaultStore(t), src, bad) })
}

// The DBStore table in MariaDB (scripts/mariadb.sh), through
// go-sql-driver/mysql.
func TestImportZohoMySQL(t *testing.T) {
	dsn := need(t, "CLOUDTOKENS_MYSQL_DSN")[0]
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	table := "oauthtoken_" + uniq()
	rows, bad := zohoSQLRows(false)
	fillTable(t, db, "`"+table+"`", "?", rows)
	t.Cleanup(func() { db.Exec("DROP TABLE `" + table + "`") })
	src := fmt.Sprintf("zoho-sql:mysql://%s?table=%s", dsn, table)
	t.Run("memory", func(t *testing.T) { importTwice(t, runApp, memStore(t), src, bad) })
	t.Run("gcp", func(t *testing.T) { importTwice(t, cli, gcpStore(t), src, bad) })
	// The password never shows in the output.
	r := runApp(t, "import", "--from", src, "--to", memStore(t).url, "--dry-run")
	if cfg.Passwd == "" || !strings.Contains(r.stdout, "xxx@tcp(") || strings.Contains(r.stdout+r.stderr, cfg.Passwd) {
		t.Errorf("the output shows the database password:\n%s", r)
	}
}

func fillTable(t *testing.T, db *sql.DB, table, ph string, rows [][]any) {
	t.Helper()
	if _, err := db.Exec(fmt.Sprintf(zohoTableDDL, table)); err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	stmt, err := tx.Prepare("INSERT INTO " + table + " VALUES (" + ph + ",?,?,?,?,?,?,?,?,?)")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if _, err := stmt.Exec(r...); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// A store whose keys are already taken: the rows that clash are reported
// as conflicts, the others imported.
func TestImportConflicts(t *testing.T) {
	st := memStore(t)
	ctx := context.Background()
	// user001 of client 1 is already there under another ID.
	if err := st.SaveToken(ctx, &tokenstore.Token{UserName: "user001@example.com", ClientID: "1000.CLIENT1", RefreshToken: "other"}); err != nil {
		t.Fatal(err)
	}
	path, _ := writeZohoCSV(t)
	r := runApp(t, "import", "--from", "zoho-csv:"+path, "--to", st.url, "--json")
	wantCode(t, r, exitPartial)
	res := decode[transferOutput](t, r).Result
	if res.Inserted != zohoRows-len(badRows)-1 || res.Count(transfer.KindConflict) != 1 || res.Count(transfer.KindInvalid) != len(badRows) {
		t.Fatalf("%+v", res)
	}
}
