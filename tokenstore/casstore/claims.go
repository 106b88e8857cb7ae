package casstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/cloudtokens/cloudtokens/observe"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/index"
)

// A claim maps a key to the token that is about to hold it, for the
// generation of the token document that will hold it (see package index).
// Keys are claimed before the document is written and released after, so
// that the index always has an entry for every key a document holds.
// Entries that no document holds are of three kinds, told apart by
// reading the holder's document (classify):
//
//   - dead: the document (a token or a tombstone) is at the claim's
//     generation or later and does not hold the key. No write that can
//     still succeed needs the entry (it would have to claim again, with a
//     later generation), so anyone may drop it.
//   - pending: the document is at an earlier generation than the claim
//     (a tombstone too: ImportToken replaces one), or does not exist: a save is between its claim and its write, or
//     died there. It is waited on for Options.ClaimWait, then fenced:
//     the holder's document is rewritten at the next generation without
//     the key (a compare-and-swap that makes the pending write fail), or,
//     when it does not exist, created as a tombstone (which makes the
//     pending create fail). After the fence the entry is dead.
//   - live: the document holds the key.
//
// A read that lags (a stale replica) can only make a dead entry look
// pending or live, never the reverse: the fence is a conditional write
// against the current document, which fails on a stale version.

type ownerState int

const (
	ownerDead ownerState = iota
	ownerLive
	ownerPending // the document is behind the claim
	ownerMissing // no document
)

// classify reads the holder of entry e (memoised in docs) and tells what
// the entry is.
func (s *Store) classify(ctx context.Context, e index.Entry, docs map[string]*storedToken) (ownerState, *storedToken, error) {
	st, ok := docs[e.ID]
	if !ok {
		var err error
		st, err = s.readDoc(ctx, e.ID)
		switch {
		case errors.Is(err, tokenstore.ErrNotFound):
			st = nil
		case errors.Is(err, tokenstore.ErrMalformed):
			return ownerLive, nil, fmt.Errorf("the token's %s belongs to token %q, whose document is corrupt (run Repair or delete it): %w", keyName(e.Kind), e.ID, err)
		case err != nil:
			return ownerLive, nil, err
		}
		docs[e.ID] = st
	}
	return stateOf(e, st), st, nil
}

// stateOf classifies entry e against its holder's document st (nil:
// none). A tombstone holds no key; it is not final, because ImportToken
// may replace it (after claiming at a later generation).
func stateOf(e index.Entry, st *storedToken) ownerState {
	switch {
	case st == nil:
		return ownerMissing
	case !st.tombstone() && slices.Contains(index.KeysOf(st.tok), e.Key):
		return ownerLive
	case st.meta.Gen >= e.Gen:
		return ownerDead
	}
	return ownerPending
}

// fence makes the pending claim e dead: see above. It returns errRetry
// when the holder's document changed meanwhile.
func (s *Store) fence(ctx context.Context, e index.Entry, state ownerState, st *storedToken, docs map[string]*storedToken) error {
	cctx, cancel := s.cleanupContext(ctx)
	defer cancel()
	switch state {
	case ownerPending:
		next, err := s.writeDoc(cctx, st, st.tok, tokenstore.Meta{Lease: st.meta.Lease, Deleted: st.meta.Deleted})
		if err != nil {
			delete(docs, e.ID)
			if errors.Is(err, ErrVersionMismatch) || errors.Is(err, tokenstore.ErrNotFound) {
				return fmt.Errorf("%w: token %q changed while its claim was fenced", errRetry, e.ID)
			}
			return err
		}
		docs[e.ID] = next
	case ownerMissing:
		tomb := &tokenstore.Token{ID: e.ID}
		meta := tokenstore.Meta{Gen: s.tombstoneGen(e.Gen), Deleted: s.now().UnixMilli(), SavedAt: s.now().UnixMilli()}
		doc, err := tokenstore.MarshalStored(tomb, meta)
		if err != nil {
			return err
		}
		v, err := s.create(cctx, TokenName(e.ID), doc)
		switch {
		case errors.Is(err, ErrDeleted):
			// Gone for good: the name can never hold a document again, so
			// every entry of the ID is dead, whatever its generation.
			gone := meta
			gone.Gen = math.MaxUint64
			docs[e.ID] = &storedToken{tok: tomb, meta: gone}
		case errors.Is(err, ErrExists):
			delete(docs, e.ID)
			return fmt.Errorf("%w: token %q exists after all", errRetry, e.ID)
		case err != nil:
			return err
		default:
			docs[e.ID] = &storedToken{tok: tomb, meta: meta, version: v}
		}
	}
	s.opts.Logger.InfoContext(ctx, "cloudtokens: fenced the claim of a save that did not finish", "id", e.ID, "key", keyName(e.Kind))
	s.emit(ctx, observe.Event{Kind: observe.Fence, TokenID: e.ID, Key: keyKind(e.Kind)})
	return nil
}

