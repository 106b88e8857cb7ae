// Package transfer copies token records into a store: the engine of the
// cloudtokens import and migrate commands.
//
// [Copy] is idempotent and resumable. It reads the target once, decides
// for every source record what to do, writes only what is missing or
// newer, and at the end reads the target again and verifies every record
// it wrote or found identical by the SHA-256 of its canonical document
// ([tokenstore.MarshalDocument]). A run cut short is finished by running
// it again.
//
// # What "newer" means
//
// A source record and the target's record of the same ID (or, with
// [NewIDs], the record the lookup rules find) are compared by their
// canonical documents:
//
//   - identical: nothing to do (Unchanged);
//   - the source's expiry is later: the source record replaces the
//     target's (Updated), since an access token is only ever replaced by
//     one that expires later;
//   - the target's expiry is later: the target's record is kept
//     (KeptNewer), because an application already refreshed it there;
//   - the same expiry but other contents: reported as a problem of kind
//     "differs" and left alone, unless [Options.Overwrite].
//
// Under [KeepIDs], a target record whose ID matches but whose user name or
// client ID differ is another token (two Zoho stores numbering their rows
// from 1, say): it is reported as a "conflict" and never replaced, unless
// [Options.Overwrite].
//
// Bad records are reported one by one ([Problem]) and skipped; they never
// stop the copy of the others.
package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// Item is one record read from a source.
type Item struct {
	// Token is the record; nil when Err is set.
	Token *tokenstore.Token
	// Pos says where the record came from, for reports: "line 12",
	// "id 7". It never holds a token value.
	Pos string
	// Err is why the source could not read this record.
	Err error
}

// Mode selects how records keep their IDs.
type Mode int

const (
	// KeepIDs stores every record under its own ID with
	// tokenstore.Importer.ImportToken; the target must implement it.
	KeepIDs Mode = iota
	// NewIDs saves records with SaveToken: the target assigns new IDs
	// and a record that the lookup rules find in the target is updated.
	NewIDs
)

// Problem kinds.
const (
	// KindInvalid: the record cannot be read or cannot be stored.
	KindInvalid = "invalid"
	// KindDuplicate: several source records have this ID; none is copied.
	KindDuplicate = "duplicate"
	// KindConflict: the target holds another token under this ID, or
	// another record holds this token's keys.
	KindConflict = "conflict"
	// KindDiffers: the target's record differs and is not older.
	KindDiffers = "differs"
	// KindFailed: writing the record failed.
	KindFailed = "failed"
	// KindMismatch: after the copy, the target's record is not the one
	// written (a concurrent writer, or a store that changed it).
	KindMismatch = "mismatch"
)

// Problem is one record that was not copied, or not verified.
type Problem struct {
	// Pos is where the record came from (Item.Pos).
	Pos string `json:"pos"`
	// ID is the record's ID, when it has a valid one.
	ID string `json:"id,omitempty"`
	// Kind is one of the Kind constants.
	Kind string `json:"kind"`
	// Reason explains the problem; it never holds a token value.
	Reason string `json:"reason"`
}

// Progress receives the progress of the copy.
type Progress interface {
	Start(what string, total int)
	Add(n int)
	Done()
}

// Options tune Copy.
type Options struct {
	// Mode is KeepIDs (the default) or NewIDs.
	Mode Mode
	// Overwrite replaces target records that differ without being older,
	// and records of another token under the same ID.
	Overwrite bool
	// DryRun decides and counts but writes nothing.
	DryRun bool
	// Progress, if not nil, is told about every record written.
	Progress Progress
	// MaxFailures stops the copy after this many consecutive failed
	// writes (default 10): a copy whose every write fails (no
	// permission, no network) stops early instead of trying them all.
	MaxFailures int
	// Workers is the number of writes in flight at once under KeepIDs
	// (default 1). NewIDs always writes one record at a time, since
	// whether a record is new depends on the records before it.
	Workers int
}

