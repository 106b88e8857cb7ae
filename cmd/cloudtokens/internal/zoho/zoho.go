// Package zoho reads the token stores of the Zoho CRM SDKs so that their
// tokens can be imported: the FileStore CSV file ([ReadCSV]) and the
// DBStore table "oauthtoken" in MySQL or SQLite ([OpenDB]).
//
// Both hold one token per row in the columns of [Columns]:
//
//	id, user_name, client_id, client_secret, refresh_token, access_token,
//	grant_token, expiry_time, redirect_url, api_domain
//
// expiry_time is the access token's expiry in epoch milliseconds, stored
// as text; an empty value means unknown. An empty (or NULL) value is an
// absent field. Older SDKs name user_name "user_mail" and redirect_url
// "redirect_uri", and have no api_domain column; both are accepted.
//
// Every row becomes one [transfer.Item]. A row that cannot be read (a
// wrong number of fields, an expiry that is not a number) becomes an
// Item with Err set, which the import reports and skips; only an
// unreadable file or table as a whole is an error of the reader.
package zoho

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cloudtokens/cloudtokens/cmd/cloudtokens/internal/transfer"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// Columns are the columns of a Zoho token store, in the order of the
// FileStore CSV file (the SDK writes them in this order, with a header
// row, and reads them by position).
var Columns = []string{
	"id", "user_name", "client_id", "client_secret", "refresh_token",
	"access_token", "grant_token", "expiry_time", "redirect_url", "api_domain",
}

// aliases maps the column names of older SDKs to Columns.
var aliases = map[string]string{"user_mail": "user_name", "redirect_uri": "redirect_url"}

var (
	// ErrFormat: the file or table as a whole is not a Zoho token store
	// (unknown header columns, no token columns, malformed DSN).
	ErrFormat = errors.New("not a Zoho token store")
	// ErrBadRow: one row cannot be read; it is reported and skipped.
	ErrBadRow = errors.New("bad row")
)

// layout says where each of Columns is in a row: pos[i] is the index of
// Columns[i] in the row, or -1 when the store has no such column.
type layout struct {
	pos   [10]int
	width int // number of fields in a row; 0: any (SQL)
}

// layoutOf maps column names to Columns. With strict, an unknown name is
// ErrFormat (a CSV header); otherwise it is ignored (a table's extra
// columns).
func layoutOf(names []string, strict bool) (*layout, error) {
	l := &layout{width: len(names)}
	for i := range l.pos {
		l.pos[i] = -1
	}
	for i, n := range names {
		n = strings.ToLower(strings.TrimSpace(n))
		if a, ok := aliases[n]; ok {
			n = a
		}
		c := indexOf(n)
		switch {
		case c < 0 && strict:
			return nil, fmt.Errorf("%w: unknown column %q (known: %s)", ErrFormat, n, strings.Join(Columns, ", "))
		case c < 0:
			continue
		case l.pos[c] >= 0:
			return nil, fmt.Errorf("%w: column %q appears twice", ErrFormat, n)
		}
		l.pos[c] = i
	}
	if l.pos[0] < 0 {
		return nil, fmt.Errorf("%w: no id column", ErrFormat)
	}
	if l.pos[4] < 0 && l.pos[5] < 0 && l.pos[6] < 0 {
		return nil, fmt.Errorf("%w: none of the columns refresh_token, access_token, grant_token", ErrFormat)
	}
	return l, nil
}

// positional is the layout of a FileStore CSV without a header: Columns
// in order; legacy files have no api_domain.
func positional(fields int) *layout {
	l := &layout{width: fields}
	for i := range l.pos {
		l.pos[i] = i
		if i >= fields {
			l.pos[i] = -1
		}
	}
	return l
}

func indexOf(name string) int {
	for i, c := range Columns {
		if c == name {
			return i
		}
	}
	return -1
}

// token builds the token of one row. get returns field i of the row and
// whether it is present (not NULL).
func (l *layout) token(get func(i int) (string, bool)) (*tokenstore.Token, error) {
	var v [10]string
	for c, p := range l.pos {
		if p < 0 {
			continue
		}
		if s, ok := get(p); ok {
			v[c] = s
		}
	}
	t := &tokenstore.Token{
		ID: v[0], UserName: v[1], ClientID: v[2], ClientSecret: v[3], RefreshToken: v[4],
		AccessToken: v[5], GrantToken: v[6], RedirectURL: v[8], APIDomain: v[9],
	}
	exp, err := ParseExpiry(v[7])
	if err != nil {
		return nil, err
	}
	t.Expiry = exp
	return t, nil
}

// ParseExpiry parses a Zoho expiry_time: epoch milliseconds as a decimal
// integer. "" (and "0") is the zero time, unknown.
func ParseExpiry(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ms < 0 {
		if len(s) > 32 {
			s = s[:32] + "..."
		}
		return time.Time{}, fmt.Errorf("%w: expiry_time %q is not epoch milliseconds", ErrBadRow, s)
	}
	if ms == 0 {
		return time.Time{}, nil
	}
	return time.UnixMilli(ms).UTC(), nil
}

func badRow(pos string, err error) transfer.Item {
	if !errors.Is(err, ErrBadRow) {
		err = fmt.Errorf("%w: %w", ErrBadRow, err)
	}
	return transfer.Item{Pos: pos, Err: err}
}
