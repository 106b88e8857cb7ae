package casstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/cloudtokens/cloudtokens/observe"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/index"
)

// DeleteToken implements tokenstore.Store: it reads the token (to learn
// its keys), deletes its document, then releases its index entries. A
// save that read the token before fails its compare-and-swap on the
// missing document and decides again (it then inserts a new record); of
// concurrent deletes one succeeds and the others find nothing; a delete
// whose response was lost finds the document gone and succeeds. A delete
// the backend refuses (no permission, say) changes nothing.
//
// A process that stops between the two steps leaves entries that point
// at a missing document: lookups skip them, the next save that needs one
// of those keys fences them (a tombstone under the deleted ID, which
// proves the document cannot come back) and drops them, and Repair does
// the same. The release runs on a clean-up context, so a cancelled
// context does not leave it undone.
func (s *Store) DeleteToken(ctx context.Context, id string) (err error) {
	ctx, span := s.start(ctx, observe.DeleteToken, id)
	defer span.End(&err)
	if err := tokenstore.ValidateID(id); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	st, err := s.readDoc(ctx, id)
	if errors.Is(err, tokenstore.ErrMalformed) {
		return s.deleteCorrupt(ctx, id)
	}
	if err != nil {
		return err
	}
	if st.tombstone() {
		return fmt.Errorf("%w: token %q was deleted", tokenstore.ErrNotFound, id)
	}
	if err := s.remove(ctx, TokenName(id)); err != nil {
		return err
	}
	// Remember the deletion, so that a lagging replica that still shows
	// the token does not bring it back for this Store.
	s.recent.put(&storedToken{tok: &tokenstore.Token{ID: id}, meta: tokenstore.Meta{Gen: st.meta.Gen + 1, Deleted: s.now().UnixMilli()}, version: "deleted"})
	s.releaseDeleted(ctx, id, index.KeysOf(st.tok))
	return nil
}

// deleteCorrupt deletes a token document that does not decode. Its keys
// are unknown, so every bucket is searched for its entries: a rare case,
// worth a full read of the index.
func (s *Store) deleteCorrupt(ctx context.Context, id string) error {
	s.recent.forget(id)
	if err := s.remove(ctx, TokenName(id)); err != nil {
		return err
	}
	cctx, cancel := s.cleanupContext(ctx)
	defer cancel()
	buckets, _, err := s.allBuckets(cctx, nil)
	if err != nil {
		return err
	}
	for n, b := range buckets {
		if !slices.Contains(b.IDs(), id) {
			continue
		}
		if _, err := s.modifyBucket(cctx, n, nil, func(b *index.Bucket) (bool, error) {
			return b.RemoveID(id), nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// DeleteTokens implements tokenstore.Store: it deletes every token the
// index lists and every token document the backend lists under the
// store's prefix (an orphan left by an earlier version, a tombstone), and
// then their index entries.
// Saves that run meanwhile are not lost: a token inserted after the
// documents were listed stays, with its entries.
func (s *Store) DeleteTokens(ctx context.Context) (err error) {
	ctx, span := s.start(ctx, observe.DeleteTokens, "")
	defer span.End(&err)
	if err := ctx.Err(); err != nil {
		return err
	}
	snaps := bucketSnaps{}
	buckets, _, err := s.allBuckets(ctx, snaps)
	if err != nil {
		return err
	}
	var ids []string
	seen := map[string]bool{}
	add := func(id string) {
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	for _, b := range buckets {
		for _, id := range b.Listed() {
			add(id)
		}
	}
	if l, ok := s.b.(Lister); ok {
		// Lists may lag (GCP, AWS): the index names what was just written,
		// the list what the index does not know.
		names, err := l.List(ctx)
		if err != nil {
			return err
		}
		for _, n := range names {
			if id, ok := strings.CutPrefix(n, "token-"); ok {
				add(id)
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	s.recent.clear()
	deleted, err := s.deleteDocs(ctx, ids)
	if err != nil {
		return err
	}
	for n, b := range buckets {
		if !slices.ContainsFunc(b.IDs(), func(id string) bool { return deleted[id] }) {
			continue
		}
		if _, err := s.modifyBucket(ctx, n, snaps, func(b *index.Bucket) (bool, error) {
			changed := false
			for _, id := range b.IDs() {
				if deleted[id] && b.RemoveID(id) {
					changed = true
				}
			}
			return changed, nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// deleteDocs deletes the documents of ids, DeleteWorkers at a time, and
// returns the IDs whose document it deleted. A document that did not
// exist may belong to an insert in progress, whose claims must stay.
func (s *Store) deleteDocs(ctx context.Context, ids []string) (map[string]bool, error) {
	errs := make([]error, len(ids))
	done := make([]bool, len(ids))
	var wg sync.WaitGroup
	sem := make(chan struct{}, s.opts.DeleteWorkers)
	for i, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			err := s.remove(ctx, TokenName(id))
			switch {
			case err == nil:
				done[i] = true
			case !errors.Is(err, tokenstore.ErrNotFound):
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	deleted := map[string]bool{}
	for i, id := range ids {
		if done[i] {
			deleted[id] = true
		}
	}
	return deleted, errors.Join(errs...)
}
