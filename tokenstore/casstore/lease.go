package casstore

import (
	"context"
	"errors"
	"time"

	"github.com/cloudtokens/cloudtokens/observe"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// AcquireLease implements tokenstore.Leaser with a compare-and-swap on the
// token's own document. A token this Store remembers is leased with one
// write; otherwise, or when that write finds the document changed, it
// reads the token first.
func (s *Store) AcquireLease(ctx context.Context, id, holder string, ttl time.Duration) (_ bool, err error) {
	ctx, span := s.start(ctx, observe.AcquireLease, id)
	defer span.End(&err)
	if err := tokenstore.ValidateID(id); err != nil {
		return false, err
	}
	if known := s.recent.get(id); known != nil && !known.tombstone() {
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
	now := s.now()
	if !st.meta.Lease.Expired(now) && st.meta.Lease.Holder != holder {
		return false, nil
	}
	lease := &tokenstore.Lease{Holder: holder, Until: now.Add(ttl).UnixMilli()}
	if _, err := s.writeDoc(ctx, st, st.tok, tokenstore.Meta{Lease: lease}); err != nil {
		return false, err
	}
	return true, nil
}

// ReleaseLease implements tokenstore.Leaser. Saving the token also
// releases it.
func (s *Store) ReleaseLease(ctx context.Context, id, holder string) (err error) {
	ctx, span := s.start(ctx, observe.ReleaseLease, id)
	defer span.End(&err)
	if err := tokenstore.ValidateID(id); err != nil {
		return err
	}
	st, err := s.readToken(ctx, id)
	if err != nil {
		return err
	}
	if st.meta.Lease == nil || st.meta.Lease.Holder != holder {
		return nil
	}
	_, err = s.writeDoc(ctx, st, st.tok, tokenstore.Meta{})
	if errors.Is(err, ErrVersionMismatch) {
		return nil // rewritten since: the lease is gone with it
	}
	return err
}
