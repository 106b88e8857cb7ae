package zoho

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/cmd/cloudtokens/internal/transfer"
)

func mustRead(t *testing.T, in string) []transfer.Item {
	t.Helper()
	items, err := ReadCSV(strings.NewReader(in))
	if err != nil {
		t.Fatalf("ReadCSV: %v", err)
	}
	return items
}

// The file the Python SDK's FileStore writes: header, CRLF line ends,
// minimal quoting, empty fields for None.
func TestReadCSVFileStore(t *testing.T) {
	in := "id,user_name,client_id,client_secret,refresh_token,access_token,grant_token,expiry_time,redirect_uri,api_domain\r\n" +
		"1,alice@example.com,1000.CL,sec1,1000.rt1,1000.at1,,1767225600000,https://app.example.com/cb,https://www.zohoapis.com\r\n" +
		"\r\n" +
		"2,\"Smith, J\",1000.CL,sec2,1000.rt2,,,,,\r\n"
	items := mustRead(t, in)
	if len(items) != 2 {
		t.Fatalf("got %d items, want 2: %+v", len(items), items)
	}
	a := items[0].Token
	if items[0].Pos != "line 2" || a.ID != "1" || a.UserName != "alice@example.com" || a.ClientSecret != "sec1" ||
		a.RefreshToken != "1000.rt1" || a.AccessToken != "1000.at1" || a.GrantToken != "" ||
		!a.Expiry.Equal(time.UnixMilli(1767225600000)) || a.RedirectURL != "https://app.example.com/cb" || a.APIDomain != "https://www.zohoapis.com" {
		t.Errorf("row 1 read as %+v at %s", a, items[0].Pos)
	}
	b := items[1].Token
	if items[1].Pos != "line 4" || b.UserName != "Smith, J" || !b.Expiry.IsZero() || b.AccessToken != "" {
		t.Errorf("row 2 read as %+v at %s", b, items[1].Pos)
	}
}

func TestReadCSVLegacyAndPositional(t *testing.T) {
	// A 9-column file of an older SDK (user_mail, no api_domain).
	items := mustRead(t, "id,user_mail,client_id,client_secret,refresh_token,access_token,grant_token,expiry_time,redirect_url\n"+
		"7,bob@example.com,C,S,R,A,,5,https://x\n")
	if len(items) != 1 || items[0].Err != nil || items[0].Token.UserName != "bob@example.com" || items[0].Token.RedirectURL != "https://x" {
		t.Fatalf("legacy file read as %+v", items)
	}
	// No header: by position.
	items = mustRead(t, "8,carol@example.com,C,S,R,A,G,6,https://y,https://api\n")
	if len(items) != 1 || items[0].Token.ID != "8" || items[0].Token.GrantToken != "G" || items[0].Token.APIDomain != "https://api" || items[0].Pos != "line 1" {
		t.Fatalf("headerless file read as %+v", items)
	}
}

func TestReadCSVBadRows(t *testing.T) {
	in := strings.Join([]string{
		"id,user_name,client_id,client_secret,refresh_token,access_token,grant_token,expiry_time,redirect_url,api_domain",
		"1,a,C,S,R,A,,tomorrow,,",      // line 2: expiry not a number
		"2,b,C,S,R,A,,",                // line 3: 8 fields
		`3,c,1"0,S,R,A,,1,,`,           // line 4: bare quote
		"4,d,C,S,R,A,,-5,,",            // line 5: negative expiry
		"5,e,C,S,R,A,,1767225600000,,", // line 6: good
	}, "\n") + "\n"
	items := mustRead(t, in)
	if len(items) != 5 {
		t.Fatalf("got %d items, want 5", len(items))
	}
	for i, want := range []string{"line 2", "line 3", "line 4", "line 5"} {
		if items[i].Pos != want || !errors.Is(items[i].Err, ErrBadRow) {
			t.Errorf("item %d: %s %v, want a bad row at %s", i, items[i].Pos, items[i].Err, want)
		}
	}
	if items[4].Err != nil || items[4].Token.ID != "5" || items[4].Pos != "line 6" {
		t.Errorf("the good row after bad ones: %+v", items[4])
	}
	// The error of a bad expiry quotes the value, never a secret.
	if !strings.Contains(items[0].Err.Error(), `"tomorrow"`) || strings.Contains(items[0].Err.Error(), "R,A") {
		t.Errorf("error: %v", items[0].Err)
	}
}

