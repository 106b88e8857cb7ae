package tokensource

import (
	"context"
	"time"

	"github.com/cloudtokens/cloudtokens/observe"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// The owner's refresh: see "The owner's refresh" in the package
// documentation for the protocol and why it cannot refresh one expiry
// twice.

// MaxClockSkew is the largest difference between the clocks of two
// processes sharing a store that the owner's refresh tolerates: an owner
// stops refreshing without a lease write this long (plus the lease TTL)
// before its lease lapses. Clocks kept by NTP (EC2, Lambda, Cloud Run,
// GKE) differ by milliseconds.
const MaxClockSkew = 10 * time.Second

// minOwnerWindow is the least length of the owner's early window: an
// owner asked for the token at least this often keeps owning it.
const minOwnerWindow = time.Minute

// ownership is the lease a Source gave itself with its last save
// (tokenstore.LeaseSaver), and the window in which it refreshes early.
type ownership struct {
	saved *tokenstore.Token // what it saved, the record's ID included
	until time.Time         // the lease it wrote: expiry - margin
	from  time.Time         // the early window starts (expiry - lead)
	stop  time.Time         // the owner's refresh ends: until - lease TTL - MaxClockSkew
}

// ownerPlan returns the lease that a save of a token expiring at expiry
// gives this Source, and its early window, or false when the token lives
// too short for a window (the save then writes no lease).
//
// With margin m (after the clamp), lease TTL L and skew S: the lease runs
// until expiry-m, when the other processes refresh anyway; the owner
// refreshes without a lease write from expiry-lead to until-L-S, where
// lead = m+L+S+max(m, 1 min), at most half the lifetime. Defaults: from
// 105 s to 45 s before expiry; tokens of 90 s or less get no window.
func (s *Source) ownerPlan(id string, expiry time.Time) (ownership, bool) {
	if s.saver == nil || expiry.IsZero() {
		return ownership{}, false
	}
	m := s.margin(id)
	p := ownership{until: expiry.Add(-m)}
	p.stop = p.until.Add(-s.o.leaseTTL - MaxClockSkew)
	lead := m + s.o.leaseTTL + MaxClockSkew + max(m, minOwnerWindow)
	if life := s.knownLifetime(); life > 0 && lead > life/2 {
		lead = life / 2
	}
	p.from = expiry.Add(-lead)
	return p, p.from.Before(p.stop) && s.o.now().Before(p.stop)
}

// knownLifetime is the lifetime margin uses: this Source's last answer's,
// else the process's for the token URL and client; 0 if none.
func (s *Source) knownLifetime() time.Duration {
	if life := time.Duration(s.lifetime.Load()); life > 0 {
		return life
	}
	return s.endpoint.knownLifetime()
}

// saveToken saves nt, giving this Source the lease on the record until
// expiry-margin when the store can write it with the token
// (tokenstore.LeaseSaver), and records the ownership.
func (s *Source) saveToken(ctx context.Context, nt *tokenstore.Token) error {
	p, leased := s.ownerPlan(nt.ID, nt.Expiry)
	var err error
	if leased {
		err = s.saver.SaveTokenLeased(ctx, nt, s.holder, p.until)
	} else {
		err = s.store.SaveToken(ctx, nt)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.own = nil
	if leased && err == nil {
		p.saved = nt.Clone()
		s.own = &p
	}
	return err
}

// refreshDue reports whether a call must go past the usable token t that
// the Source holds: a new token waits to be saved, or the Source owns
// t's lease and its early window has come.
func (s *Source) refreshDue(t *tokenstore.Token) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unsaved != nil {
		return true
	}
	o := s.own
	if o == nil || t.AccessToken != o.saved.AccessToken {
		return false
	}
	now := s.o.now()
	if s.fail != nil && now.Before(s.fail.until) {
		return false // an early refresh failed: serve t until the backoff ends
	}
	return !now.Before(o.from) && now.Before(o.stop)
}

// owned returns this Source's ownership of stored, the record just read,
// if it may still refresh it without taking the lease: its last save gave
// it the lease, the record is exactly what that save wrote (any other
// save, a new login say, changed it and ended the lease), and the lease
// has more than the lease TTL and MaxClockSkew left. Otherwise it
// forgets the ownership and returns nil.
func (s *Source) owned(stored *tokenstore.Token) *ownership {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.own
	if o == nil {
		return nil
	}
	if stored == nil || !stored.Equal(o.saved) || !s.o.now().Before(o.stop) {
		s.own = nil
		return nil
	}
	return o
}

// disown forgets the ownership: the Source is about to take the lease
// the usual way, which rewrites it.
func (s *Source) disown() {
	s.mu.Lock()
	s.own = nil
	s.mu.Unlock()
}

// refreshOwned refreshes t as the owner of its lease: no lease write, and
// the save gives the lease to this Source again. If t is still usable
// (the early window), a failed refresh serves t and backs off.
func (s *Source) refreshOwned(ctx context.Context, t *tokenstore.Token, rejected string) (_ *tokenstore.Token, err error) {
	ctx, span := s.start(ctx, observe.Op{Kind: observe.Refresh, TokenID: t.ID})
	defer span.End(&err)
	early := s.usable(t, rejected)
	if err := s.backingOff(ctx, t); err != nil {
		if early {
			return t, nil
		}
		return nil, err
	}
	nt, err := s.refresh(ctx, t)
	if err != nil {
		if t2, ok := s.rotatedElsewhere(ctx, t, rejected, err, 0); ok {
			return t2, nil
		}
		err = s.failed(ctx, t, err)
		if early && ctx.Err() == nil {
			s.o.logger.WarnContext(ctx, "tokensource: the early refresh failed; serving the valid token", s.logArgs(t, "error", err)...)
			return t, nil
		}
		return nil, err
	}
	if err := s.save(ctx, nt); err != nil {
		return nil, err
	}
	return nt, nil
}
