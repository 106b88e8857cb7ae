package casstore

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/cloudtokens/cloudtokens/observe"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/index"
)

// ImportToken implements tokenstore.Importer: it stores t exactly, under
// t.ID, for migrations and restores. A record with that ID is replaced
// (its dropped keys released, its new keys claimed); otherwise a tombstone
// is created under t.ID and replaced by t in the same way (one write more
// than an insert). A key that
// another record holds gives tokenstore.ErrConflict and changes nothing.
// Importing a token that is already stored as given writes nothing.
func (s *Store) ImportToken(ctx context.Context, t *tokenstore.Token) (err error) {
	ctx, span := s.start(ctx, observe.ImportToken, tokenIDOfToken(t))
	defer span.End(&err)
	if t == nil {
		return fmt.Errorf("%w: nil token", tokenstore.ErrInvalidToken)
	}
	if err := tokenstore.ValidateID(t.ID); err != nil {
		return err
	}
	if err := tokenstore.ValidateForSave(t); err != nil {
		return err
	}
	if _, err := tokenstore.MarshalDocument(t); err != nil {
		return err
	}
	nt := t.Clone()
	return s.retry(ctx, "ImportToken", func() error {
		mu := stripe(&s.saveMu, "id:"+nt.ID)
		mu.Lock()
		defer mu.Unlock()
		snaps := bucketSnaps{}
		st, err := s.readDoc(ctx, nt.ID)
		if errors.Is(err, tokenstore.ErrNotFound) {
			if err := s.ensureIndex(ctx); err != nil {
				return err
			}
			// A new ID: a tombstone first, so that two imports of one ID
			// meet at a compare-and-swap on the document (as two updates
			// do) rather than at their claims.
			st, err = s.writeDoc(ctx, nil, &tokenstore.Token{ID: nt.ID}, tokenstore.Meta{Deleted: s.now().UnixMilli()})
			if errors.Is(err, ErrExists) {
				return fmt.Errorf("%w: token %q was created meanwhile", errRetry, nt.ID)
			}
		}
		switch {
		case err != nil:
			return err
		case !st.tombstone() && sameToken(st.tok, nt) && st.meta.Lease == nil:
			return nil
		}
		return s.replace(ctx, st, nt, nil, claimRequest{saving: nt, exact: true}, snaps, false)
	})
}

// ImportTokens implements [tokenstore.BatchImporter]: ImportToken for many
// tokens at once, with the writes of the index grouped. Each token still
// costs its own document writes (a tombstone and the token for a new ID,
// one compare-and-swap for an existing one), but the claims of the whole
// batch are made bucket by bucket, so a bulk import writes each bucket
// about once per batch rather than once per token. That is what keeps a
// bulk import within AWS's version quota without growing the index for a
// load that lasts minutes (buckets grow with their write rate, see the
// package documentation). Batches of a few hundred to a few thousand
// tokens work well. The result has one error per token, nil for the
// tokens imported; the tokens of a batch are independent: one that fails
// does not stop the others.
func (s *Store) ImportTokens(ctx context.Context, toks []*tokenstore.Token) (errs []error) {
	ctx, span := s.start(ctx, observe.ImportTokens, "")
	defer func() {
		err := errors.Join(errs...)
		span.End(&err)
	}()
	errs = make([]error, len(toks))
	var items []*importItem
	seen := map[string]bool{}
	for i, t := range toks {
		err := func() error {
			switch {
			case t == nil:
				return fmt.Errorf("%w: nil token", tokenstore.ErrInvalidToken)
			case seen[t.ID]:
				return fmt.Errorf("%w: id %q twice in one batch", tokenstore.ErrInvalidToken, t.ID)
			}
			if err := tokenstore.ValidateID(t.ID); err != nil {
				return err
			}
			if err := tokenstore.ValidateForSave(t); err != nil {
				return err
			}
			_, err := tokenstore.MarshalDocument(t)
			return err
		}()
		if err != nil {
			errs[i] = err
			continue
		}
		seen[t.ID] = true
		items = append(items, &importItem{i: i, tok: t.Clone()})
	}
	pending := items
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt >= s.opts.MaxAttempts {
			for _, it := range pending {
				errs[it.i] = conflict("ImportTokens", s.opts.MaxAttempts, errs[it.i])
			}
			break
		}
		if err := backoff(ctx, attempt); err != nil {
			for _, it := range pending {
				errs[it.i] = err
			}
			break
		}
		pending = s.importRound(ctx, pending, errs)
	}
	return errs
}

