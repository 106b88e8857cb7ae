package casstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// RepairReport counts what Store.Repair changed, by kind. It holds counts
// and token IDs, never token values.
type RepairReport struct {
	// Tokens is the number of live token documents Repair found.
	Tokens int
	// EntriesAdded counts index entries rebuilt from the documents
	// (missing keys, unlisted tokens, a lost index).
	EntriesAdded int
	// EntriesRemoved counts index entries dropped because no document
	// holds their key any more (a crash between a write and its release).
	EntriesRemoved int
	// ClaimsExpired counts claims of operations that never finished
	// (a crash mid-insert or mid-update), fenced and dropped.
	ClaimsExpired int
	// DuplicatesRemoved counts records deleted because another record
	// held the same key (see Store.Repair for the rule that picks the one
	// kept).
	DuplicatesRemoved int
	// TombstonesRemoved counts leftover fence documents deleted.
	TombstonesRemoved int
	// Corrupt lists the IDs of token documents that do not decode; Repair
	// leaves them alone.
	Corrupt []string
}

// Changed reports whether Repair changed anything.
func (r RepairReport) Changed() bool {
	return r.EntriesAdded+r.EntriesRemoved+r.ClaimsExpired+r.DuplicatesRemoved+r.TombstonesRemoved > 0
}

// String summarises the report in one line.
func (r RepairReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d tokens; %d entries added, %d removed, %d claims expired, %d duplicates removed, %d tombstones removed",
		r.Tokens, r.EntriesAdded, r.EntriesRemoved, r.ClaimsExpired, r.DuplicatesRemoved, r.TombstonesRemoved)
	if len(r.Corrupt) > 0 {
		fmt.Fprintf(&b, "; corrupt: %v", r.Corrupt)
	}
	return b.String()
}

// Repair rebuilds the index from the token documents. (Work in progress:
// the self-healing engine replaces this.)
func (s *Store) Repair(ctx context.Context) (RepairReport, error) {
	return RepairReport{}, errors.ErrUnsupported
}
