package casstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/index"
)

// DeleteToken implements tokenstore.Store in three steps:
//
//  1. the token's document is replaced by a tombstone with a
//     compare-and-swap: this is the delete. A save that read the token
//     before fails its own compare-and-swap and decides again (it then
//     inserts a new record); of concurrent deletes exactly one succeeds,
//     and a delete whose response was lost finds its own tombstone and
//     succeeds too;
//  2. the token's index entries are released;
//  3. the tombstone is deleted.
//
// A process that stops after step 1 leaves a tombstone whose entries are
// dead: the next save that needs one of those keys drops them, lookups
// skip them, and Repair removes both. Steps 2 and 3 run on a clean-up
// context, so a cancelled context does not leave them undone.
func (s *Store) DeleteToken(ctx context.Context, id string) error {
	if err := tokenstore.ValidateID(id); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var keys []index.Key
	err := s.retry(ctx, "DeleteToken", func() error {
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
		keys = index.KeysOf(st.tok)
		_, err = s.writeDoc(ctx, st, &tokenstore.Token{ID: id}, tokenstore.Meta{Deleted: s.now().UnixMilli()})
		if err != nil && !definite(err) {
			// Lost response or cancelled: the token is deleted if its
			// document is now a tombstone or gone.
			cctx, cancel := s.cleanupContext(ctx)
			defer cancel()
			if now, rerr := s.readDoc(cctx, id); errors.Is(rerr, tokenstore.ErrNotFound) || (rerr == nil && now.tombstone()) {
				return nil
			}
		}
		if errors.Is(err, tokenstore.ErrNotFound) {
			return fmt.Errorf("%w: token %q was deleted meanwhile", tokenstore.ErrNotFound, id)
		}
		if errors.Is(err, ErrVersionMismatch) {
			return fmt.Errorf("%w: %w", errRetry, err)
		}
		return err
	})
	if err != nil || keys == nil {
		return err
	}
	s.releaseAll(ctx, id, keys, nil)
	s.dropTombstone(ctx, id)
	return nil
}

// deleteCorrupt deletes a token document that does not decode: its keys
// are unknown, so its ID entry is released and its other entries, which
// point at a missing document, are fenced by whoever needs them.
func (s *Store) deleteCorrupt(ctx context.Context, id string) error {
	s.recent.forget(id)
	if err := s.remove(ctx, TokenName(id)); err != nil {
		return err
	}
	s.releaseAll(ctx, id, []index.Key{{Kind: index.KindID, Value: id}}, nil)
	return nil
}

// dropTombstone deletes the document of a deleted token, on a clean-up
// context; a failure is logged (Repair removes leftover tombstones).
func (s *Store) dropTombstone(ctx context.Context, id string) {
	cctx, cancel := s.cleanupContext(ctx)
	defer cancel()
	if err := s.remove(cctx, TokenName(id)); err != nil && !errors.Is(err, tokenstore.ErrNotFound) {
		s.opts.Logger.WarnContext(ctx, "cloudtokens: could not delete a tombstone; Repair removes it", "id", id, "error", err)
	}
}

// DeleteTokens implements tokenstore.Store: it deletes every token
// document under the store's prefix, listed or not (an orphan left by an
// earlier version, a tombstone), and then their index entries. With a
// Backend that is not a Lister it deletes the tokens the index lists.
// Saves that run meanwhile are not lost: a token inserted after the
// documents were listed stays, with its entries.
func (s *Store) DeleteTokens(ctx context.Context) error {
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
	if l, ok := s.b.(Lister); ok {
		names, err := l.List(ctx)
		if err != nil {
			return err
		}
		for _, n := range names {
			if id, ok := strings.CutPrefix(n, "token-"); ok {
				add(id)
			}
		}
	} else {
		for _, b := range buckets {
			for _, id := range b.Listed() {
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
