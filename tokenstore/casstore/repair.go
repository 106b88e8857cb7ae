package casstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cloudtokens/cloudtokens/observe"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/index"
)

// RepairReport counts what Store.Repair changed, by kind. It holds counts
// and token IDs, never token values.
type RepairReport struct {
	// Tokens is the number of live token documents Repair found.
	Tokens int
	// EntriesAdded counts index entries rebuilt from the documents
	// (missing keys, unlisted tokens, a lost index or bucket).
	EntriesAdded int
	// EntriesRemoved counts index entries dropped because no document
	// holds their key any more (a crash between a write and its release),
	// or because they sat in the wrong bucket.
	EntriesRemoved int
	// ClaimsExpired counts claims of saves that never finished (a crash
	// mid-insert or mid-update), fenced and dropped.
	ClaimsExpired int
	// DuplicatesRemoved counts records deleted because another record
	// held the same key (see Store.Repair for the rule that picks the one
	// kept).
	DuplicatesRemoved int
	// TombstonesRemoved counts tombstones deleted.
	TombstonesRemoved int
	// DeletesFinished counts token documents whose delete had stopped
	// half way (see ErrDeleteUnfinished) and that Repair deleted.
	DeletesFinished int
	// BucketsRebuilt counts index buckets that were missing and were
	// created again.
	BucketsRebuilt int
	// Corrupt lists the IDs of token documents that do not decode; Repair
	// leaves them alone.
	Corrupt []string
	// Skipped lists token IDs Repair left for a later run because they
	// changed while it worked.
	Skipped []string
}

// Changed reports whether Repair changed anything.
func (r RepairReport) Changed() bool {
	return r.EntriesAdded+r.EntriesRemoved+r.ClaimsExpired+r.DuplicatesRemoved+r.TombstonesRemoved+r.BucketsRebuilt+r.DeletesFinished > 0
}

// String summarises the report in one line.
func (r RepairReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d tokens; %d entries added, %d removed, %d claims expired, %d duplicates removed, %d tombstones removed, %d buckets rebuilt, %d deletes finished",
		r.Tokens, r.EntriesAdded, r.EntriesRemoved, r.ClaimsExpired, r.DuplicatesRemoved, r.TombstonesRemoved, r.BucketsRebuilt, r.DeletesFinished)
	if len(r.Corrupt) > 0 {
		fmt.Fprintf(&b, "; corrupt: %v", r.Corrupt)
	}
	if len(r.Skipped) > 0 {
		fmt.Fprintf(&b, "; skipped (changed meanwhile): %v", r.Skipped)
	}
	return b.String()
}

type repairingKey struct{}

// Repair makes the index agree with the token documents, which it treats
// as the truth. It needs a Backend that implements Lister. It
//
//   - recreates missing buckets (a lost index included) and adds every
//     key of every token that has no entry;
//   - drops dead entries and misplaced ones;
//   - fences and drops claims of saves that never finished: it waits
//     Options.ClaimWait and fences only the claims still pending then, so
//     saves in progress finish undisturbed;
//   - resolves two records that hold one key: the record saved last (the
//     document's saved_at time, then its generation, then the record
//     the index lists, then the smaller ID) is kept and the others are
//     deleted, so the newest refresh token is never lost;
//   - removes tombstones older than Options.TombstoneTTL that no entry
//     points at;
//   - finishes deletes that stopped half way in the backend (see
//     ErrDeleteUnfinished).
//
// Every change is a compare-and-swap, so Repair is safe to run while
// other processes read and write (a record changed while Repair works is
// skipped and reported); running it again changes nothing. Corrupt
// documents are reported and left alone.
func (s *Store) Repair(ctx context.Context) (_ RepairReport, err error) {
	ctx, span := s.start(ctx, observe.Repair, "")
	defer span.End(&err)
	ctx = context.WithValue(ctx, repairingKey{}, true)
	var rep RepairReport
	sv, err := s.takeSurvey(ctx)
	if err != nil {
		return rep, err
	}
	// Claims that look unfinished are given ClaimWait to finish.
	pending := map[index.Entry]bool{}
	for _, b := range sv.buckets {
		if b == nil {
			continue
		}
		for _, e := range b.Entries {
			if st := sv.entryState(e); st == ownerPending || st == ownerMissing {
				pending[e] = true
			}
		}
	}
	if len(pending) > 0 {
		if err := sleepCtx(ctx, s.opts.ClaimWait); err != nil {
			return rep, err
		}
		if sv, err = s.takeSurvey(ctx); err != nil {
			return rep, err
		}
	}
	for attempt := 0; ; attempt++ {
		err := s.rebuildBuckets(ctx, sv, &rep)
		if err == nil {
			break
		}
		if !errors.Is(err, errRetry) || attempt >= 2 {
			return rep, err
		}
		if err := backoff(ctx, attempt+3); err != nil {
			return rep, err
		}
		if sv, err = s.takeSurvey(ctx); err != nil {
			return rep, err
		}
	}
	rep.Corrupt = slices.Clone(sv.corrupt)
	if err := s.removeDuplicates(ctx, sv, &rep); err != nil {
		return rep, err
	}
	if err := s.dropEntries(ctx, sv, pending, &rep); err != nil {
		return rep, err
	}
	if err := s.addEntries(ctx, sv, &rep); err != nil {
		return rep, err
	}
	s.removeTombstones(ctx, sv, &rep)
	s.finishDeletes(ctx, sv, &rep)
	rep.Tokens = sv.live()
	return rep, nil
}

