package gcpsmtest

import (
	"fmt"
	"math/rand/v2"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
)

// WithEventualConsistency makes the emulator as weakly consistent as the
// Secret Manager documentation allows. The "Resource consistency" page
// (https://cloud.google.com/secret-manager/docs/reference/consistency)
// says: "adding a secret version and then immediately accessing that
// secret version by version number is a strongly consistent operation"
// (with the note "This doesn't apply when you access a secret version
// using aliases or latest"), and "Other operations within Secret Manager
// are eventually consistent. Eventually consistent operations typically
// converge within minutes, but may take a few hours."
//
// The lag model: each eventually consistent read draws d uniformly from
// [0, lag] (from the seeded source of [WithConsistencySeed]) and answers
// from the state as of now - d on the emulator's clock ([WithClock]):
//
//   - AccessSecretVersion and GetSecretVersion of versions/latest or of a
//     user-defined alias resolve the alias (or "latest") in that snapshot;
//     the version it names is then read in its real, current state, so a
//     version destroyed since answers FAILED_PRECONDITION "Secret Version
//     [...] is in DESTROYED state." (the failure that a stale alias causes
//     on the real service), and a secret created since answers NOT_FOUND;
//   - GetSecret answers the snapshot's metadata (etag and aliases
//     included), NOT_FOUND for a secret created since, and the old
//     metadata of a secret deleted since;
//   - ListSecrets and ListSecretVersions list the snapshot (secrets and
//     versions as they were, states included).
//
// Fresh, as documented or because they are conditional on the real state:
// access and GetSecretVersion by version number, and every write
// (CreateSecret checks real existence, UpdateSecret, DeleteSecret and the
// version state changes check real etags, AddSecretVersion appends to the
// real secret, and alias validation sees the real versions).
//
// Why a random d rather than exactly lag: independent draws make reads
// non-monotonic (a fresh answer may be followed by an older one, which
// the documentation does not exclude, and which breaks code that trusts
// one fresh read), while any read may still be as old as lag. With the
// default seed and a [ManualClock] a single-goroutine test is
// reproducible; concurrent callers draw in scheduling order.
//
// lag must be positive. A lag of several seconds, as in the consistency
// issue's harness, is a compromise: the documented worst case (hours)
// cannot be tested.
func WithEventualConsistency(lag time.Duration) Option {
	return func(c *config) error {
		if lag <= 0 {
			return fmt.Errorf("%w: eventual consistency lag %v: must be positive", ErrInvalidConfig, lag)
		}
		c.lag = lag
		return nil
	}
}

// WithConsistencySeed seeds the source of the staleness draws of
// [WithEventualConsistency] (default 1).
func WithConsistencySeed(seed uint64) Option {
	return func(c *config) error {
		c.seed = seed
		return nil
	}
}

// secretSnap is the state of a secret from time at on, as lagging readers
// see it. pb is nil from the secret's deletion on.
type secretSnap struct {
	at       time.Time
	pb       *secretmanagerpb.Secret
	versions int64 // versions 1..versions existed
}

// versionSnap is the metadata of a version from time at on.
type versionSnap struct {
	at time.Time
	pb *secretmanagerpb.SecretVersion
}

// staleTime returns the time an eventually consistent read sees: now - d,
// d uniform in [0, lag]. Without a lag it is the zero time and the read
// is fresh.
func (s *service) staleTime() (time.Time, bool) {
	if s.lag <= 0 {
		return time.Time{}, false
	}
	s.rngMu.Lock()
	d := time.Duration(s.rng.Int64N(int64(s.lag) + 1))
	s.rngMu.Unlock()
	return s.now().Add(-d), true
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x6763_7073_6d74_6573)) }