// claimRequest describes the save a claim is for.
type claimRequest struct {
	id       string
	gen      uint64
	saving   *tokenstore.Token // the token being saved, for the lookup rule
	decisive index.Key         // the key of saving's lookup rule, if any
	insert   bool              // an insert may lose a race and retry; an update fails
	exact    bool              // ImportToken: any clash is a conflict
}

// claim maps keys to req.id for generation req.gen, bucket by bucket,
// dropping dead entries of the same keys on the way. A key held by a live
// record is a lost race (errRetry: the retry finds and updates that
// record) when an insert's own lookup rule would find that record, and
// tokenstore.ErrConflict otherwise. A pending claim is waited on
// (errRetry) and fenced after Options.ClaimWait.
func (s *Store) claim(ctx context.Context, req claimRequest, keys []index.Key, snaps bucketSnaps) error {
	if len(keys) == 0 {
		return nil
	}
	docs := map[string]*storedToken{}
	return s.modifyKeys(ctx, keys, snaps, func(b *index.Bucket, keys []index.Key) (bool, error) {
		changed := false
		for _, k := range keys {
			c, err := s.claimKey(ctx, b, req, k, docs)
			if err != nil {
				return false, err
			}
			changed = changed || c
		}
		return changed, nil
	})
}

// claimKey maps k to req.id in bucket b (which holds k), dropping dead
// entries of k and fencing pending ones that have waited long enough. It
// reports whether b changed. On an error b may hold changes for k that
// the caller must discard.
func (s *Store) claimKey(ctx context.Context, b *index.Bucket, req claimRequest, k index.Key, docs map[string]*storedToken) (bool, error) {
	changed := false
	for _, e := range b.Holders(k, req.id) {
		if k.Kind == index.KindAccess && !(req.insert && k == req.decisive) {
			continue // access tokens need not be unique: see below
		}
		state, st, err := s.classify(ctx, e, docs)
		if err != nil {
			return false, err
		}
		if state == ownerPending || state == ownerMissing {
			c := claimID{e.Kind, e.Value, e.ID, e.Gen}
			if s.claims.waited(c, s.now()) < s.claims.patience(s.opts.ClaimWait, s.opts.CleanupTimeout) {
				return false, fmt.Errorf("%w: %w: token %q is claiming the same %s", errRetry, errClaimPending, e.ID, keyName(k.Kind))
			}
			if err := s.fence(ctx, e, state, st, docs); err != nil {
				return false, err
			}
			s.claims.done(c)
			state = ownerDead
		}
		if state == ownerDead {
			changed = b.RemoveEntry(e) || changed
			continue
		}
		return false, s.clash(req, k, e, st)
	}
	return b.Put(k, req.id, req.gen) || changed, nil
}

// Access keys (records without grant and refresh token, see package
// index) are not exclusive: two records may hold one access token, as in
// MemoryStore. Only an insert whose own lookup rule is the access token
// (a record with nothing but an access token) contends on it, so that
// two concurrent saves of such a record make one record.

// clash is the error for key k of a claim held by the live entry e.
func (s *Store) clash(req claimRequest, k index.Key, e index.Entry, owner *storedToken) error {
	if req.insert && !req.exact && (k == req.decisive || tokenstore.Matches(req.saving, owner.tok)) {
		// A concurrent save of the same record won: the retry finds it
		// by the lookup rules and updates it.
		return fmt.Errorf("%w: %s taken by token %q", errRetry, keyName(k.Kind), e.ID)
	}
	return fmt.Errorf("%w: the token's %s already belongs to token %q", tokenstore.ErrConflict, keyName(k.Kind), e.ID)
}

// release removes the mappings of keys to id claimed for generation upTo
// or earlier. It runs on a clean-up context (it must happen even when the
// caller's context ended); what it could not remove in time is dead and
// dropped by this Store's next write of its bucket (leftovers.go), by the
// next claim of those keys, or by Repair.
func (s *Store) release(ctx context.Context, id string, keys []index.Key, upTo uint64, snaps bucketSnaps) {
	if len(keys) == 0 {
		return
	}
	cctx, cancel := s.cleanupContext(ctx)
	defer cancel()
	err := s.persist(cctx, func() error {
		return s.modifyKeys(cctx, keys, snaps, func(b *index.Bucket, keys []index.Key) (bool, error) {
			changed := false
			for _, k := range keys {
				changed = b.Remove(k, id, upTo) || changed
			}
			return changed, nil
		})
	})
	if err != nil {
		s.leftBehind(ctx, id, keys, upTo, err)
	}
}