// finishDeletes deletes the token documents whose delete stopped half
// way (ErrDeleteUnfinished): the backend's Delete finishes it. A document
// that reads otherwise now was dealt with since the survey (a fence of
// dropEntries takes the name over); one that still reads as unfinished
// after the Delete is logged and left for the next Repair (Check keeps
// reporting it).
func (s *Store) finishDeletes(ctx context.Context, sv *survey, rep *RepairReport) {
	unfinished := func(name string) bool {
		_, err := s.b.Read(ctx, name)
		return errors.Is(err, ErrDeleteUnfinished)
	}
	for _, id := range sv.unfinished {
		name := TokenName(id)
		if !unfinished(name) {
			continue
		}
		if err := s.b.Delete(ctx, name); err != nil && !errors.Is(err, tokenstore.ErrNotFound) || unfinished(name) {
			s.opts.Logger.WarnContext(ctx, "cloudtokens: could not finish the delete of a token document", "id", id, "error", err)
			continue
		}
		rep.DeletesFinished++
	}
}

// rebuildBuckets creates the buckets of the layout that are missing, and
// when bucket 0 itself was lost, deletes the index documents that the new
// layout cannot reach. Bucket 0 is created first: a create that finds it
// exists means the survey read a lagging replica, and the caller surveys
// again (errRetry) instead of deleting buckets that a live index names.
func (s *Store) rebuildBuckets(ctx context.Context, sv *survey, rep *RepairReport) error {
	m := len(sv.buckets)
	newBucket := func(n int) *index.Bucket {
		if sv.fixed > 0 {
			return index.NewFixedShard(n, sv.fixed)
		}
		return index.NewBucket(n, m)
	}
	if sv.fixed == 0 && sv.versions[0] == "" && (sv.live() > 0 || len(sv.extra) > 0) {
		nb := newBucket(0)
		if _, err := s.writeBucket(ctx, 0, nb, ""); err != nil {
			if errors.Is(err, ErrExists) {
				return fmt.Errorf("%w: index bucket 0 exists after all (a read lagged)", errRetry)
			}
			return err
		}
		sv.buckets[0] = nb
		rep.BucketsRebuilt++
		for _, n := range sv.extra {
			if err := s.remove(ctx, IndexName(n)); err != nil && !errors.Is(err, tokenstore.ErrNotFound) {
				return err
			}
		}
	}
	for n, b := range sv.buckets {
		if b != nil {
			continue
		}
		nb := newBucket(n)
		if _, err := s.writeBucket(ctx, n, nb, ""); err != nil && !errors.Is(err, ErrExists) {
			return err
		}
		sv.buckets[n] = nb
		rep.BucketsRebuilt++
	}
	return nil
}

