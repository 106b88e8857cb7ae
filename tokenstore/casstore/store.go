package casstore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/index"
)

// Options tune a Store. The zero value is valid.
type Options struct {
	// IndexShards is the number of index documents (default 1). Every
	// store sharing a prefix must use the same value. See package index
	// for the capacity of one shard.
	IndexShards int
	// CacheIndex keeps the index shards in memory and answers lookups
	// from them, verifying every answer against the token it reads.
	CacheIndex bool
	// MaxAttempts bounds the compare-and-swap retries of one operation
	// (default 20) before tokenstore.ErrConflict.
	MaxAttempts int
	// Logger receives warnings about stale or corrupt documents; never
	// token values. Default slog.Default().
	Logger *slog.Logger
	// DeleteWorkers bounds the parallel deletes of DeleteTokens (default 8).
	DeleteWorkers int
	// RememberTokens is how many tokens the Store remembers as it last
	// read or wrote them (default 4096; negative: none). Saving a
	// remembered token skips the read that learns its version: a refresh
	// costs one compare-and-swap write. A stale entry costs one failed
	// write, then the save reads afresh.
	RememberTokens int
}

// Store implements tokenstore.Store and tokenstore.Leaser on a Backend.
type Store struct {
	b    Backend
	opts Options

	shardMu []sync.Mutex   // serialises this process's writes to each shard
	saveMu  [64]sync.Mutex // serialises this process's saves of one key (striped)

	cacheMu sync.Mutex
	cache   []*cachedShard // by shard number; nil entries are not cached

	recent *recentDocs
}

type cachedShard struct {
	shard   *index.Shard
	version string
}

var (
	_ tokenstore.Store  = (*Store)(nil)
	_ tokenstore.Leaser = (*Store)(nil)
)