// Result is what Copy did. Its JSON form is part of the command's
// stable output.
type Result struct {
	// Read is the number of source records, good and bad.
	Read int `json:"read"`
	// Inserted, Updated, Unchanged and KeptNewer count the source
	// records by what Copy did (would do, for a dry run) with them.
	Inserted  int `json:"inserted"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
	KeptNewer int `json:"kept_newer"`
	// Verified is the number of records the final read of the target
	// found exactly as written (or as found unchanged).
	Verified int `json:"verified"`
	// Digest is the SHA-256 of the lines "ID SHA256(document)\n" of the
	// verified records, sorted by ID.
	Digest string `json:"digest,omitempty"`
	// Problems lists the records not copied or not verified.
	Problems []Problem `json:"problems"`
	// DryRun is true when nothing was written.
	DryRun bool `json:"dry_run"`
}

// Copied returns the number of records written.
func (r *Result) Copied() int { return r.Inserted + r.Updated }

// Count returns the number of problems of the given kinds.
func (r *Result) Count(kinds ...string) int {
	n := 0
	for _, p := range r.Problems {
		if slices.Contains(kinds, p.Kind) {
			n++
		}
	}
	return n
}

var (
	// ErrNoImporter: KeepIDs needs a target that implements
	// tokenstore.Importer.
	ErrNoImporter = errors.New("the target store cannot store records under their own IDs (it does not implement tokenstore.Importer); import with new IDs instead, or upgrade the store")
	// ErrTooManyFailures: Options.MaxFailures writes in a row failed.
	ErrTooManyFailures = errors.New("too many consecutive write failures")
)

// Digest returns the hex SHA-256 of t's canonical document.
func Digest(t *tokenstore.Token) (string, error) {
	b, err := tokenstore.MarshalDocument(t)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// entry is one valid source record on its way into the target.
type entry struct {
	pos  string
	tok  *tokenstore.Token
	want *tokenstore.Token // what the target should hold afterwards; nil: not verified
}

// Copy copies items into target as the package documentation describes.
// A returned error means the copy stopped (the target could not be read,
// ErrNoImporter, ErrTooManyFailures, a cancelled ctx); the Result then
// says how far it got. Problems with single records are in the Result,
// not the error.
func Copy(ctx context.Context, target tokenstore.Store, items []Item, opts Options) (*Result, error) {
	if opts.MaxFailures <= 0 {
		opts.MaxFailures = 10
	}
	c := &copier{target: target, opts: opts, res: &Result{Read: len(items), Problems: []Problem{}, DryRun: opts.DryRun}}
	if opts.Mode == KeepIDs {
		imp, ok := target.(tokenstore.Importer)
		if !ok {
			return c.res, ErrNoImporter
		}
		c.importer = imp
	}
	entries := c.validate(items)
	current, err := target.Tokens(ctx)
	if err != nil {
		return c.res, fmt.Errorf("reading the target store: %w", err)
	}
	c.current = current
	c.pos = make(map[string]int, len(current))
	for i, t := range current {
		c.pos[t.ID] = i
	}
	if err := c.write(ctx, entries); err != nil {
		return c.res, err
	}
	if opts.DryRun {
		return c.res, nil
	}
	return c.res, c.verify(ctx, entries)
}

type copier struct {
	target   tokenstore.Store
	importer tokenstore.Importer
	opts     Options
	res      *Result
	current  []*tokenstore.Token // the target's records, kept up to date as Copy writes
	pos      map[string]int      // index in current by ID
	mu       sync.Mutex          // guards res, current, pos and the entries while writes run in parallel
}

// put records that the target now holds t.
func (c *copier) put(t *tokenstore.Token) {
	if i, ok := c.pos[t.ID]; ok {
		c.current[i] = t
		return
	}
	c.pos[t.ID] = len(c.current)
	c.current = append(c.current, t)
}

func (c *copier) problem(pos, id, kind, format string, args ...any) {
	c.res.Problems = append(c.res.Problems, Problem{Pos: pos, ID: id, Kind: kind, Reason: fmt.Sprintf(format, args...)})
}

// validate turns the items into entries and reports the bad ones.
func (c *copier) validate(items []Item) []*entry {
	var out []*entry
	for _, it := range items {
		if it.Err != nil {
			c.problem(it.Pos, "", KindInvalid, "%v", it.Err)
			continue
		}
		t := it.Token.Clone()
		if c.opts.Mode == NewIDs {
			t.ID = ""
		}
		if err := validToken(t, c.opts.Mode); err != nil {
			id := t.ID
			if tokenstore.ValidateID(id) != nil {
				id = ""
			}
			c.problem(it.Pos, id, KindInvalid, "%v", err)
			continue
		}
		out = append(out, &entry{pos: it.Pos, tok: t})
	}
	if c.opts.Mode != KeepIDs {
		return out
	}
	seen := map[string]int{}
	for _, e := range out {
		seen[e.tok.ID]++
	}
	return slices.DeleteFunc(out, func(e *entry) bool {
		if seen[e.tok.ID] > 1 {
			c.problem(e.pos, e.tok.ID, KindDuplicate, "%d source records have id %q; none of them is copied", seen[e.tok.ID], e.tok.ID)
			return true
		}
		return false
	})
}

func validToken(t *tokenstore.Token, mode Mode) error {
	if mode == KeepIDs && t.ID == "" {
		return fmt.Errorf("%w: the record has no id (import with new IDs to let the store assign them)", tokenstore.ErrInvalidID)
	}
	if err := tokenstore.ValidateForSave(t); err != nil {
		return err
	}
	_, err := tokenstore.MarshalDocument(t)
	return err
}

func (c *copier) write(ctx context.Context, entries []*entry) error {
	if p := c.opts.Progress; p != nil {
		p.Start("copying", len(entries))
		defer p.Done()
	}
	workers := 1
	if c.opts.Mode == KeepIDs && c.opts.Workers > 1 {
		// Records of distinct IDs are decided independently, so their
		// writes can run in parallel.
		workers = c.opts.Workers
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		sem      = make(chan struct{}, workers)
		failures int
		stop     error
	)
	// With a target that imports in batches, the records to write under
	// their IDs are sent batchSize at a time.
	var batcher tokenstore.BatchImporter
	if bi, ok := c.target.(tokenstore.BatchImporter); ok && c.opts.Mode == KeepIDs && !c.opts.DryRun {
		batcher = bi
	}
	var batch []plannedWrite
	var flush func()
	// finish records the outcome of e; c.mu is held.
	finish := func(e *entry, err error) {
		if p := c.opts.Progress; p != nil {
			p.Add(1)
		}
		switch {
		case err == nil:
			failures = 0
		case wctx.Err() != nil:
			// Not attempted, or cut short: a rerun decides again.
		case errors.Is(err, tokenstore.ErrConflict):
			c.problem(e.pos, e.tok.ID, KindConflict, "another record holds this token's user name and client, or its grant or refresh token (or concurrent writers kept changing it): %v", err)
		default:
			c.problem(e.pos, e.tok.ID, KindFailed, "%v", err)
			if failures++; failures >= c.opts.MaxFailures && stop == nil {
				stop = fmt.Errorf("%w: %d in a row, the last: %w", ErrTooManyFailures, failures, err)
				cancel()
			}
		}
	}
	flush = func() {
		if len(batch) == 0 || wctx.Err() != nil {
			batch = batch[:0]
			return
		}
		toks := make([]*tokenstore.Token, len(batch))
		for i, w := range batch {
			toks[i] = w.e.tok.Clone()
		}
		errs := batcher.ImportTokens(wctx, toks)
		c.mu.Lock()
		for i, w := range batch {
			if errs[i] == nil {
				c.wrote(w.e, w.exists)
			}
			finish(w.e, errs[i])
		}
		c.mu.Unlock()
		batch = batch[:0]
	}
	for _, e := range entries {
		if wctx.Err() != nil {
			break
		}
		if c.opts.Mode == NewIDs {
			err := c.newID(wctx, e)
			c.mu.Lock()
			finish(e, err)
			c.mu.Unlock()
			continue
		}
		c.mu.Lock()
		write, exists, err := c.planKeepID(e)
		if !write {
			finish(e, err)
			c.mu.Unlock()
			continue
		}
		c.mu.Unlock()
		if batcher != nil {
			batch = append(batch, plannedWrite{e, exists})
			if len(batch) >= batchSize {
				flush()
			}
			continue
		}
		sem <- struct{}{}
		if wctx.Err() != nil { // stopped while waiting for a worker
			<-sem
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var err error
			if !c.opts.DryRun {
				err = c.importer.ImportToken(wctx, e.tok.Clone())
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			if err == nil {
				c.wrote(e, exists)
			}
			finish(e, err)
		}()
	}
	flush()
	wg.Wait()
	if stop != nil {
		return stop
	}
	return ctx.Err()
}

// batchSize is how many records a store that implements
// tokenstore.BatchImporter gets per call: its index writes are grouped
// per batch, which keeps a bulk import within the clouds' write quotas,
// while an interrupted import loses at most one batch of progress.
// Options.MaxFailures then counts failures within and across batches.
const batchSize = 100

// plannedWrite is a record to write under its ID, and whether the target
// holds the ID already.
type plannedWrite struct {
	e      *entry
	exists bool
}

// compare decides what to do with source record src whose counterpart
// in the target is cur; it returns true when src should be written.
func (c *copier) compare(e *entry, src, cur *tokenstore.Token) (bool, error) {
	ds, err := Digest(src)
	if err != nil {
		return false, err
	}
	if dc, err := Digest(cur); err == nil && dc == ds {
		c.res.Unchanged++
		e.want = src
		return false, nil
	}
	switch {
	case c.opts.Overwrite || src.Expiry.After(cur.Expiry):
		return true, nil
	case cur.Expiry.After(src.Expiry):
		c.res.KeptNewer++
		return false, nil
	}
	c.problem(e.pos, cur.ID, KindDiffers, "the store's record %q has other contents and the same expiry; kept (--overwrite replaces it)", cur.ID)
	return false, nil
}

// planKeepID decides whether e is written (under its ID): it returns
// write and whether the target holds the ID already. c.mu is held.
func (c *copier) planKeepID(e *entry) (write, exists bool, err error) {
	src := e.tok
	i, exists := c.pos[src.ID]
	if !exists {
		return true, false, nil
	}
	cur := c.current[i]
	if (cur.UserName != src.UserName || cur.ClientID != src.ClientID) && !c.opts.Overwrite {
		c.problem(e.pos, src.ID, KindConflict, "the store's record %q belongs to another user or client; not replaced (--overwrite replaces it)", src.ID)
		return false, true, nil
	}
	write, err = c.compare(e, src, cur)
	return write, true, err
}

// wrote records that e was written under its ID. c.mu is held.
func (c *copier) wrote(e *entry, existed bool) {
	if !c.opts.DryRun {
		e.want = e.tok
	}
	if existed {
		c.res.Updated++
	} else {
		c.res.Inserted++
	}
	c.put(e.tok)
}

func (c *copier) newID(ctx context.Context, e *entry) error {
	src := e.tok
	var found *tokenstore.Token
	if _, err := tokenstore.QueryRuleOf(src); err == nil {
		f, err := tokenstore.Select(src, c.current)
		switch {
		case err == nil:
			found = f
		case !errors.Is(err, tokenstore.ErrNotFound):
			return fmt.Errorf("%w: %w", tokenstore.ErrConflict, err)
		}
	}
	save := src.Clone()
	if found != nil {
		save.ID = found.ID
		if write, err := c.compare(e, save, found); !write {
			return err
		}
	}
	var want *tokenstore.Token
	if found != nil {
		want = tokenstore.ApplyUpdate(found, save)
	} else {
		want = save.Clone()
	}
	if !c.opts.DryRun {
		if err := c.target.SaveToken(ctx, save); err != nil {
			return err
		}
		want.ID = save.ID
		e.want = want
	}
	if found != nil {
		c.res.Updated++
	} else {
		c.res.Inserted++
	}
	if want.ID != "" {
		c.put(want)
	} else {
		// A dry run: no ID was assigned, but later records must see this one.
		c.current = append(c.current, want)
	}
	return nil
}

// verify reads the target again and checks every record Copy wrote or
// found unchanged.
func (c *copier) verify(ctx context.Context, entries []*entry) error {
	after, err := c.target.Tokens(ctx)
	if err != nil {
		return fmt.Errorf("reading the target store to verify: %w", err)
	}
	byID := make(map[string]*tokenstore.Token, len(after))
	for _, t := range after {
		byID[t.ID] = t
	}
	var lines []string
	for _, e := range entries {
		if e.want == nil {
			continue
		}
		want, err := Digest(e.want)
		if err != nil {
			return err
		}
		got := byID[e.want.ID]
		if got == nil {
			c.problem(e.pos, e.want.ID, KindMismatch, "record %q is missing from the store after the copy", e.want.ID)
			continue
		}
		if d, err := Digest(got); err != nil || d != want {
			c.problem(e.pos, e.want.ID, KindMismatch, "record %q in the store differs from the record written (another writer changed it?)", e.want.ID)
			continue
		}
		c.res.Verified++
		lines = append(lines, e.want.ID+" "+want+"\n")
	}
	slices.Sort(lines)
	sum := sha256.Sum256([]byte(strings.Join(lines, "")))
	c.res.Digest = hex.EncodeToString(sum[:])
	return nil
}
