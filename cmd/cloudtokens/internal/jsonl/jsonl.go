// Package jsonl reads and writes token exports: JSON Lines, one token
// document per line, in the format of [tokenstore.MarshalDocument]
// (secrets included), sorted by ID, each line ended by "\n".
//
// The format is canonical: the same tokens always give the same bytes,
// so an export of a store that was imported from an export is
// byte-for-byte the export it came from.
package jsonl

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/cloudtokens/cloudtokens/cmd/cloudtokens/internal/transfer"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// Write writes tokens as JSON Lines, sorted by ID.
func Write(w io.Writer, tokens []*tokenstore.Token) error {
	sorted := slices.Clone(tokens)
	slices.SortFunc(sorted, func(a, b *tokenstore.Token) int { return strings.Compare(a.ID, b.ID) })
	bw := bufio.NewWriter(w)
	for _, t := range sorted {
		b, err := tokenstore.MarshalDocument(t)
		if err != nil {
			return err
		}
		bw.Write(b)
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// ErrBadLine: one line is not a token document; it is reported and
// skipped.
var ErrBadLine = errors.New("bad line")

// Read reads JSON Lines written by Write (or by hand): every non-blank
// line is one token document. A line that does not decode, or is longer
// than tokenstore.MaxDocumentSize, becomes an Item with Err set; only a
// read error of r is returned as an error. Items are positioned "line N".
func Read(r io.Reader) ([]transfer.Item, error) {
	br := bufio.NewReaderSize(r, 64*1024)
	var items []transfer.Item
	for n := 1; ; n++ {
		line, tooLong, err := readLine(br, tokenstore.MaxDocumentSize)
		if errors.Is(err, io.EOF) && len(line) == 0 && !tooLong {
			return items, nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		pos := fmt.Sprintf("line %d", n)
		switch {
		case tooLong:
			items = append(items, transfer.Item{Pos: pos, Err: fmt.Errorf("%w: longer than %d bytes", ErrBadLine, tokenstore.MaxDocumentSize)})
		case len(bytes.TrimSpace(line)) == 0:
		default:
			t, derr := tokenstore.UnmarshalDocument(line)
			if derr != nil {
				items = append(items, transfer.Item{Pos: pos, Err: fmt.Errorf("%w: %w", ErrBadLine, derr)})
			} else {
				items = append(items, transfer.Item{Token: t, Pos: pos})
			}
		}
		if errors.Is(err, io.EOF) {
			return items, nil
		}
	}
}

// readLine returns the next line without its "\n" (and "\r"). A line
// longer than max is consumed and reported by tooLong, without keeping
// it in memory.
func readLine(br *bufio.Reader, max int) (line []byte, tooLong bool, err error) {
	for {
		chunk, isPrefix, err := br.ReadLine()
		if err != nil {
			return line, tooLong, err
		}
		if !tooLong {
			line = append(line, chunk...)
			if len(line) > max {
				tooLong, line = true, nil
			}
		}
		if !isPrefix {
			return line, tooLong, nil
		}
	}
}