// persist runs release, a clean-up that removes index entries, again
// while it loses compare-and-swap races (tokenstore.ErrConflict after
// Options.MaxAttempts) and cctx, a clean-up context, has time left. A
// release that gave up on a busy bucket would leave entries behind that
// only Repair removes (an ID entry is never claimed again); its writes
// take part in group commit, so persisting costs the other writers
// little.
func (s *Store) persist(cctx context.Context, release func() error) error {
	for attempt := 0; ; attempt++ {
		err := release()
		if !errors.Is(err, tokenstore.ErrConflict) || cctx.Err() != nil {
			return err
		}
		if backoff(cctx, attempt+2) != nil {
			return err // out of clean-up time
		}
	}
}

// releaseAll removes every mapping of keys to id, whatever generation it
// was claimed for.
func (s *Store) releaseAll(ctx context.Context, id string, keys []index.Key, snaps bucketSnaps) {
	s.release(ctx, id, keys, math.MaxUint64, snaps)
}

// releaseDeleted removes the entries of a token that DeleteToken has just
// deleted. Its keys are in the index (the index holds every key of every
// live token), so a bucket read that does not show one of them is taken
// for a lagging replica (the token may have been saved moments ago, by
// another process) and read again for Options.StaleReadWait: a release
// decided on a stale read would leave the entries behind.
func (s *Store) releaseDeleted(ctx context.Context, id string, keys []index.Key) {
	cctx, cancel := s.cleanupContext(ctx)
	defer cancel()
	waitUntil := time.Now().Add(s.opts.StaleReadWait)
	for attempt := 0; len(keys) > 0; attempt++ {
		missing := map[index.Key]bool{}
		err := s.persist(cctx, func() error {
			return s.modifyKeys(cctx, keys, nil, func(b *index.Bucket, keys []index.Key) (bool, error) {
				changed := false
				for _, k := range keys {
					removed := b.Remove(k, id, math.MaxUint64)
					missing[k] = !removed
					changed = changed || removed
				}
				return changed, nil
			})
		})
		if err != nil {
			s.leftBehind(ctx, id, keys, math.MaxUint64, err)
			return
		}
		keys = slices.DeleteFunc(keys, func(k index.Key) bool { return !missing[k] })
		if len(keys) == 0 || time.Now().After(waitUntil) {
			return
		}
		if err := backoff(cctx, attempt+2); err != nil {
			return
		}
	}
}

func keyName(kind string) string {
	switch kind {
	case index.KindUser:
		return "user name"
	case index.KindGrant:
		return "grant token"
	case index.KindRefresh:
		return "refresh token"
	case index.KindAccess:
		return "access token"
	}
	return "id"
}

func diffKeys(a, b []index.Key) []index.Key {
	var out []index.Key
	for _, k := range a {
		if !slices.Contains(b, k) {
			out = append(out, k)
		}
	}
	return out
}

// claimWatch remembers when this Store first saw each unfinished claim it
// is waiting on, so that it fences a claim only after it has waited for
// it long enough (patience), measured on its own clock.
type claimWatch struct {
	mu    sync.Mutex
	first map[claimID]time.Time
	// took is how long this Store's own saves take from their first claim
	// to their document write, a moving average.
	took time.Duration
}

// claimPatience: a pending claim is waited on for at least this many
// times as long as this Store's own saves take between claim and write.
// All processes of a prefix share the backend, so their saves are about
// as slow as this Store's: on a slow or throttled backend (an overloaded
// emulator, a cloud's backoff) a save that takes longer than
// Options.ClaimWait is still finishing, and fencing it would only make it
// start again, each restart slowing the others further.
const claimPatience = 3

// finished records how long one of this Store's saves took from its first
// claim to its document write.
func (w *claimWatch) finished(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.took == 0 {
		w.took = d
	} else {
		w.took += (d - w.took) / 4
	}
}

// patience returns how long a pending claim is waited on before it is
// fenced: least (Options.ClaimWait), or claimPatience times this Store's
// own claim-to-write time when that is longer, but never more than most.
func (w *claimWatch) patience(least, most time.Duration) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return max(least, min(claimPatience*w.took, most))
}

type claimID struct {
	kind, value, owner string
	gen                uint64
}

func newClaimWatch() *claimWatch { return &claimWatch{first: map[claimID]time.Time{}} }

// waited returns how long the claim has been watched, starting the watch
// at now if it is new. Watches older than an hour are dropped.
func (w *claimWatch) waited(c claimID, now time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.first) > 1024 {
		for k, t := range w.first {
			if now.Sub(t) > time.Hour {
				delete(w.first, k)
			}
		}
	}
	t, ok := w.first[c]
	if !ok {
		w.first[c] = now
		return 0
	}
	return now.Sub(t)
}

// done forgets a claim that was resolved.
func (w *claimWatch) done(c claimID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.first, c)
}