// New returns a Store on b.
func New(b Backend, opts Options) *Store {
	if opts.IndexShards <= 0 {
		opts.IndexShards = 1
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.DeleteWorkers <= 0 {
		opts.DeleteWorkers = 8
	}
	if opts.RememberTokens == 0 {
		opts.RememberTokens = 4096
	}
	return &Store{
		b:       b,
		opts:    opts,
		shardMu: make([]sync.Mutex, opts.IndexShards),
		cache:   make([]*cachedShard, opts.IndexShards),
		recent:  newRecentDocs(opts.RememberTokens),
	}
}

// errRetry restarts an operation with fresh reads.
var errRetry = errors.New("casstore: retry")

// backoff sleeps before attempt number attempt (0-based) with jitter.
func backoff(ctx context.Context, attempt int) error {
	if attempt == 0 {
		return ctx.Err()
	}
	d := time.Duration(5<<min(attempt, 6)) * time.Millisecond // 10ms .. 320ms
	d = d/2 + rand.N(d)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func conflict(op string, attempts int, last error) error {
	return fmt.Errorf("%w: %s gave up after %d attempts (last: %v)", tokenstore.ErrConflict, op, attempts, last)
}

// --- tokens ---

type storedToken struct {
	tok     *tokenstore.Token
	lease   *tokenstore.Lease
	version string
}

func (s *Store) readToken(ctx context.Context, id string) (*storedToken, error) {
	obj, err := s.b.Read(ctx, TokenName(id))
	if err != nil {
		if errors.Is(err, tokenstore.ErrNotFound) {
			s.recent.forget(id)
		}
		return nil, err
	}
	st, err := decodeToken(id, obj.Value, obj.Version)
	if err != nil {
		s.recent.forget(id)
		return nil, err
	}
	s.recent.put(st.tok, st.lease, st.version)
	return st, nil
}

func decodeToken(id string, value []byte, version string) (*storedToken, error) {
	t, lease, err := tokenstore.UnmarshalDocumentWithLease(value)
	if err != nil {
		return nil, fmt.Errorf("token %q: %w", id, err)
	}
	if t.ID != id {
		return nil, fmt.Errorf("%w: token document %q holds id %q", tokenstore.ErrMalformed, id, t.ID)
	}
	return &storedToken{tok: t, lease: lease, version: version}, nil
}

// FindTokenByID implements tokenstore.Store.
func (s *Store) FindTokenByID(ctx context.Context, id string) (*tokenstore.Token, error) {
	if err := tokenstore.ValidateID(id); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st, err := s.readToken(ctx, id)
	if err != nil {
		return nil, err
	}
	return st.tok, nil
}

// FindToken implements tokenstore.Store.
func (s *Store) FindToken(ctx context.Context, query *tokenstore.Token) (*tokenstore.Token, error) {
	st, err := s.find(ctx, query, nil)
	if err != nil {
		return nil, err
	}
	return st.tok, nil
}

// find answers a query with the stored token and its version. The index
// shard it reads is kept in snaps (may be nil).
func (s *Store) find(ctx context.Context, query *tokenstore.Token, snaps shardSnaps) (*storedToken, error) {
	rule, err := tokenstore.QueryRuleOf(query)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key, ok := index.QueryKey(query)
	if !ok || rule == tokenstore.RuleAccessToken {
		return s.scan(ctx, query)
	}
	n := index.Route(key, s.opts.IndexShards)
	read := map[string]*storedToken{}
	if c := s.cached(n); c != nil {
		if ids := c.shard.Lookup(key); len(ids) > 0 {
			st, err := s.selectFrom(ctx, query, ids, read)
			if err == nil {
				return st, nil
			}
			if !errors.Is(err, tokenstore.ErrNotFound) && !errors.Is(err, tokenstore.ErrAmbiguous) {
				return nil, err
			}
		}
		// A miss, a mismatch or an ambiguity in the cache: re-read the index.
	}
	sh, _, err := s.readShard(ctx, n, snaps)
	if err != nil {
		return nil, err
	}
	return s.selectFrom(ctx, query, sh.Lookup(key), read)
}

// selectFrom reads the candidate tokens (reusing those in read) and
// applies the lookup rules.
func (s *Store) selectFrom(ctx context.Context, query *tokenstore.Token, ids []string, read map[string]*storedToken) (*storedToken, error) {
	var cands []*tokenstore.Token
	byID := map[string]*storedToken{}
	for _, id := range ids {
		st, ok := read[id]
		if !ok {
			var err error
			st, err = s.readToken(ctx, id)
			if errors.Is(err, tokenstore.ErrNotFound) {
				read[id] = nil // stale index entry
				continue
			}
			if err != nil {
				return nil, err
			}
			read[id] = st
		}
		if st == nil {
			continue
		}
		cands = append(cands, st.tok)
		byID[id] = st
	}
	t, err := tokenstore.Select(query, cands)
	if err != nil {
		return nil, err
	}
	return byID[t.ID], nil
}

// scan answers a query that the index cannot (by access token) by reading
// every token.
func (s *Store) scan(ctx context.Context, query *tokenstore.Token) (*storedToken, error) {
	all, err := s.all(ctx)
	if err != nil {
		return nil, err
	}
	toks := make([]*tokenstore.Token, 0, len(all))
	byID := make(map[string]*storedToken, len(all))
	for _, st := range all {
		toks = append(toks, st.tok)
		byID[st.tok.ID] = st
	}
	t, err := tokenstore.Select(query, toks)
	if err != nil {
		return nil, err
	}
	return byID[t.ID], nil
}

// Tokens implements tokenstore.Store. A corrupt document is left out and
// reported to the Logger (FindTokenByID on its ID returns the
// tokenstore.ErrMalformed error); it does not fail the listing.
func (s *Store) Tokens(ctx context.Context) ([]*tokenstore.Token, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	all, err := s.all(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*tokenstore.Token, len(all))
	for i, st := range all {
		out[i] = st.tok
	}
	return out, nil
}

func (s *Store) listedIDs(ctx context.Context) ([]string, error) {
	var ids []string
	for n := range s.opts.IndexShards {
		sh, _, err := s.readShard(ctx, n, nil)
		if err != nil {
			return nil, err
		}
		ids = append(ids, sh.Listed()...)
	}
	return ids, nil
}

func (s *Store) all(ctx context.Context) ([]*storedToken, error) {
	ids, err := s.listedIDs(ctx)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = TokenName(id)
	}
	res, err := s.b.ReadMany(ctx, names)
	if err != nil {
		return nil, err
	}
	out := make([]*storedToken, 0, len(res))
	for i, r := range res {
		if errors.Is(r.Err, tokenstore.ErrNotFound) {
			continue // deleted since the index was read
		}
		if r.Err != nil && !errors.Is(r.Err, tokenstore.ErrMalformed) {
			return nil, r.Err
		}
		st, err := decodeToken(ids[i], r.Value, r.Version)
		if r.Err != nil {
			err = r.Err
		}
		if err != nil {
			s.opts.Logger.WarnContext(ctx, "cloudtokens: skipping corrupt token document", "id", ids[i], "error", err)
			continue
		}
		out = append(out, st)
	}
	return out, nil
}

// SaveToken implements tokenstore.Store.
func (s *Store) SaveToken(ctx context.Context, t *tokenstore.Token) error {
	if err := tokenstore.ValidateForSave(t); err != nil {
		return err
	}
	if _, err := tokenstore.MarshalDocument(t); err != nil {
		return err // too large even before merging
	}
	var last error
	for attempt := range s.opts.MaxAttempts {
		if err := backoff(ctx, attempt); err != nil {
			return err
		}
		id, err := s.saveLocked(ctx, t)
		if err == nil {
			t.ID = id
			return nil
		}
		if !errors.Is(err, errRetry) && !errors.Is(err, ErrVersionMismatch) && !errors.Is(err, ErrExists) {
			return err
		}
		last = err
	}
	return conflict("SaveToken", s.opts.MaxAttempts, last)
}

// saveLocked runs saveOnce holding the stripe lock of the token's ID or
// lookup key, so saves of one user in one process queue up instead of
// racing; across processes the compare-and-swap decides.
func (s *Store) saveLocked(ctx context.Context, t *tokenstore.Token) (string, error) {
	key := "id:" + t.ID
	if t.ID == "" {
		if k, ok := index.QueryKey(t); ok {
			key = k.Kind + ":" + k.Value
		}
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	mu := &s.saveMu[h.Sum32()%uint32(len(s.saveMu))]
	mu.Lock()
	defer mu.Unlock()
	return s.saveOnce(ctx, t)
}

// errStale: a remembered document was not the current one.
var errStale = errors.New("casstore: remembered document is stale")

// saveOnce decides between update and insert and makes one attempt. A
// token it remembers is updated from memory first (one write); when that
// finds the document changed, it decides again from fresh reads.
func (s *Store) saveOnce(ctx context.Context, t *tokenstore.Token) (string, error) {
	snaps := shardSnaps{}
	var target *storedToken
	if t.ID != "" {
		if known := s.recent.get(t.ID); known != nil {
			err := s.update(ctx, known, t, snaps, true)
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
		return target.tok.ID, s.update(ctx, target, t, snaps, false)
	}
	return s.insert(ctx, t, snaps)
}

// update writes t merged into target. With remembered, target comes from
// memory rather than a read of this attempt: a version mismatch, a
// missing document or nothing to change (which only a fresh read can
// confirm) gives errStale.
func (s *Store) update(ctx context.Context, target *storedToken, t *tokenstore.Token, snaps shardSnaps, remembered bool) error {
	merged := tokenstore.ApplyUpdate(target.tok, t)
	if *merged == *target.tok && target.lease == nil {
		if remembered {
			return fmt.Errorf("%w: nothing to change in token %q", errStale, target.tok.ID)
		}
		return nil // nothing changes
	}
	doc, err := tokenstore.MarshalDocument(merged)
	if err != nil {
		return err
	}
	id := merged.ID
	oldKeys, newKeys := index.KeysOf(target.tok), index.KeysOf(merged)
	added := diffKeys(newKeys, oldKeys)
	removed := diffKeys(oldKeys, newKeys)
	// A failed update keeps what it claimed: a concurrent update of the same
	// token may have claimed the same entry and succeed with it. An extra
	// entry is harmless (readers verify); a missing one is not.
	if err := s.claim(ctx, id, added, t, false, snaps); err != nil {
		return err
	}
	version, err := s.b.Update(ctx, TokenName(id), doc, target.version)
	if err != nil {
		s.recent.forget(id)
		if remembered && (errors.Is(err, ErrVersionMismatch) || errors.Is(err, tokenstore.ErrNotFound)) {
			return fmt.Errorf("%w: %w", errStale, err)
		}
		if errors.Is(err, tokenstore.ErrNotFound) {
			// Deleted since it was read, or an insert that lost a race
			// withdrew it: decide again from fresh reads.
			return fmt.Errorf("%w: token %q vanished during the save", errRetry, id)
		}
		return err
	}
	s.recent.put(merged, nil, version)
	s.release(ctx, id, removed, merged, snaps)
	return nil
}

func (s *Store) insert(ctx context.Context, t *tokenstore.Token, snaps shardSnaps) (string, error) {
	nt := t.Clone()
	nt.ID = tokenstore.NewID()
	doc, err := tokenstore.MarshalDocument(nt)
	if err != nil {
		return "", err
	}
	version, err := s.b.Create(ctx, TokenName(nt.ID), doc)
	if err != nil {
		return "", err
	}
	// Claim the lookup keys first and the ID key last: a record that loses
	// the race for a key is never listed by Tokens, even for a moment.
	for _, batch := range s.insertBatches(t, index.KeysOf(nt)) {
		if err = s.claim(ctx, nt.ID, batch, t, true, snaps); err != nil {
			break
		}
	}
	if err != nil {
		// Lost the race for a key (or failed): withdraw the new record.
		s.release(ctx, nt.ID, index.KeysOf(nt), nil, snaps)
		if derr := s.b.Delete(ctx, TokenName(nt.ID)); derr != nil && !errors.Is(derr, tokenstore.ErrNotFound) {
			s.opts.Logger.WarnContext(ctx, "cloudtokens: could not delete withdrawn token document", "id", nt.ID, "error", derr)
		}
		return "", err
	}
	s.recent.put(nt, nil, version)
	return nt.ID, nil
}

// insertBatches orders the index writes of an insert (one batch per shard
// write). First the shard of the decisive key, the key the saving token's
// own lookup rule uses: concurrent inserts of the same record contend on
// it, so a loser loses before any of its keys is visible to a lookup.
// Last the ID key, which lists the token, together with the other keys of
// its shard. With one shard it is a single atomic write.
func (s *Store) insertBatches(saving *tokenstore.Token, keys []index.Key) [][]index.Key {
	idKey := keys[0]
	decisive := idKey
	if k, ok := index.QueryKey(saving); ok && slices.ContainsFunc(keys, func(c index.Key) bool { return c.Kind == k.Kind && c.Value == k.Value }) {
		decisive = k
	} else if len(keys) > 1 {
		decisive = keys[1]
	}
	shards, by := s.groupByShard(keys)
	first, last := index.Route(decisive, s.opts.IndexShards), index.Route(idKey, s.opts.IndexShards)
	if len(shards) == 1 {
		return [][]index.Key{keys}
	}
	var batches [][]index.Key
	add := func(ks []index.Key) {
		if len(ks) > 0 {
			batches = append(batches, ks)
		}
	}
	without := func(ks []index.Key) []index.Key {
		return slices.DeleteFunc(slices.Clone(ks), func(k index.Key) bool { return k == idKey })
	}
	add(without(by[first]))
	for _, n := range shards {
		if n != first && n != last {
			add(by[n])
		}
	}
	if first == last {
		add([]index.Key{idKey})
	} else {
		add(by[last])
	}
	return batches
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

// groupByShard groups keys by the shard that holds them, in shard order.
func (s *Store) groupByShard(keys []index.Key) ([]int, map[int][]index.Key) {
	by := map[int][]index.Key{}
	for _, k := range keys {
		n := index.Route(k, s.opts.IndexShards)
		by[n] = append(by[n], k)
	}
	shards := make([]int, 0, len(by))
	for n := range by {
		shards = append(shards, n)
	}
	slices.Sort(shards)
	return shards, by
}

// claim maps keys to id in the index. A key held by another live token
// means a lost race or a clash: retryable when the save's own lookup key
// is concerned on an insert (the retry finds and updates the winner), or
// when the other token may be mid-update; tokenstore.ErrConflict when the
// key belongs to a record the save's lookup rule would not update.
func (s *Store) claim(ctx context.Context, id string, keys []index.Key, saving *tokenstore.Token, inserting bool, snaps shardSnaps) error {
	if len(keys) == 0 {
		return nil
	}
	lookupKey, hasLookup := index.QueryKey(saving)
	shards, by := s.groupByShard(keys)
	for _, n := range shards {
		err := s.modifyShard(ctx, n, snaps, func(sh *index.Shard) (bool, error) {
			changed := false
			for _, k := range by[n] {
				for _, owner := range sh.Owners(k, id) {
					state, ownerTok, err := s.ownerState(ctx, owner, k)
					if err != nil {
						return false, err
					}
					switch {
					case state == ownerGone:
						sh.RemoveID(owner) // stale entries of a deleted token
						changed = true
						continue
					case state == ownerPending:
						return false, fmt.Errorf("%w: token %q is claiming the same %s", errRetry, owner, keyName(k.Kind))
					case inserting && hasLookup && lookupKey.Kind == k.Kind && lookupKey.Value == k.Value,
						inserting && ownerTok != nil && tokenstore.Matches(saving, ownerTok):
						// A concurrent insert of the same record won: the
						// retry finds it by the lookup rules and updates it.
						return false, fmt.Errorf("%w: %s taken by token %q", errRetry, keyName(k.Kind), owner)
					}
					return false, fmt.Errorf("%w: the token's %s already belongs to token %q", tokenstore.ErrConflict, keyName(k.Kind), owner)
				}
				if !sh.Has(k, id) {
					sh.Add(k, id)
					changed = true
				}
			}
			return changed, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func keyName(kind string) string {
	switch kind {
	case index.KindUser:
		return "user name"
	case index.KindGrant:
		return "grant token"
	case index.KindRefresh:
		return "refresh token"
	}
	return "id"
}

type ownerStatus int

const (
	ownerGone    ownerStatus = iota // no document: the entry is stale
	ownerHolds                      // the document holds the key
	ownerPending                    // the document exists without the key: maybe mid-update
)

// ownerState reads token owner to tell whether its index entry for k is
// live, and returns the owner's token when it could be read. A corrupt
// document keeps its entries.
func (s *Store) ownerState(ctx context.Context, owner string, k index.Key) (ownerStatus, *tokenstore.Token, error) {
	st, err := s.readToken(ctx, owner)
	switch {
	case err == nil:
		for _, have := range index.KeysOf(st.tok) {
			if index.Clashes(have, k) {
				return ownerHolds, st.tok, nil
			}
		}
		return ownerPending, st.tok, nil
	case errors.Is(err, tokenstore.ErrNotFound):
		return ownerGone, nil, nil
	case errors.Is(err, tokenstore.ErrMalformed):
		return ownerHolds, nil, nil
	}
	return ownerGone, nil, err
}

// release removes the mappings of keys to id, except keys that current
// (the token as now stored, may be nil) still holds. Failures are logged:
// a leftover entry is stale and harmless.
func (s *Store) release(ctx context.Context, id string, keys []index.Key, current *tokenstore.Token, snaps shardSnaps) {
	var keep []index.Key
	if current != nil {
		keep = index.KeysOf(current)
	}
	keys = diffKeys(keys, keep)
	if len(keys) == 0 {
		return
	}
	ctx = context.WithoutCancel(ctx)
	shards, by := s.groupByShard(keys)
	for _, n := range shards {
		err := s.modifyShard(ctx, n, snaps, func(sh *index.Shard) (bool, error) {
			changed := false
			for _, k := range by[n] {
				if sh.Remove(k, id) {
					changed = true
				}
			}
			return changed, nil
		})
		if err != nil {
			s.opts.Logger.WarnContext(ctx, "cloudtokens: could not release index entries", "id", id, "shard", n, "error", err)
		}
	}
}

// DeleteToken implements tokenstore.Store.
func (s *Store) DeleteToken(ctx context.Context, id string) error {
	if err := tokenstore.ValidateID(id); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var keys []index.Key
	st, err := s.readToken(ctx, id)
	switch {
	case err == nil:
		keys = index.KeysOf(st.tok)
	case errors.Is(err, tokenstore.ErrMalformed):
		// Unknown keys: the entries are removed from every shard below.
	default:
		return err
	}
	s.recent.forget(id)
	if err := s.b.Delete(ctx, TokenName(id)); err != nil {
		// ErrNotFound: another delete won (of concurrent deletes exactly
		// one succeeds); it cleans the index.
		return err
	}
	if keys != nil {
		s.release(ctx, id, keys, nil, nil)
		return nil
	}
	for n := range s.opts.IndexShards {
		if err := s.modifyShard(context.WithoutCancel(ctx), n, nil, func(sh *index.Shard) (bool, error) {
			return sh.RemoveID(id), nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// DeleteTokens implements tokenstore.Store: it deletes the tokens the
// index refers to, and nothing else. Each document is deleted once, then
// each shard is updated once.
func (s *Store) DeleteTokens(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var ids []string
	seen := map[string]bool{}
	perShard := make([][]string, s.opts.IndexShards)
	snaps := shardSnaps{}
	for n := range s.opts.IndexShards {
		sh, _, err := s.readShard(ctx, n, snaps)
		if err != nil {
			return err
		}
		perShard[n] = sh.IDs()
		for _, id := range perShard[n] {
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	s.recent.clear()
	if err := s.deleteDocs(ctx, ids); err != nil {
		return err
	}
	for n, shardIDs := range perShard {
		if len(shardIDs) == 0 {
			continue
		}
		if err := s.modifyShard(ctx, n, snaps, func(sh *index.Shard) (bool, error) {
			changed := false
			for _, id := range shardIDs {
				if sh.RemoveID(id) {
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

func (s *Store) deleteDocs(ctx context.Context, ids []string) error {
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	sem := make(chan struct{}, s.opts.DeleteWorkers)
	for i, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := s.b.Delete(ctx, TokenName(id)); err != nil && !errors.Is(err, tokenstore.ErrNotFound) {
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// --- index shards ---

func (s *Store) cached(n int) *cachedShard {
	if !s.opts.CacheIndex {
		return nil
	}
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	return s.cache[n]
}

func (s *Store) remember(n int, sh *index.Shard, version string) {
	if !s.opts.CacheIndex {
		return
	}
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	s.cache[n] = &cachedShard{shard: sh.Clone(), version: version}
}

func (s *Store) forget(n int) {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	s.cache[n] = nil
}

// shardSnaps holds the index shards one operation has read or written, so
// that its writes to a shard it has already read skip the read, with or
// without the index cache. One goroutine uses it; a nil shardSnaps keeps
// nothing.
type shardSnaps map[int]*cachedShard

func (sn shardSnaps) keep(n int, sh *index.Shard, version string) {
	if sn != nil {
		sn[n] = &cachedShard{shard: sh.Clone(), version: version}
	}
}

// readShard reads shard n; a shard not yet written is empty with version "".
// The result is also kept in snaps.
func (s *Store) readShard(ctx context.Context, n int, snaps shardSnaps) (*index.Shard, string, error) {
	obj, err := s.b.Read(ctx, IndexName(n))
	if errors.Is(err, tokenstore.ErrNotFound) {
		sh := index.NewShard(n, s.opts.IndexShards)
		snaps.keep(n, sh, "")
		return sh, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	sh, err := index.Decode(obj.Value, n, s.opts.IndexShards)
	if err != nil {
		return nil, "", err
	}
	s.remember(n, sh, obj.Version)
	snaps.keep(n, sh, obj.Version)
	return sh, obj.Version, nil
}

// modifyShard applies fn to shard n and writes the result with a
// compare-and-swap, retrying with a fresh read on a version mismatch. The
// first attempt starts from the cached shard, else from the one in snaps,
// else from a read.
func (s *Store) modifyShard(ctx context.Context, n int, snaps shardSnaps, fn func(*index.Shard) (bool, error)) error {
	s.shardMu[n].Lock()
	defer s.shardMu[n].Unlock()
	var last error
	for attempt := range s.opts.MaxAttempts {
		if err := backoff(ctx, attempt); err != nil {
			return err
		}
		var sh *index.Shard
		var version string
		fromCache := false
		if attempt == 0 {
			c := s.cached(n)
			if c == nil {
				c = snaps[n]
			}
			if c != nil {
				sh, version, fromCache = c.shard.Clone(), c.version, true
			}
		}
		if !fromCache {
			var err error
			if sh, version, err = s.readShard(ctx, n, snaps); err != nil {
				return err
			}
		}
		changed, err := fn(sh)
		if err == nil && !changed && fromCache {
			// "Nothing to change" in a cached shard may only mean that the
			// cache is stale (another process added or removed an entry
			// since): decide again on a fresh read.
			if sh, version, err = s.readShard(ctx, n, snaps); err != nil {
				return err
			}
			changed, err = fn(sh)
		}
		if err != nil || !changed {
			return err
		}
		doc, err := sh.Encode()
		if err != nil {
			return err
		}
		var newVersion string
		if version == "" {
			newVersion, err = s.b.Create(ctx, IndexName(n), doc)
		} else {
			newVersion, err = s.b.Update(ctx, IndexName(n), doc, version)
		}
		if err == nil {
			s.remember(n, sh, newVersion)
			snaps.keep(n, sh, newVersion)
			return nil
		}
		if !errors.Is(err, ErrVersionMismatch) && !errors.Is(err, ErrExists) && !errors.Is(err, tokenstore.ErrNotFound) {
			return err
		}
		s.forget(n)
		delete(snaps, n)
		last = err
	}
	return conflict(fmt.Sprintf("index shard %d update", n), s.opts.MaxAttempts, last)
}

// --- leases ---

// AcquireLease implements tokenstore.Leaser with a compare-and-swap on the
// token's own document. A token this Store remembers is leased with one
// write; otherwise, or when that write finds the document changed, it
// reads the token first.
func (s *Store) AcquireLease(ctx context.Context, id, holder string, ttl time.Duration) (bool, error) {
	if err := tokenstore.ValidateID(id); err != nil {
		return false, err
	}
	if known := s.recent.get(id); known != nil {
		won, err := s.writeLease(ctx, known, holder, ttl)
		if won || (err != nil && !errors.Is(err, ErrVersionMismatch) && !errors.Is(err, tokenstore.ErrNotFound)) {
			return won, err
		}
		s.recent.forget(id) // changed since, or leased by another: look again
	}
	st, err := s.readToken(ctx, id)
	if err != nil {
		return false, err
	}
	won, err := s.writeLease(ctx, st, holder, ttl)
	if errors.Is(err, ErrVersionMismatch) {
		return false, nil // someone else wrote first
	}
	return won, err
}

// writeLease writes holder's lease into st's document unless another
// holder's lease on it is still running.
func (s *Store) writeLease(ctx context.Context, st *storedToken, holder string, ttl time.Duration) (bool, error) {
	now := time.Now()
	if !st.lease.Expired(now) && st.lease.Holder != holder {
		return false, nil
	}
	lease := &tokenstore.Lease{Holder: holder, Until: now.Add(ttl).UnixMilli()}
	doc, err := tokenstore.MarshalDocumentWithLease(st.tok, lease)
	if err != nil {
		return false, err
	}
	version, err := s.b.Update(ctx, TokenName(st.tok.ID), doc, st.version)
	if err != nil {
		return false, err
	}
	s.recent.put(st.tok, lease, version)
	return true, nil
}

// ReleaseLease implements tokenstore.Leaser. Saving the token also
// releases it.
func (s *Store) ReleaseLease(ctx context.Context, id, holder string) error {
	if err := tokenstore.ValidateID(id); err != nil {
		return err
	}
	st, err := s.readToken(ctx, id)
	if err != nil {
		return err
	}
	if st.lease == nil || st.lease.Holder != holder {
		return nil
	}
	doc, err := tokenstore.MarshalDocument(st.tok)
	if err != nil {
		return err
	}
	version, err := s.b.Update(ctx, TokenName(id), doc, st.version)
	if errors.Is(err, ErrVersionMismatch) {
		s.recent.forget(id)
		return nil // rewritten since: the lease is gone with it
	}
	if err == nil {
		s.recent.put(st.tok, nil, version)
	}
	return err
}
