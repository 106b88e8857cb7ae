package casstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/index"
)

// storedToken is a token document as read or written: the token, its
// store metadata and its backend version. A tombstone has Meta.Deleted
// set and a token with only its ID.
type storedToken struct {
	tok     *tokenstore.Token
	meta    tokenstore.Meta
	version string
	wrote   time.Time // when this Store wrote it (zero: read)
}

func (st *storedToken) tombstone() bool { return st.meta.Deleted != 0 }

func decodeToken(id string, value []byte, version string) (*storedToken, error) {
	t, meta, err := tokenstore.UnmarshalStored(value)
	if err != nil {
		return nil, fmt.Errorf("token %q: %w", id, err)
	}
	if t.ID != id {
		return nil, fmt.Errorf("%w: token document %q holds id %q", tokenstore.ErrMalformed, id, t.ID)
	}
	return &storedToken{tok: t, meta: meta, version: version}, nil
}

// readDoc reads the document of token id: a live token or a tombstone. A
// read that returns an older generation than the Store has seen (a
// replica that lags, see the package documentation on consistency) gives
// the remembered document instead: a Store never goes back in time.
//
// A read that finds nothing where this Store wrote a live token less than
// Options.StaleReadWait ago (a replica that does not show the new token
// yet) is retried with backoff until the token shows or that time has
// passed, unless the index no longer lists the token: then another
// process deleted it (a delete releases the entries after the document is
// gone).
func (s *Store) readDoc(ctx context.Context, id string) (*storedToken, error) {
	waited := false
	for attempt := 0; ; attempt++ {
		obj, err := s.b.Read(ctx, TokenName(id))
		if errors.Is(err, tokenstore.ErrNotFound) {
			if attempt == 0 && s.wroteLately(id) {
				if !s.stillListed(ctx, id) {
					s.recent.forget(id) // deleted since, by another process
					return nil, err
				}
				waited = true // read again at least once
				continue
			}
			if s.wroteLately(id) || waited {
				if werr := backoff(ctx, attempt+1); werr != nil {
					return nil, werr
				}
				waited = s.wroteLately(id) // after the wait, one more read
				continue
			}
			s.recent.forget(id)
			return nil, err
		}
		if err != nil {
			return nil, err
		}
		return s.admit(id, obj.Value, obj.Version)
	}
}

// stillListed reports whether the index, read again, still lists token
// id. It answers true when it cannot tell (the read failed), so that the
// caller waits as it would without asking.
func (s *Store) stillListed(ctx context.Context, id string) bool {
	k := index.Key{Kind: index.KindID, Value: id}
	b, _, _, err := s.bucketFor(ctx, k, nil, false)
	if err != nil {
		return true
	}
	return slices.Contains(b.Lookup(k), id)
}

// wroteLately reports whether this Store wrote live token id less than
// Options.StaleReadWait ago, so that a read that misses it lags.
func (s *Store) wroteLately(id string) bool {
	known := s.recent.get(id)
	return known != nil && !known.tombstone() && time.Since(known.wrote) < s.opts.StaleReadWait
}

// admit decodes a document read from the backend and reconciles it with
// what the Store remembers.
func (s *Store) admit(id string, value []byte, version string) (*storedToken, error) {
	st, err := decodeToken(id, value, version)
	if err != nil {
		s.recent.forget(id)
		return nil, err
	}
	if known := s.recent.get(id); known != nil && known.meta.Gen > st.meta.Gen {
		return known, nil // a stale replica: keep what we know
	}
	s.recent.put(st)
	return st, nil
}

// readToken reads a live token: a tombstone is tokenstore.ErrNotFound.
func (s *Store) readToken(ctx context.Context, id string) (*storedToken, error) {
	st, err := s.readDoc(ctx, id)
	if err != nil {
		return nil, err
	}
	if st.tombstone() {
		return nil, fmt.Errorf("%w: token %q was deleted", tokenstore.ErrNotFound, id)
	}
	return st, nil
}

// writeDoc writes the next generation of a token document over st (or
// creates it when st is nil) and remembers it. next is the token to
// store and meta its metadata; Gen and SavedAt are filled in. A created
// tombstone starts at tombstoneGen.
func (s *Store) writeDoc(ctx context.Context, st *storedToken, next *tokenstore.Token, meta tokenstore.Meta) (*storedToken, error) {
	switch {
	case st != nil:
		meta.Gen = st.meta.Gen + 1
	case meta.Deleted != 0:
		meta.Gen = s.tombstoneGen(1)
	default:
		meta.Gen = 1
	}
	meta.SavedAt = s.now().UnixMilli()
	doc, err := tokenstore.MarshalStored(next, meta)
	if err != nil {
		return nil, err
	}
	var version string
	if st == nil {
		version, err = s.create(ctx, TokenName(next.ID), doc)
	} else {
		version, err = s.update(ctx, TokenName(next.ID), doc, st.version)
	}
	if err != nil {
		s.recent.forget(next.ID)
		return nil, err
	}
	out := &storedToken{tok: next.Clone(), meta: meta, version: version, wrote: time.Now()}
	s.recent.put(out)
	return out, nil
}

// tombstoneGen is the generation of a tombstone created where no document
// is (a fence of a claim whose document is missing, ImportToken's first
// write of an ID), at least least: the clock in nanoseconds, as for a
// created index bucket (incarnationGen). The name may have held a
// document that was deleted, at any generation; a Store that remembers
// that document must take the tombstone for newer, not for a stale
// replica, or it would go on returning the deleted token (and Check would
// count it). Counted one write at a time, no earlier document of the name
// comes near the clock of a later creation.
func (s *Store) tombstoneGen(least uint64) uint64 {
	return max(least, s.incarnationGen())
}
