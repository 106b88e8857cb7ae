package main

// Test helpers: the binary built once in TestMain and run for real, the
// real servers (moto_server, a Vault dev server, the gcpsmtest emulator,
// MariaDB) found the way ./scripts/test.sh exports them, and the Zoho
// token data the import tests use.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/cmd/cloudtokens/internal/storeurl"
	"github.com/cloudtokens/cloudtokens/gcpsm/gcpsmtest"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// binary is the cloudtokens command built by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cloudtokens-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "cloudtokens")
	build := exec.Command("go", "build", "-o", binary, ".")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building cloudtokens: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// memStores backs the mem:// scheme of the in-process tests: one
// tokenstore.MemoryStore per name, for as long as the test binary runs.
// (The built binary has no such scheme.)
var memStores sync.Map

func init() {
	storeurl.Register("mem", func(_ context.Context, u *storeurl.URL) (tokenstore.Store, error) {
		s, _ := memStores.LoadOrStore(u.Prefix, tokenstore.NewMemoryStore())
		return s.(*tokenstore.MemoryStore), nil
	})
}

func inCI() bool {
	v, err := strconv.ParseBool(os.Getenv("CI"))
	return err == nil && v
}

// need returns the values of the environment variables, or skips the
// test (fails it when CI=true) when one is unset.
func need(t *testing.T, names ...string) []string {
	t.Helper()
	var out []string
	for _, n := range names {
		v := os.Getenv(n)
		if v == "" {
			msg := fmt.Sprintf("%s is unset: this test needs a real server (./scripts/test.sh starts them; scripts/backends.sh, scripts/mariadb.sh)", n)
			if inCI() {
				t.Fatal("CI=true: " + msg)
			}
			t.Skip(msg)
		}
		out = append(out, v)
	}
	return out
}

func uniq() string {
	var b [5]byte
	rand.Read(b[:])
	return "t" + hex.EncodeToString(b[:])
}

// testStore is a store under test: the URL the binary is given and the
// same store opened in the test.
type testStore struct {
	name string
	url  string
	*storeurl.Store
}

func open(t *testing.T, name, url string) testStore {
	t.Helper()
	u, err := storeurl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	st, err := storeurl.Open(context.Background(), u)
	if err != nil {
		t.Fatalf("opening %s: %v", url, err)
	}
	t.Cleanup(func() { st.Close() })
	return testStore{name: name, url: url, Store: st}
}

// testShards is the index shard count of the test stores: 500 tokens
// need more than one 64 KiB shard (about 300 tokens each).
const testShards = 4

// awsStore is a fresh prefix on moto_server ($CLOUDTOKENS_AWS_ENDPOINT).
func awsStore(t *testing.T) testStore {
	ep := need(t, "CLOUDTOKENS_AWS_ENDPOINT")[0]
	for k, v := range map[string]string{"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"} {
		if os.Getenv(k) == "" {
			t.Setenv(k, v)
		}
	}
	return open(t, "aws", fmt.Sprintf("aws://clitest/%s?endpoint=%s&force-delete=true&shards=%d", uniq(), ep, testShards))
}

// vaultStore is a fresh prefix on the Vault dev server
// ($CLOUDTOKENS_VAULT_ADDR, $CLOUDTOKENS_VAULT_TOKEN), KV v2 at secret/.
// The binary finds the token in VAULT_TOKEN, as an operator's would.
func vaultStore(t *testing.T) testStore {
	v := need(t, "CLOUDTOKENS_VAULT_ADDR", "CLOUDTOKENS_VAULT_TOKEN")
	t.Setenv("VAULT_TOKEN", v[1])
	return open(t, "vault", fmt.Sprintf("vault://secret/clitest/%s?addr=%s&shards=%d", uniq(), v[0], testShards))
}

// gcpStore is a fresh gcpsmtest emulator, reached over TCP by the
// official client in the binary and in the test.
func gcpStore(t *testing.T) testStore {
	srv := gcpsmtest.Start(t)
	return open(t, "gcp", fmt.Sprintf("gcp://test-project/%s?endpoint=%s&shards=%d", uniq(), srv.Addr(), testShards))
}