// recordSecret appends e's current state (or its deletion) to its history
// and drops what no lagging reader can see any more. Must be called with
// mu held for writing, after every change of e.pb or e.versions.
func (s *service) recordSecret(e *secretEntry, deleted bool) {
	if s.lag <= 0 {
		return
	}
	now := s.now()
	snap := secretSnap{at: now, versions: int64(len(e.versions))}
	if !deleted {
		snap.pb = cloneSecret(e.pb)
	}
	e.history = append(prune(e.history, now.Add(-s.lag), func(x secretSnap) time.Time { return x.at }), snap)
}

// recordVersion is recordSecret for a version's metadata.
func (s *service) recordVersion(v *versionEntry) {
	if s.lag <= 0 {
		return
	}
	now := s.now()
	v.history = append(prune(v.history, now.Add(-s.lag), func(x versionSnap) time.Time { return x.at }),
		versionSnap{at: now, pb: cloneVersion(v.pb)})
}

// prune drops the leading entries of a history that every reader sees
// past: it keeps the last entry at or before horizon, and all later ones.
func prune[T any](h []T, horizon time.Time, at func(T) time.Time) []T {
	i := 0
	for i+1 < len(h) && !at(h[i+1]).After(horizon) {
		i++
	}
	return h[i:]
}

// bury keeps a deleted secret for lagging readers and forgets the buried
// secrets that no reader can see any more. Must be called with mu held
// for writing.
func (s *service) bury(name string, e *secretEntry) {
	if s.lag <= 0 {
		return
	}
	s.recordSecret(e, true)
	if s.graveyard == nil {
		s.graveyard = map[string][]*secretEntry{}
	}
	s.graveyard[name] = append(s.graveyard[name], e)
	horizon := s.now().Add(-s.lag)
	for n, es := range s.graveyard {
		kept := es[:0]
		for _, g := range es {
			if g.history[len(g.history)-1].at.After(horizon) {
				kept = append(kept, g)
			}
		}
		if len(kept) == 0 {
			delete(s.graveyard, n)
		} else {
			s.graveyard[n] = kept
		}
	}
}

// snapAt returns the last entry of h at or before t.
func snapAt[T any](h []T, t time.Time, at func(T) time.Time) (T, bool) {
	for i := len(h) - 1; i >= 0; i-- {
		if !at(h[i]).After(t) {
			return h[i], true
		}
	}
	var zero T
	return zero, false
}

// secretAt returns the secret called name as it was at t, and the entry
// that holds its versions. Must be called with mu held.
func (s *service) secretAt(name string, t time.Time) (*secretEntry, secretSnap, bool) {
	// The live entry first, then the buried ones from the newest: the
	// first that existed at t (or had been deleted by then) answers.
	entries := s.graveyard[name]
	if e, ok := s.secrets[name]; ok {
		entries = append(entries[:len(entries):len(entries)], e)
	}
	for i := len(entries) - 1; i >= 0; i-- {
		snap, ok := snapAt(entries[i].history, t, func(x secretSnap) time.Time { return x.at })
		if !ok {
			continue // created after t
		}
		if snap.pb == nil {
			break // deleted by t
		}
		return entries[i], snap, true
	}
	return nil, secretSnap{}, false
}

// versionAt returns the metadata of v as it was at t.
func versionAt(v *versionEntry, t time.Time) *secretmanagerpb.SecretVersion {
	if snap, ok := snapAt(v.history, t, func(x versionSnap) time.Time { return x.at }); ok {
		return snap.pb
	}
	return v.pb
}

// allSecretsAt returns every secret of project that existed at t, as it
// was then. Must be called with mu held.
func (s *service) allSecretsAt(project string, t time.Time) []secretView {
	var out []secretView
	seen := map[*secretEntry]bool{}
	add := func(name string) {
		if e, snap, ok := s.secretAt(name, t); ok && !seen[e] {
			seen[e] = true
			out = append(out, secretView{seq: e.seq, pb: snap.pb})
		}
	}
	for name := range s.secrets {
		if projectOf(name) == project {
			add(name)
		}
	}
	for name := range s.graveyard {
		if projectOf(name) == project {
			add(name)
		}
	}
	return out
}