func TestReadCSVUnknownHeader(t *testing.T) {
	_, err := ReadCSV(strings.NewReader("id,user_name,password\n1,a,b\n"))
	if !errors.Is(err, ErrFormat) {
		t.Fatalf("unknown column: %v, want ErrFormat", err)
	}
	_, err = ReadCSV(strings.NewReader("1,2,3\n"))
	if !errors.Is(err, ErrFormat) {
		t.Fatalf("3 fields without a header: %v, want ErrFormat", err)
	}
}

// The SQLite table of the seed's CustomStoreSQLite, through the pure-Go
// driver.
func TestReadSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "zohooauth.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(`CREATE TABLE oauthtoken (id varchar(10) NOT NULL, user_name varchar(255), client_id varchar(255),
		client_secret varchar(255), refresh_token varchar(255), access_token varchar(255), grant_token varchar(255),
		expiry_time varchar(20), redirect_url varchar(255), api_domain varchar(255), primary key (id))`)
	if err != nil {
		t.Fatal(err)
	}
	ins := `INSERT INTO oauthtoken VALUES (?,?,?,?,?,?,?,?,?,?)`
	for _, row := range [][]any{
		{"1", "alice@example.com", "C", "S", "R1", "A1", nil, "1767225600000", "https://cb", "https://api"},
		{"2", nil, "C", "S", "R2", nil, nil, "soon", nil, nil},
		{"3", "bob@example.com", "C", "S", nil, nil, "G3", nil, nil, nil},
	} {
		if _, err := db.Exec(ins, row...); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	for _, dsn := range []string{"sqlite://" + path, "sqlite:" + path + "?table=oauthtoken"} {
		d, err := OpenDB(dsn)
		if err != nil {
			t.Fatalf("OpenDB(%s): %v", dsn, err)
		}
		items, err := d.Read(context.Background())
		d.Close()
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if len(items) != 3 {
			t.Fatalf("got %d items", len(items))
		}
		if a := items[0].Token; a == nil || a.UserName != "alice@example.com" || a.RefreshToken != "R1" || !a.Expiry.Equal(time.UnixMilli(1767225600000)) || a.GrantToken != "" {
			t.Errorf("row 1: %+v", items[0])
		}
		if items[1].Pos != `id "2"` || !errors.Is(items[1].Err, ErrBadRow) {
			t.Errorf("row 2: %+v, want a bad row", items[1])
		}
		if b := items[2].Token; b == nil || b.GrantToken != "G3" || !b.Expiry.IsZero() {
			t.Errorf("row 3: %+v", items[2])
		}
	}

	if _, err := OpenDB("sqlite:" + filepath.Join(t.TempDir(), "missing.db")); err == nil {
		t.Error("a missing SQLite file opened (sqlite would have created it)")
	}
	d, err := OpenDB("sqlite:" + path + "?table=nosuch")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Read(context.Background()); err == nil {
		t.Error("reading a missing table succeeded")
	}
	d.Close()
}

func TestOpenDBDSN(t *testing.T) {
	for _, bad := range []string{"postgres://x", "sqlite:", "sqlite:x.db?table=a;drop", "sqlite:x.db?foo=1", "mysql://u:p@tcp(h:1)/db?table=x-y"} {
		if _, err := OpenDB(bad); err == nil {
			t.Errorf("OpenDB(%q) succeeded", bad)
		}
	}
	d, err := OpenDB("mysql://zoho:hunter2@tcp(127.0.0.1:3306)/zohooauth?table=tokens")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if s := d.String(); strings.Contains(s, "hunter2") || !strings.Contains(s, "tokens") {
		t.Errorf("String() = %q: shows the password or lacks the table", s)
	}
}