// memStore is a MemoryStore, for the in-process tests (runApp).
func memStore(t *testing.T) testStore { return open(t, "mem", "mem://"+uniq()) }

// cloudStores returns one fresh store of each real backend.
func cloudStores(t *testing.T) []testStore {
	return []testStore{vaultStore(t), awsStore(t), gcpStore(t)}
}

// result is the outcome of one run of the command.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// cli runs the built binary with stdin from /dev/null (not a terminal).
func cli(t *testing.T, args ...string) result {
	t.Helper()
	return cliIn(t, nil, args...)
}

func cliIn(t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running cloudtokens %v: %v", args, err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String()}
}

// runApp runs the command in this process (where mem:// URLs work).
func runApp(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: os.Getenv}
	code := a.run(context.Background(), args)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

func wantCode(t *testing.T, r result, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("want exit %d, got %s", code, r)
	}
}

func decode[T any](t *testing.T, r result) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("decoding the JSON output: %v\n%s", err, r)
	}
	return v
}

// noSecrets fails the test if out holds one of the secret values of
// tokens.
func noSecrets(t *testing.T, out string, tokens ...*tokenstore.Token) {
	t.Helper()
	for _, tk := range tokens {
		for _, s := range []string{tk.AccessToken, tk.RefreshToken, tk.GrantToken, tk.ClientSecret} {
			if s != "" && strings.Contains(out, s) {
				t.Fatalf("the output shows a secret value of token %s", tk.ID)
			}
		}
	}
}

// seed saves n varied tokens into st with SaveToken and returns them as
// stored (with their IDs).
func seed(t *testing.T, st tokenstore.Store, n int) []*tokenstore.Token {
	t.Helper()
	var out []*tokenstore.Token
	for i := range n {
		tk := zohoToken(i)
		tk.ID = ""
		if err := st.SaveToken(context.Background(), tk); err != nil {
			t.Fatalf("seeding token %d: %v", i, err)
		}
		out = append(out, tk)
	}
	return out
}

// Zoho data: row i of a 500-row Zoho store.
const zohoRows = 500

var zohoBase = time.UnixMilli(1767225600000).UTC()

// zohoToken is the token of good row i: varied the way real stores are
// (no user name, no access token, a grant token, no expiry, no API
// domain, a user name with a comma; three clients).
func zohoToken(i int) *tokenstore.Token {
	t := &tokenstore.Token{
		ID:           strconv.Itoa(i + 1),
		UserName:     fmt.Sprintf("user%03d@example.com", i),
		ClientID:     fmt.Sprintf("1000.CLIENT%d", i%3),
		ClientSecret: fmt.Sprintf("cs-%d-9f8e7d6c5b4a", i%3),
		RefreshToken: fmt.Sprintf("1000.rt%04d.0a1b2c3d4e5f6a7b8c9d", i),
		AccessToken:  fmt.Sprintf("1000.at%04d.f0e1d2c3b4a59687", i),
		Expiry:       zohoBase.Add(time.Duration(i) * time.Minute),
		RedirectURL:  "https://app.example.com/oauth/callback",
		APIDomain:    "https://www.zohoapis.com",
	}
	switch {
	case i%10 == 3:
		t.UserName = "" // found by its refresh token
	case i == 42:
		t.UserName = "Smith, J (ops)"
	}
	if i%5 == 0 {
		t.AccessToken = ""
	}
	if i%7 == 0 {
		t.GrantToken = fmt.Sprintf("1000.gt%04d", i)
	}
	if i%11 == 0 {
		t.Expiry = time.Time{}
	}
	if i%4 == 0 {
		t.APIDomain = ""
	}
	return t
}