// importItem is one token of an ImportTokens batch.
type importItem struct {
	i   int // position in the batch
	tok *tokenstore.Token
	st  *storedToken // the document it replaces
}

// keyClaim is one key of one token of a batch.
type keyClaim struct {
	it  *importItem
	key index.Key
	gen uint64
}

// importRound makes one attempt at items: it reads their documents,
// creates tombstones for the new IDs, claims the keys of the batch bucket
// by bucket, writes the documents and releases the keys they dropped. It
// returns the items to try again.
func (s *Store) importRound(ctx context.Context, items []*importItem, errs []error) []*importItem {
	var retry []*importItem
	fail := func(it *importItem, err error) {
		if retryable(err) || !definite(err) && !errors.Is(err, tokenstore.ErrConflict) && ctx.Err() == nil {
			errs[it.i] = err
			retry = append(retry, it)
			return
		}
		errs[it.i] = err
	}
	names := make([]string, len(items))
	for i, it := range items {
		names[i] = TokenName(it.tok.ID)
	}
	if len(items) > 0 {
		if err := s.ensureIndex(ctx); err != nil {
			for _, it := range items {
				fail(it, err)
			}
			return retry
		}
	}
	res, err := s.b.ReadMany(ctx, names)
	if err != nil {
		for _, it := range items {
			fail(it, err)
		}
		return retry
	}
	var work, missing []*importItem
	for i, it := range items {
		it.st = nil
		switch r := res[i]; {
		case errors.Is(r.Err, tokenstore.ErrNotFound):
			missing = append(missing, it)
			continue
		case r.Err != nil:
			fail(it, r.Err)
			continue
		default:
			if it.st, err = s.admit(it.tok.ID, r.Value, r.Version); err != nil {
				errs[it.i] = err
				continue
			}
		}
		if !it.st.tombstone() && sameToken(it.st.tok, it.tok) && it.st.meta.Lease == nil {
			errs[it.i] = nil // stored already
			continue
		}
		work = append(work, it)
	}
	// New IDs get a tombstone first, as in ImportToken.
	var mu sync.Mutex
	s.each(missing, func(it *importItem) {
		st, err := s.writeDoc(ctx, nil, &tokenstore.Token{ID: it.tok.ID}, tokenstore.Meta{Deleted: s.now().UnixMilli()})
		mu.Lock()
		defer mu.Unlock()
		if errors.Is(err, ErrExists) {
			err = fmt.Errorf("%w: token %q was created meanwhile", errRetry, it.tok.ID)
		}
		if err != nil {
			fail(it, err)
			return
		}
		it.st = st
		work = append(work, it)
	})
	// The claims of the batch, bucket by bucket.
	var claims, drops []keyClaim
	for _, it := range work {
		var oldKeys []index.Key
		if !it.st.tombstone() {
			oldKeys = index.KeysOf(it.st.tok)
		}
		newKeys := index.KeysOf(it.tok)
		gen := it.st.meta.Gen + 1
		for _, k := range diffKeys(newKeys, oldKeys) {
			claims = append(claims, keyClaim{it, k, gen})
		}
		for _, k := range diffKeys(oldKeys, newKeys) {
			drops = append(drops, keyClaim{it, k, gen})
		}
	}
	failed := s.claimBatch(ctx, claims)
	var written []*importItem
	for _, it := range work {
		if err := failed[it]; err != nil {
			fail(it, err)
			continue
		}
		written = append(written, it)
	}
	// Withdraw the claims of the tokens that failed.
	var undo []keyClaim
	for _, c := range claims {
		if failed[c.it] != nil {
			undo = append(undo, c)
		}
	}
	s.releaseBatch(ctx, undo)
	// The documents.
	var ok []*importItem
	s.each(written, func(it *importItem) {
		_, err := s.writeDoc(ctx, it.st, it.tok, tokenstore.Meta{})
		mu.Lock()
		defer mu.Unlock()
		if errors.Is(err, ErrVersionMismatch) || errors.Is(err, tokenstore.ErrNotFound) {
			err = fmt.Errorf("%w: token %q changed during the import: %w", errRetry, it.tok.ID, err)
		}
		if err != nil {
			fail(it, err)
			return
		}
		errs[it.i] = nil
		ok = append(ok, it)
	})
	done := map[*importItem]bool{}
	for _, it := range ok {
		done[it] = true
	}
	var release []keyClaim
	for _, d := range drops {
		if done[d.it] {
			release = append(release, d)
		}
	}
	s.releaseBatch(ctx, release)
	return retry
}

// each runs fn for every item, DeleteWorkers at a time.
func (s *Store) each(items []*importItem, fn func(*importItem)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, s.opts.DeleteWorkers)
	for _, it := range items {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(it)
		})
	}
	wg.Wait()
}

