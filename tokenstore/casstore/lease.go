package casstore

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/cloudtokens/cloudtokens/observe"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// AcquireLease implements tokenstore.Leaser with a compare-and-swap on the
// token's own document. A token this Store remembers is leased with one
// write; otherwise, or when that write finds the document changed, it
// reads the token first.
//
// A lease held in the document (written by AcquireLease or by
// [Store.SaveTokenLeased]) is honoured first. On a backend that
// implements [VersionLeaser] (GCP Secret Manager) the lease is then taken
// on the document's current version, without writing a new one:
//
//   - a version lease that another call took runs for ttl from when it
//     was taken; this Store remembers it, so waiting callers ask the
//     backend once per version;
//   - once it has run out (its holder died or stalled), the lease is
//     written into the document, a compare-and-swap that ends the version
//     lease for everyone: the version changes;
//   - a version that cannot be leased so (the document's first) is leased
//     by a write, as on other backends.
//
// The holder's save ends a version lease (the version changes), and so
// does ReleaseLease, with a write of the unchanged token.
func (s *Store) AcquireLease(ctx context.Context, id, holder string, ttl time.Duration) (_ bool, err error) {
	ctx, span := s.start(ctx, observe.AcquireLease, id)
	defer span.End(&err)
	if err := tokenstore.ValidateID(id); err != nil {
		return false, err
	}
	if known := s.recent.get(id); known != nil && !known.tombstone() {
		won, err := s.lease(ctx, known, holder, ttl)
		if won || (err != nil && !errors.Is(err, ErrVersionMismatch) && !errors.Is(err, tokenstore.ErrNotFound)) {
			return won, err
		}
		s.recent.forget(id) // changed since, or leased by another: look again
	}
	st, err := s.readToken(ctx, id)
	if err != nil {
		return false, err
	}
	won, err := s.lease(ctx, st, holder, ttl)
	if errors.Is(err, ErrVersionMismatch) {
		return false, nil // someone else wrote first
	}
	return won, err
}

// lease takes holder's lease on st unless another holder's lease on it
// is still running.
func (s *Store) lease(ctx context.Context, st *storedToken, holder string, ttl time.Duration) (bool, error) {
	now := s.now()
	if !st.meta.Lease.Expired(now) && st.meta.Lease.Holder != holder {
		return false, nil
	}
	if s.versionLeaser == nil {
		return s.writeLease(ctx, st, holder, ttl)
	}
	id := st.tok.ID
	if held, ok := s.versionLeases.get(id, st.version); ok {
		switch {
		case now.Before(held.until) && held.holder == holder:
			return true, nil
		case now.Before(held.until):
			return false, nil
		case held.holder == "":
			return s.writeLease(ctx, st, holder, ttl) // another's, run out: take it over
		}
		// This holder's own, run out: lease again below.
	}
	taken, since, err := s.versionLeaser.LeaseVersion(ctx, TokenName(id), st.version)
	switch {
	case errors.Is(err, ErrNoVersionLease):
		return s.writeLease(ctx, st, holder, ttl)
	case err != nil:
		return false, err
	case taken:
		s.versionLeases.put(id, versionLease{version: st.version, holder: holder, until: now.Add(ttl)})
		return true, nil
	}
	if since.IsZero() || since.After(now) {
		since = now
	}
	if until := since.Add(ttl); now.Before(until) {
		s.versionLeases.put(id, versionLease{version: st.version, until: until})
		return false, nil
	}
	return s.writeLease(ctx, st, holder, ttl)
}

// writeLease writes holder's lease into st's document.
func (s *Store) writeLease(ctx context.Context, st *storedToken, holder string, ttl time.Duration) (bool, error) {
	lease := &tokenstore.Lease{Holder: holder, Until: s.now().Add(ttl).UnixMilli()}
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
	held, ok := s.versionLeases.get(id, st.version)
	mine := ok && held.holder == holder && s.now().Before(held.until)
	if !mine && (st.meta.Lease == nil || st.meta.Lease.Holder != holder) {
		return nil
	}
	_, err = s.writeDoc(ctx, st, st.tok, tokenstore.Meta{})
	s.versionLeases.drop(id)
	if errors.Is(err, ErrVersionMismatch) {
		return nil // rewritten since: the lease is gone with it
	}
	return err
}

// versionLease is a lease on one version of a token's document
// ([VersionLeaser]) that this Store took (holder set) or found taken by
// another (holder empty), until until by the Store's clock.
type versionLease struct {
	version string
	holder  string
	until   time.Time
}

// versionLeases remembers the version leases of a Store, at most
// maxVersionLeases of them.
type versionLeases struct {
	mu sync.Mutex
	m  map[string]versionLease // by token ID
}

const maxVersionLeases = 4096

// get returns the lease on version of token id, if one is remembered.
func (l *versionLeases) get(id, version string) (versionLease, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	v, ok := l.m[id]
	if !ok || v.version != version {
		return versionLease{}, false
	}
	return v, true
}

func (l *versionLeases) put(id string, v versionLease) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]versionLease{}
	}
	if len(l.m) >= maxVersionLeases {
		// Leases run for a lease TTL: what is left is mostly over.
		clear(l.m)
	}
	l.m[id] = v
}

func (l *versionLeases) drop(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.m, id)
}
