package casstore

import (
	"context"
	"errors"

	"github.com/cloudtokens/cloudtokens/observe"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/index"
)

// FindTokenByID implements tokenstore.Store.
func (s *Store) FindTokenByID(ctx context.Context, id string) (_ *tokenstore.Token, err error) {
	ctx, span := s.start(ctx, observe.FindTokenByID, id)
	defer span.End(&err)
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
	return st.tok.Clone(), nil
}

// FindToken implements tokenstore.Store.
func (s *Store) FindToken(ctx context.Context, query *tokenstore.Token) (_ *tokenstore.Token, err error) {
	ctx, span := s.start(ctx, observe.FindToken, "")
	defer span.End(&err)
	st, err := s.find(ctx, query, nil)
	if err != nil {
		return nil, err
	}
	span.SetTokenID(st.tok.ID)
	return st.tok.Clone(), nil
}

// find answers a query with the stored token. The bucket it reads is kept
// in snaps (may be nil).
func (s *Store) find(ctx context.Context, query *tokenstore.Token, snaps bucketSnaps) (*storedToken, error) {
	rule, err := tokenstore.QueryRuleOf(query)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key, _ := index.QueryKey(query)
	read := map[string]*storedToken{}
	reread := false
	if s.opts.CacheIndex {
		n := s.currentLayout().route(key)
		if c := s.cachedBucket(n); c != nil && covers(c.b, key) {
			if ids := c.b.Lookup(key); len(ids) > 0 {
				st, err := s.selectFrom(ctx, query, ids, read)
				if err == nil {
					return st, nil
				}
				if !errors.Is(err, tokenstore.ErrNotFound) && !errors.Is(err, tokenstore.ErrAmbiguous) {
					return nil, err
				}
			}
			// A miss, a mismatch or an ambiguity in the cache: read the
			// bucket, unless a missing document had it read already
			// (readDoc asks the index whether the token is still listed).
			reread = s.cachedBucket(n) != c
		}
	}
	b, _, _, err := s.bucketFor(ctx, key, snaps, reread)
	if err != nil {
		return nil, err
	}
	st, err := s.selectFrom(ctx, query, b.Lookup(key), read)
	if errors.Is(err, tokenstore.ErrNotFound) && rule == tokenstore.RuleAccessToken {
		// Only records without grant and refresh token have their access
		// token in the index; a refreshable record needs a scan.
		return s.scan(ctx, query)
	}
	return st, err
}

// selectFrom reads the candidate tokens (reusing those in read) and
// applies the lookup rules. Tombstones and missing documents (dead or
// pending entries) are skipped.
func (s *Store) selectFrom(ctx context.Context, query *tokenstore.Token, ids []string, read map[string]*storedToken) (*storedToken, error) {
	var cands []*tokenstore.Token
	byID := map[string]*storedToken{}
	for _, id := range ids {
		st, ok := read[id]
		if !ok {
			var err error
			st, err = s.readToken(ctx, id)
			if errors.Is(err, tokenstore.ErrNotFound) {
				read[id] = nil
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

// scan answers a query that the index cannot by reading every token.
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
func (s *Store) Tokens(ctx context.Context) (_ []*tokenstore.Token, err error) {
	ctx, span := s.start(ctx, observe.Tokens, "")
	defer span.End(&err)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	all, err := s.all(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*tokenstore.Token, len(all))
	for i, st := range all {
		out[i] = st.tok.Clone()
	}
	return out, nil
}

// listedIDs returns the IDs that the index lists, once each.
func (s *Store) listedIDs(ctx context.Context, snaps bucketSnaps) ([]string, error) {
	buckets, versions, err := s.allBuckets(ctx, snaps)
	if err != nil {
		return nil, err
	}
	if len(buckets) == 1 && versions[0] == "" {
		// No index at all: a new store, or one whose index was lost.
		repaired, err := s.rebuildLostIndex(ctx)
		if err != nil || !repaired {
			return nil, err
		}
		if buckets, _, err = s.allBuckets(ctx, snaps); err != nil {
			return nil, err
		}
	}
	var ids []string
	seen := map[string]bool{}
	for _, b := range buckets {
		for _, id := range b.Listed() {
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	return ids, nil
}

// all reads every listed token.
func (s *Store) all(ctx context.Context) ([]*storedToken, error) {
	ids, err := s.listedIDs(ctx, nil)
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	res, err := s.b.ReadMany(ctx, tokenNames(ids))
	if err != nil {
		return nil, err
	}
	out := make([]*storedToken, 0, len(res))
	for i, r := range res {
		if errors.Is(r.Err, tokenstore.ErrNotFound) {
			if !s.wroteLately(ids[i]) {
				continue // deleted since the index was read, or an insert in progress
			}
			// This Store wrote it moments ago: a lagging read.
			st, err := s.readToken(ctx, ids[i])
			if errors.Is(err, tokenstore.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			out = append(out, st)
			continue
		}
		if r.Err != nil && !errors.Is(r.Err, tokenstore.ErrMalformed) {
			return nil, r.Err
		}
		var st *storedToken
		if r.Err == nil {
			st, err = s.admit(ids[i], r.Value, r.Version)
		} else {
			err = r.Err
		}
		if err != nil {
			s.opts.Logger.WarnContext(ctx, "cloudtokens: skipping corrupt token document", "id", ids[i], "error", err)
			continue
		}
		if !st.tombstone() {
			out = append(out, st)
		}
	}
	return out, nil
}

func tokenNames(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = TokenName(id)
	}
	return out
}
