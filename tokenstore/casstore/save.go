package casstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cloudtokens/cloudtokens/observe"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/index"
)

// What happens when a save is interrupted
//
// An insert claims every key of the new token (its ID included) before it
// creates the token's document, the decisive key (the one its own lookup
// rule uses) first; an update claims the keys it adds, writes the
// document with a compare-and-swap, then releases the keys it dropped.
// A save that stops anywhere (a crash, a cancelled context, a lost
// response) leaves one of these states, and each converges:
//
//   - claims without a document, or a document behind its claims: the
//     next save that needs one of those keys waits Options.ClaimWait, then
//     fences the claim and takes the key (see claims.go); lookups skip such
//     entries because they verify every candidate; Repair drops them.
//   - a document written but keys not released: the entries are dead and
//     the next claim of those keys drops them at once; Repair too.
//   - a write whose response was lost: the engine reads the document back
//     and reports success when it holds what was written (writes.go); a
//     create whose outcome stays unknown is fenced by the saver itself
//     before it withdraws its claims, so it cannot land later.
//   - a cancelled context: claims are withdrawn and keys released on a
//     clean-up context with its own timeout (Options.CleanupTimeout).
//
// A token document is only ever created after all its keys are claimed,
// so a document that exists is listed and findable, and no two documents
// can hold one key.

// SaveToken implements tokenstore.Store.
func (s *Store) SaveToken(ctx context.Context, t *tokenstore.Token) (err error) {
	ctx, span := s.start(ctx, observe.SaveToken, tokenIDOfToken(t))
	defer span.End(&err)
	if err = s.save(ctx, t, nil); err == nil {
		span.SetTokenID(t.ID)
	}
	return err
}

// SaveTokenLeased implements [tokenstore.LeaseSaver]: SaveToken, with
// holder's lease on the token until until written by the same write. The
// process that refreshed a token can so refresh it the next time without
// a lease write of its own (see package tokensource), which halves the
// versions a refresh costs on AWS and the writes on GCP.
func (s *Store) SaveTokenLeased(ctx context.Context, t *tokenstore.Token, holder string, until time.Time) (err error) {
	ctx, span := s.start(ctx, observe.SaveTokenLeased, tokenIDOfToken(t))
	defer span.End(&err)
	if holder == "" {
		return fmt.Errorf("%w: lease without a holder", tokenstore.ErrInvalidToken)
	}
	if err = s.save(ctx, t, &tokenstore.Lease{Holder: holder, Until: until.UnixMilli()}); err == nil {
		span.SetTokenID(t.ID)
	}
	return err
}

func (s *Store) save(ctx context.Context, t *tokenstore.Token, lease *tokenstore.Lease) error {
	if err := tokenstore.ValidateForSave(t); err != nil {
		return err
	}
	if _, err := tokenstore.MarshalDocument(t); err != nil {
		return err // too large even before merging
	}
	var id string
	err := s.retry(ctx, "SaveToken", func() error {
		var err error
		id, err = s.saveLocked(ctx, t, lease)
		return err
	})
	if err != nil {
		return err
	}
	t.ID = id
	return nil
}

// saveLocked runs saveOnce holding the stripe lock of the token's ID or
// lookup key, so saves of one user in one process queue up instead of
// racing; across processes the compare-and-swap decides.
func (s *Store) saveLocked(ctx context.Context, t *tokenstore.Token, lease *tokenstore.Lease) (string, error) {
	key := "id:" + t.ID
	if t.ID == "" {
		if k, ok := index.QueryKey(t); ok {
			key = k.Kind + ":" + k.Value
		}
	}
	mu := stripe(&s.saveMu, key)
	mu.Lock()
	defer mu.Unlock()
	return s.saveOnce(ctx, t, lease)
}

// errStale: a remembered document was not the current one.
var errStale = errors.New("casstore: remembered document is stale")