// claimBatch claims keys for several tokens, one write per bucket. A token
// whose claim fails in a bucket keeps none of its claims of that bucket;
// the result maps each failed token to its error.
func (s *Store) claimBatch(ctx context.Context, claims []keyClaim) map[*importItem]error {
	failed := map[*importItem]error{}
	docs := map[string]*storedToken{}
	pending := claims
	for round := 0; len(pending) > 0; round++ {
		if round > index.MaxDepth+2 {
			for _, c := range pending {
				failed[c.it] = fmt.Errorf("%w: keys do not settle in a bucket", index.ErrLayout)
			}
			break
		}
		l := s.currentLayout()
		byBucket := map[int][]keyClaim{}
		var ns []int
		for _, c := range pending {
			if failed[c.it] != nil {
				continue
			}
			n := l.route(c.key)
			if _, ok := byBucket[n]; !ok {
				ns = append(ns, n)
			}
			byBucket[n] = append(byBucket[n], c)
		}
		pending = nil
		for _, n := range ns {
			var left []keyClaim
			var lost map[*importItem]error
			_, err := s.modifyBucket(ctx, n, nil, func(b *index.Bucket) (bool, error) {
				left, lost = left[:0], map[*importItem]error{}
				changed := false
				// The claims of each token apply together or not at all.
				var order []*importItem
				byItem := map[*importItem][]keyClaim{}
				for _, c := range byBucket[n] {
					if !covers(b, c.key) {
						left = append(left, c)
						continue
					}
					if _, ok := byItem[c.it]; !ok {
						order = append(order, c.it)
					}
					byItem[c.it] = append(byItem[c.it], c)
				}
				for _, it := range order {
					tmp := b.Clone()
					c := false
					var err error
					for _, kc := range byItem[it] {
						req := claimRequest{id: it.tok.ID, gen: kc.gen, saving: it.tok, exact: true}
						var ch bool
						if ch, err = s.claimKey(ctx, tmp, req, kc.key, docs); err != nil {
							break
						}
						c = c || ch
					}
					if err != nil {
						lost[it] = err
						continue
					}
					if c {
						b.Entries, changed = tmp.Entries, true
					}
				}
				if len(left) > 0 {
					s.learn(b)
				}
				return changed, nil
			})
			if errors.Is(err, index.ErrBucketFull) {
				// The batch does not fit: grow the index, then place it again.
				if serr := s.split(ctx); serr == nil {
					pending = append(pending, byBucket[n]...)
					continue
				}
			}
			if err != nil {
				for _, c := range byBucket[n] {
					failed[c.it] = err
				}
				continue
			}
			for it, err := range lost {
				failed[it] = err
			}
			pending = append(pending, left...)
		}
	}
	return failed
}

// releaseBatch removes the given claims (each up to its generation), one
// write per bucket, on a clean-up context; what it could not remove is
// left to the Store's next writes of those buckets (leftovers.go).
func (s *Store) releaseBatch(ctx context.Context, claims []keyClaim) {
	if len(claims) == 0 {
		return
	}
	cctx, cancel := s.cleanupContext(ctx)
	defer cancel()
	byKey := map[index.Key][]keyClaim{}
	var keys []index.Key
	for _, c := range claims {
		if _, ok := byKey[c.key]; !ok {
			keys = append(keys, c.key)
		}
		byKey[c.key] = append(byKey[c.key], c)
	}
	err := s.modifyKeys(cctx, keys, nil, func(b *index.Bucket, keys []index.Key) (bool, error) {
		changed := false
		for _, k := range keys {
			for _, c := range byKey[k] {
				changed = b.Remove(k, c.it.tok.ID, c.gen) || changed
			}
		}
		return changed, nil
	})
	if err != nil {
		kept := true
		for _, c := range claims {
			kept = s.left.add(c.it.tok.ID, []index.Key{c.key}, c.gen) && kept
		}
		s.logLeftBehind(ctx, kept, "claims", len(claims), "error", err)
	}
}

// ensureIndex creates bucket 0 of a new store, so that the tombstones an
// import writes first are not taken for the documents of a lost index.
func (s *Store) ensureIndex(ctx context.Context) error {
	_, version, err := s.readBucket(ctx, 0, nil)
	if err != nil || version != "" || s.currentLayout().fixed > 0 {
		return err
	}
	_, err = s.modifyBucket(ctx, 0, nil, func(b *index.Bucket) (bool, error) { return b.Gen == 0, nil })
	return err
}