// removeDuplicates deletes all but one record of every set of records
// that share a key.
func (s *Store) removeDuplicates(ctx context.Context, sv *survey, rep *RepairReport) error {
	holders := map[index.Key][]*storedToken{}
	listed := map[string]bool{}
	for _, b := range sv.buckets {
		for _, id := range b.Listed() {
			listed[id] = true
		}
	}
	for _, st := range sv.docs {
		if st.tombstone() {
			continue
		}
		for _, k := range index.KeysOf(st.tok)[1:] {
			if k.Kind == index.KindAccess {
				continue // not exclusive
			}
			if k.Kind == index.KindUser {
				k.ClientID = ""
			}
			holders[k] = append(holders[k], st)
		}
	}
	for _, g := range duplicateGroups(holders) {
		live := slices.DeleteFunc(slices.Clone(g.toks), func(st *storedToken) bool { return sv.docs[st.tok.ID].tombstone() })
		if len(live) < 2 {
			continue // resolved with an earlier group
		}
		slices.SortFunc(live, func(a, b *storedToken) int {
			return cmp.Or(
				cmp.Compare(b.meta.SavedAt, a.meta.SavedAt),
				cmp.Compare(b.meta.Gen, a.meta.Gen),
				boolOrder(listed[b.tok.ID], listed[a.tok.ID]),
				strings.Compare(a.tok.ID, b.tok.ID))
		})
		for _, loser := range live[1:] {
			tomb, err := s.writeDoc(ctx, loser, &tokenstore.Token{ID: loser.tok.ID}, tokenstore.Meta{Deleted: s.now().UnixMilli()})
			if errors.Is(err, ErrVersionMismatch) || errors.Is(err, tokenstore.ErrNotFound) {
				rep.Skipped = append(rep.Skipped, loser.tok.ID)
				continue
			}
			if err != nil {
				return err
			}
			s.opts.Logger.WarnContext(ctx, "cloudtokens: Repair deleted a duplicate record", "id", loser.tok.ID, "kept", live[0].tok.ID, "key", keyName(g.kind))
			sv.docs[loser.tok.ID] = tomb
			rep.DuplicatesRemoved++
		}
	}
	return nil
}