// zohoFields is token t as the 10 fields of a Zoho row.
func zohoFields(t *tokenstore.Token) []string {
	exp := ""
	if !t.Expiry.IsZero() {
		exp = strconv.FormatInt(t.Expiry.UnixMilli(), 10)
	}
	return []string{t.ID, t.UserName, t.ClientID, t.ClientSecret, t.RefreshToken, t.AccessToken, t.GrantToken, exp, t.RedirectURL, t.APIDomain}
}

// badRows are the 0-based rows of the Zoho data that are broken on
// purpose; every source breaks them in its own way.
var badRows = []int{100, 200, 300, 400, 450}

func isBad(i int) bool {
	for _, b := range badRows {
		if b == i {
			return true
		}
	}
	return false
}

// goodTokens are the tokens of the rows that are not broken.
func goodTokens() map[string]*tokenstore.Token {
	out := map[string]*tokenstore.Token{}
	for i := range zohoRows {
		if !isBad(i) {
			t := zohoToken(i)
			out[t.ID] = t
		}
	}
	return out
}

// writeZohoCSV writes the FileStore CSV of the Zoho data, as the Python
// SDK writes it (header, CRLF, minimal quoting), with its 5 bad rows;
// it returns the path and the lines of the bad rows.
func writeZohoCSV(t *testing.T) (string, []string) { return writeZohoCSVRows(t, zohoRows) }

// writeZohoCSVRows writes the first n rows of the Zoho data.
func writeZohoCSVRows(t *testing.T, n int) (string, []string) {
	t.Helper()
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.UseCRLF = true
	w.Write([]string{"id", "user_name", "client_id", "client_secret", "refresh_token", "access_token", "grant_token", "expiry_time", "redirect_url", "api_domain"})
	var bad []string
	for i := range n {
		f := zohoFields(zohoToken(i))
		switch i {
		case 100:
			f[7] = "tomorrow" // not epoch milliseconds
		case 200:
			f[4], f[5], f[6] = "", "", "" // no token at all
		case 300:
			f[1] = "bad\xff\xfeuser" // not UTF-8
		case 400:
			f = f[:8] // a truncated row
		case 450:
			w.Flush()
			// A bare quote in an unquoted field: malformed CSV.
			f[2] = `1000."CLIENT`
			b.WriteString(strings.Join(f, ",") + "\r\n")
			bad = append(bad, fmt.Sprintf("line %d", i+2))
			continue
		}
		if isBad(i) {
			bad = append(bad, fmt.Sprintf("line %d", i+2))
		}
		w.Write(f)
	}
	w.Flush()
	path := filepath.Join(t.TempDir(), "tokens.csv")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, bad
}

// zohoSQLRows returns the rows of the oauthtoken table for the Zoho data
// (empty optional fields as NULL in every other row) with 5 bad rows;
// utf8Bad breaks row 450 with a user name that is not UTF-8 (SQLite
// stores any bytes), else with empty strings for every token.
func zohoSQLRows(utf8Bad bool) (rows [][]any, bad []string) {
	for i := range zohoRows {
		f := zohoFields(zohoToken(i))
		switch i {
		case 100:
			f[7] = "tomorrow"
		case 200:
			f[4], f[5], f[6] = "", "", ""
		case 300:
			f[7] = "-5"
		case 400:
			f[7] = "1.5e12"
		case 450:
			if utf8Bad {
				f[1] = "bad\xff\xfeuser"
			} else {
				f[4], f[5], f[6] = "", "", ""
			}
		}
		row := make([]any, len(f))
		for j, v := range f {
			if v == "" && (i%2 == 0 || i == 200) {
				row[j] = nil
			} else {
				row[j] = v
			}
		}
		rows = append(rows, row)
		if isBad(i) {
			bad = append(bad, fmt.Sprintf("id %q", f[0]))
		}
	}
	return rows, bad
}

const zohoTableDDL = `CREATE TABLE %s (id varchar(10) NOT NULL, user_name varchar(255), client_id varchar(255),
	client_secret varchar(255), refresh_token varchar(255), access_token varchar(255), grant_token varchar(255),
	expiry_time varchar(20), redirect_url varchar(255), api_domain varchar(255), primary key (id))`