// saveOnce decides between update and insert and makes one attempt. A
// token it remembers is updated from memory first (one write); when that
// finds the document changed, it decides again from fresh reads.
func (s *Store) saveOnce(ctx context.Context, t *tokenstore.Token, lease *tokenstore.Lease) (string, error) {
	snaps := bucketSnaps{}
	var target *storedToken
	if t.ID != "" {
		if known := s.recent.get(t.ID); known != nil && !known.tombstone() {
			err := s.updateToken(ctx, known, t, lease, snaps, true)
			if err == nil {
				return t.ID, nil
			}
			s.recent.forget(t.ID)
			if !errors.Is(err, errStale) {
				return "", err
			}
		}
		st, err := s.readToken(ctx, t.ID)
		switch {
		case err == nil:
			target = st
		case !errors.Is(err, tokenstore.ErrNotFound):
			return "", err
		}
	}
	if target == nil {
		if _, err := tokenstore.QueryRuleOf(t); err == nil {
			st, err := s.find(ctx, t, snaps)
			switch {
			case err == nil:
				target = st
			case !errors.Is(err, tokenstore.ErrNotFound):
				return "", err
			}
		}
	}
	if target != nil {
		return target.tok.ID, s.updateToken(ctx, target, t, lease, snaps, false)
	}
	return s.insert(ctx, t, lease, snaps)
}

// updateToken writes t merged into target. With remembered, target comes
// from memory rather than a read of this attempt: a version mismatch, a
// missing document or nothing to change (which only a fresh read can
// confirm) gives errStale.
func (s *Store) updateToken(ctx context.Context, target *storedToken, t *tokenstore.Token, lease *tokenstore.Lease, snaps bucketSnaps, remembered bool) error {
	merged := tokenstore.ApplyUpdate(target.tok, t)
	if sameToken(merged, target.tok) && sameLease(target.meta.Lease, lease) {
		if remembered {
			return fmt.Errorf("%w: nothing to change in token %q", errStale, target.tok.ID)
		}
		return nil // nothing changes
	}
	return s.replace(ctx, target, merged, lease, claimRequest{saving: t}, snaps, remembered)
}

func sameLease(a, b *tokenstore.Lease) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

// replace writes next as the next generation of target: it claims the
// keys next adds, swaps the document and releases the keys it drops.
func (s *Store) replace(ctx context.Context, target *storedToken, next *tokenstore.Token, lease *tokenstore.Lease, req claimRequest, snaps bucketSnaps, remembered bool) error {
	if _, err := tokenstore.MarshalDocument(next); err != nil {
		return err
	}
	id := next.ID
	gen := target.meta.Gen + 1
	var oldKeys []index.Key
	if !target.tombstone() {
		oldKeys = index.KeysOf(target.tok)
	}
	newKeys := index.KeysOf(next)
	req.id, req.gen = id, gen
	start := s.now()
	added := diffKeys(newKeys, oldKeys)
	if err := s.claim(ctx, req, added, snaps); err != nil {
		return err
	}
	// A write that found the token deleted releases what it claimed:
	// nobody else can hold a key for a deleted ID. A write that lost to
	// another, or cannot tell, leaves its entries to the Store's next
	// writes of their buckets (leftovers.go): they are claimed for a
	// generation that the other write took, so they are dead unless that
	// write holds the keys too (and then they are its, and stay), and
	// while the outcome is unknown they are pending, and stay.
	if _, err := s.writeDoc(ctx, target, next, tokenstore.Meta{Lease: lease}); err != nil {
		switch {
		case len(added) == 0:
		case errors.Is(err, tokenstore.ErrNotFound) || errors.Is(err, ErrVersionMismatch) && s.deleted(ctx, id):
			s.releaseAll(ctx, id, added, snaps)
		default:
			s.left.add(id, added, gen)
		}
		if errors.Is(err, ErrVersionMismatch) || errors.Is(err, tokenstore.ErrNotFound) {
			if remembered {
				return fmt.Errorf("%w: %w", errStale, err)
			}
			// Changed or deleted since it was read: decide again.
			return fmt.Errorf("%w: token %q changed during the save: %w", errRetry, id, err)
		}
		return err
	}
	if len(added) > 0 {
		s.claims.finished(s.now().Sub(start))
	}
	s.release(ctx, id, diffKeys(oldKeys, newKeys), gen, snaps)
	return nil
}

// deleted reports whether token id's document is gone (some backends
// report a compare-and-swap on a deleted document as a version mismatch).
func (s *Store) deleted(ctx context.Context, id string) bool {
	cctx, cancel := s.cleanupContext(ctx)
	defer cancel()
	_, err := s.b.Read(cctx, TokenName(id))
	return errors.Is(err, tokenstore.ErrNotFound)
}

