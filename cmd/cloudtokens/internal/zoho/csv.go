package zoho

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cloudtokens/cloudtokens/cmd/cloudtokens/internal/transfer"
)

// ReadCSV reads a Zoho FileStore CSV file: one token per row, commas,
// double quotes around fields that need them (Python's csv.QUOTE_MINIMAL),
// and a header row. The header decides the columns (by name, see
// Columns); a file without a header (its first field is not "id") is read
// by position in the order of Columns. Empty rows are skipped, as the SDK
// skips them. Items are positioned "line N", the row's first line.
func ReadCSV(r io.Reader) ([]transfer.Item, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // checked per row, to report and skip a bad one
	var (
		l     *layout
		items []transfer.Item
	)
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var perr *csv.ParseError
		if errors.As(err, &perr) {
			items = append(items, badRow(fmt.Sprintf("line %d", perr.StartLine), fmt.Errorf("malformed CSV: %v", perr.Err)))
			continue
		}
		if err != nil {
			return nil, err
		}
		line, _ := cr.FieldPos(0)
		if blank(rec) {
			continue
		}
		if l == nil {
			if strings.EqualFold(strings.TrimSpace(strings.TrimPrefix(rec[0], "\ufeff")), "id") {
				rec[0] = strings.TrimPrefix(rec[0], "\ufeff")
				if l, err = layoutOf(rec, true); err != nil {
					return nil, fmt.Errorf("header (line %d): %w", line, err)
				}
				continue
			}
			if len(rec) != len(Columns) && len(rec) != len(Columns)-1 {
				return nil, fmt.Errorf("%w: line %d has %d fields and no header row names them (the Zoho FileStore has %d)", ErrFormat, line, len(rec), len(Columns))
			}
			l = positional(len(rec))
		}
		pos := fmt.Sprintf("line %d", line)
		if len(rec) != l.width {
			items = append(items, badRow(pos, fmt.Errorf("%d fields, the header has %d", len(rec), l.width)))
			continue
		}
		t, err := l.token(func(i int) (string, bool) { return rec[i], rec[i] != "" })
		if err != nil {
			items = append(items, badRow(pos, err))
			continue
		}
		items = append(items, transfer.Item{Token: t, Pos: pos})
	}
	return items, nil
}

func blank(rec []string) bool {
	for _, f := range rec {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}