func boolOrder(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// dropEntries removes the entries that no document holds: dead ones,
// misplaced ones, and claims that were pending before Repair waited and
// still are (after fencing them).
func (s *Store) dropEntries(ctx context.Context, sv *survey, pending map[index.Entry]bool, rep *RepairReport) error {
	for n, b := range sv.buckets {
		var dead, fenced []index.Entry
		misplaced := map[index.Entry]bool{}
		for _, e := range b.Entries {
			if !covers(b, e.Key) {
				dead = append(dead, e)
				misplaced[e] = true
				continue
			}
			switch state := sv.entryState(e); state {
			case ownerDead:
				dead = append(dead, e)
			case ownerPending, ownerMissing:
				if !pending[e] {
					continue // a save in progress: leave it
				}
				if err := s.fence(ctx, e, state, sv.docs[e.ID], sv.docs); err != nil {
					if errors.Is(err, errRetry) {
						rep.Skipped = append(rep.Skipped, e.ID)
						continue
					}
					return err
				}
				fenced = append(fenced, e)
			}
		}
		if len(dead)+len(fenced) == 0 {
			continue
		}
		var removedDead, removedFenced int
		var moved []index.Entry // entries a split took to another bucket since the survey
		nb, err := s.modifyBucket(ctx, n, nil, func(b *index.Bucket) (bool, error) {
			removedDead, removedFenced, moved = 0, 0, moved[:0]
			for _, e := range dead {
				if b.RemoveEntry(e) {
					removedDead++
				} else if !misplaced[e] && !covers(b, e.Key) {
					moved = append(moved, e)
				}
			}
			for _, e := range fenced {
				if b.RemoveEntry(e) {
					removedFenced++
				} else if !covers(b, e.Key) {
					moved = append(moved, e)
				}
			}
			return removedDead+removedFenced > 0, nil
		})
		if err != nil {
			return err
		}
		if nb != nil {
			sv.buckets[n] = nb
		}
		rep.EntriesRemoved += removedDead
		rep.ClaimsExpired += removedFenced
		if len(moved) > 0 {
			removed, err := s.removeEntries(ctx, moved)
			if err != nil {
				return err
			}
			rep.EntriesRemoved += removed
		}
	}
	return nil
}

// removeEntries removes entries from the buckets that hold their keys
// now (the index may have split since they were found), and reports how
// many it removed.
func (s *Store) removeEntries(ctx context.Context, entries []index.Entry) (int, error) {
	keys := make([]index.Key, 0, len(entries))
	for _, e := range entries {
		keys = append(keys, e.Key)
	}
	removed := map[index.Entry]bool{}
	err := s.modifyKeys(ctx, keys, nil, func(b *index.Bucket, keys []index.Key) (bool, error) {
		changed := false
		for _, e := range entries {
			if slices.Contains(keys, e.Key) && b.RemoveEntry(e) {
				removed[e], changed = true, true
			}
		}
		return changed, nil
	})
	return len(removed), err
}

// addEntries gives every key of every live token its entry. The missing
// entries of all tokens are added together, one write per bucket (a
// rebuilt index of thousands of tokens must stay within AWS's quota of
// versions per secret a day).
func (s *Store) addEntries(ctx context.Context, sv *survey, rep *RepairReport) error {
	type holder struct {
		id  string
		gen uint64
	}
	want := map[index.Key][]holder{}
	var missing []index.Key
	l := s.currentLayout()
	for _, st := range sv.docs {
		if st.tombstone() {
			continue
		}
		id := st.tok.ID
		for _, k := range index.KeysOf(st.tok) {
			n := l.route(k)
			if n < len(sv.buckets) && sv.buckets[n] != nil && sv.buckets[n].Has(k, id) {
				continue
			}
			if len(want[k]) == 0 {
				missing = append(missing, k)
			}
			want[k] = append(want[k], holder{id, st.meta.Gen})
		}
	}
	err := s.modifyKeys(ctx, missing, nil, func(b *index.Bucket, keys []index.Key) (bool, error) {
		changed := false
		for _, k := range keys {
			for _, h := range want[k] {
				if !b.Has(k, h.id) {
					b.Put(k, h.id, h.gen)
					changed = true
				}
			}
		}
		return changed, nil
	})
	if err != nil {
		return err
	}
	for _, k := range missing {
		rep.EntriesAdded += len(want[k])
	}
	return nil
}

// removeTombstones deletes tombstones older than TombstoneTTL.
func (s *Store) removeTombstones(ctx context.Context, sv *survey, rep *RepairReport) {
	pointed := map[string]bool{}
	for _, b := range sv.buckets {
		for _, id := range b.IDs() {
			pointed[id] = true
		}
	}
	cutoff := s.now().Add(-s.opts.TombstoneTTL).UnixMilli()
	for id, st := range sv.docs {
		if !st.tombstone() || pointed[id] || st.meta.Deleted > cutoff {
			continue
		}
		if err := s.remove(ctx, TokenName(id)); err != nil && !errors.Is(err, tokenstore.ErrNotFound) {
			s.opts.Logger.WarnContext(ctx, "cloudtokens: could not delete a tombstone", "id", id, "error", err)
			continue
		}
		rep.TombstonesRemoved++
	}
}

// rebuildLostIndex is called when the index has no bucket 0. If the
// backend lists token documents and bucket 0 stays missing (a lagging
// read is waited out), the index was lost (deleted out of band):
// Repair rebuilds it before the store answers or inserts anything, so
// that no save creates a second record for a token it cannot see. It
// reports whether it repaired.
func (s *Store) rebuildLostIndex(ctx context.Context) (bool, error) {
	if ctx.Value(repairingKey{}) != nil {
		return false, nil
	}
	l, ok := s.b.(Lister)
	if !ok {
		return false, nil
	}
	names, err := l.List(ctx)
	if err != nil {
		return false, err
	}
	if !slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, "token-") }) {
		return false, nil
	}
	if slices.Contains(names, IndexName(0)) {
		// Listed but not read: a lagging read (or listing). Read it again
		// (readBucket waits StaleReadWait for a bucket it knows exists).
		s.indexSeen.Store(true)
		if _, v, err := s.readBucket(ctx, 0, nil); err != nil || v != "" {
			return false, err
		}
	}
	s.opts.Logger.WarnContext(ctx, "cloudtokens: the index is missing but token documents exist; rebuilding it")
	rep, err := s.Repair(ctx)
	return err == nil && rep.EntriesAdded > 0, err
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