// insert stores t as a new token: it claims all its keys, then creates
// its document.
func (s *Store) insert(ctx context.Context, t *tokenstore.Token, lease *tokenstore.Lease, snaps bucketSnaps) (string, error) {
	nt := t.Clone()
	nt.ID = index.NewTokenID(nt)
	if err := s.insertAs(ctx, nt, lease, claimRequest{saving: t, insert: true}, snaps); err != nil {
		return "", err
	}
	return nt.ID, nil
}

// insertAs creates the document of nt (whose ID is set) after claiming
// its keys. On failure it withdraws its claims; when it cannot tell
// whether the create happened, it fences its own document first.
func (s *Store) insertAs(ctx context.Context, nt *tokenstore.Token, lease *tokenstore.Lease, req claimRequest, snaps bucketSnaps) error {
	if _, err := tokenstore.MarshalDocument(nt); err != nil {
		return err
	}
	req.id, req.gen = nt.ID, 1
	if k, ok := index.QueryKey(req.saving); ok {
		req.decisive = k
	}
	keys := index.KeysOf(nt)
	start := s.now()
	// A withdrawal releases every key of the new ID, not only the batches
	// that succeeded: one claim writes several buckets when the index grew
	// since its batches were made, and may fail after some of them. The
	// entries of a new random ID can only be this insert's (ImportToken,
	// whose IDs are given, does not insert: it replaces a tombstone).
	for _, batch := range s.insertBatches(req.decisive, keys) {
		if err := s.claim(ctx, req, batch, snaps); err != nil {
			s.releaseAll(ctx, nt.ID, keys, snaps)
			return err
		}
	}
	_, err := s.writeDoc(ctx, nil, nt, tokenstore.Meta{Lease: lease})
	if err == nil {
		s.claims.finished(s.now().Sub(start))
		return nil
	}
	if !definite(err) {
		// Unknown whether the create happened (or may still): settle it
		// with a tombstone, which only succeeds if it did not.
		cctx, cancel := s.cleanupContext(ctx)
		defer cancel()
		e := index.Entry{Key: keys[0], ID: nt.ID, Gen: 1}
		if ferr := s.fence(cctx, e, ownerMissing, nil, map[string]*storedToken{}); ferr != nil {
			st, rerr := s.readDoc(cctx, nt.ID)
			switch {
			case rerr == nil && !st.tombstone() && sameToken(st.tok, nt):
				return nil // it did happen
			case rerr == nil && st.tombstone():
				err = fmt.Errorf("%w: %w", ErrExists, err) // fenced by another save
			default:
				// Unknown; the claims stay (the document may still appear)
				// and are fenced by whoever needs them, or by Repair.
				s.opts.Logger.WarnContext(ctx, "cloudtokens: could not tell whether a new token's document was created; its claims stay until they are fenced", "id", nt.ID, "error", err)
				return err
			}
		}
	}
	s.releaseAll(ctx, nt.ID, keys, snaps)
	if errors.Is(err, ErrExists) {
		// Someone fenced this insert (it took too long): start again.
		return fmt.Errorf("%w: the new token's document was fenced: %w", errRetry, err)
	}
	return err
}

// insertBatches groups the keys of a new token by bucket, the bucket of
// the decisive key first: concurrent inserts of the same record contend
// on it, so a loser loses before it has claimed anything else.
func (s *Store) insertBatches(decisive index.Key, keys []index.Key) [][]index.Key {
	l := s.currentLayout()
	ns, by := groupKeys(l, keys)
	first := -1
	if decisive.Kind != "" {
		first = l.route(decisive)
	}
	var out [][]index.Key
	if ks, ok := by[first]; ok {
		out = append(out, ks)
	}
	for _, n := range ns {
		if n != first {
			out = append(out, by[n])
		}
	}
	return out
}

// sameToken reports whether a and b store the same document.
func sameToken(a, b *tokenstore.Token) bool {
	return a.ID == b.ID && a.UserName == b.UserName && a.ClientID == b.ClientID &&
		a.ClientSecret == b.ClientSecret && a.RefreshToken == b.RefreshToken &&
		a.AccessToken == b.AccessToken && a.GrantToken == b.GrantToken &&
		a.Expiry.UnixMilli() == b.Expiry.UnixMilli() && a.Expiry.IsZero() == b.Expiry.IsZero() &&
		a.RedirectURL == b.RedirectURL && a.APIDomain == b.APIDomain
}
