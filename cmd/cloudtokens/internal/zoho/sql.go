package zoho

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, pure Go

	"github.com/cloudtokens/cloudtokens/cmd/cloudtokens/internal/transfer"
)

// DefaultTable is the table of the Zoho SDKs' DBStore.
const DefaultTable = "oauthtoken"

// DSNForms describes the DSNs OpenDB accepts.
const DSNForms = `zoho-sql DSNs:
  sqlite:PATH                                   an SQLite file, opened read-only (sqlite:///abs/path.db or sqlite:rel/path.db)
  mysql://USER[:PASSWORD]@tcp(HOST:PORT)/DB     MySQL or MariaDB (go-sql-driver/mysql DSN after "mysql://");
                                                without a password in the DSN, $MYSQL_PWD is used
  either form: ?table=NAME                      the DBStore table (default oauthtoken)`

var tableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// DB is a Zoho DBStore database opened for reading.
type DB struct {
	db      *sql.DB
	mysql   bool
	table   string
	display string
}

// OpenDB opens the database a DSN of DSNForms names. It does not connect
// yet; Read does.
func OpenDB(dsn string) (*DB, error) {
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		return openSQLite(strings.TrimPrefix(dsn, "sqlite:"))
	case strings.HasPrefix(dsn, "mysql://"):
		return openMySQL(strings.TrimPrefix(dsn, "mysql://"))
	}
	return nil, fmt.Errorf("%w: unknown DSN (it must start with sqlite: or mysql://)\n%s", ErrFormat, DSNForms)
}

func table(q url.Values) (string, error) {
	t := q.Get("table")
	if t == "" {
		return DefaultTable, nil
	}
	if !tableName.MatchString(t) {
		return "", fmt.Errorf("%w: table name %q: want letters, digits and _", ErrFormat, t)
	}
	return t, nil
}

func openSQLite(rest string) (*DB, error) {
	path, rawQuery, _ := strings.Cut(rest, "?")
	path = strings.TrimPrefix(path, "//") // sqlite:///abs/path -> /abs/path
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, fmt.Errorf("%w: %v\n%s", ErrFormat, err, DSNForms)
	}
	for k := range q {
		if k != "table" {
			return nil, fmt.Errorf("%w: unknown sqlite parameter %q\n%s", ErrFormat, k, DSNForms)
		}
	}
	tbl, err := table(q)
	if err != nil {
		return nil, err
	}
	if path == "" {
		return nil, fmt.Errorf("%w: sqlite DSN without a path\n%s", ErrFormat, DSNForms)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, err // sqlite would create an empty database
	}
	// A URI filename, read-only: the import never writes the source.
	uri := "file:" + (&url.URL{Path: path}).EscapedPath() + "?mode=ro&_pragma=busy_timeout(5000)"
	db, err := sql.Open("sqlite", uri)
	if err != nil {
		return nil, err
	}
	return &DB{db: db, table: tbl, display: "sqlite:" + path}, nil
}

func openMySQL(rest string) (*DB, error) {
	cfg, err := mysql.ParseDSN(rest)
	if err != nil {
		// The driver's messages quote no password.
		return nil, fmt.Errorf("%w: %v\n%s", ErrFormat, err, DSNForms)
	}
	q := url.Values{}
	if t, ok := cfg.Params["table"]; ok {
		q.Set("table", t)
		delete(cfg.Params, "table") // the driver would send it as a session variable
	}
	tbl, err := table(q)
	if err != nil {
		return nil, err
	}
	if cfg.Passwd == "" {
		cfg.Passwd = os.Getenv("MYSQL_PWD")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	shown := cfg.Clone()
	if shown.Passwd != "" {
		shown.Passwd = "xxx"
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	return &DB{db: sql.OpenDB(conn), mysql: true, table: tbl, display: "mysql://" + shown.FormatDSN()}, nil
}

// String describes the database without its password.
func (d *DB) String() string { return d.display + " table " + d.table }

// Close closes the database.
func (d *DB) Close() error { return d.db.Close() }

// Read reads every row of the table, ordered by id, inside one read-only
// transaction. Columns are matched by name (see Columns); other columns
// are ignored. Items are positioned `id "7"`, or "row N" for a row
// without an id.
func (d *DB) Read(ctx context.Context) ([]transfer.Item, error) {
	tx, err := d.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: d.mysql})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d, err)
	}
	defer tx.Rollback()
	quoted := `"` + d.table + `"`
	if d.mysql {
		quoted = "`" + d.table + "`"
	}
	rows, err := tx.QueryContext(ctx, "SELECT * FROM "+quoted+" ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d, err)
	}
	defer rows.Close()
	names, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	l, err := layoutOf(names, false)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d, err)
	}
	vals := make([]sql.NullString, len(names))
	ptrs := make([]any, len(names))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var items []transfer.Item
	for n := 1; rows.Next(); n++ {
		pos := fmt.Sprintf("row %d", n)
		if err := rows.Scan(ptrs...); err != nil {
			items = append(items, badRow(pos, fmt.Errorf("unreadable: %v", err)))
			continue
		}
		if id := vals[l.pos[0]]; id.Valid && id.String != "" {
			pos = fmt.Sprintf("id %q", id.String)
		}
		t, err := l.token(func(i int) (string, bool) { return vals[i].String, vals[i].Valid })
		if err != nil {
			items = append(items, badRow(pos, err))
			continue
		}
		items = append(items, transfer.Item{Token: t, Pos: pos})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", d, err)
	}
	if err := errors.Join(rows.Close(), tx.Commit()); err != nil {
		return nil, fmt.Errorf("%s: %w", d, err)
	}
	return items, nil
}
