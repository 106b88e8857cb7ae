package casstoretest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// StaleBackend serves reads the way an eventually consistent service may:
// for Window after a document is written, a read of it returns what it
// was before that write (the previous version, or not found for a
// document created within the window), with probability P. Lists lag in
// the same way. Writes go to the wrapped backend, which checks them
// against its current state: a compare-and-swap based on a stale read
// fails, exactly as the clouds document for conditional writes.
//
// This is GCP Secret Manager's documented behaviour for alias and
// "latest" reads (only access by version number is strongly consistent),
// the propagation delay AWS Secrets Manager documents, and what a Vault
// performance standby serves.
type StaleBackend struct {
	casstore.Backend
	// Window is how long after a write reads may return the state before
	// it.
	Window time.Duration
	// P is the probability that a read within the window is stale
	// (default 1: always).
	P float64
	// Clock tells the time (default time.Now).
	Clock func() time.Time

	mu    sync.Mutex
	rng   *rand.Rand
	hist  map[string][]state // per document, the states it had, oldest first
	stale int
}

// state is one state of a document: its value and version, or absent.
type state struct {
	at      time.Time
	absent  bool
	value   []byte
	version string
}

// NewStaleBackend returns b serving stale reads for window after every
// write, always, with a deterministic source seeded with seed for P < 1.
func NewStaleBackend(b casstore.Backend, window time.Duration, seed uint64) *StaleBackend {
	return &StaleBackend{Backend: b, Window: window, P: 1, rng: rand.New(rand.NewPCG(seed, seed+1)), hist: map[string][]state{}}
}

func (s *StaleBackend) now() time.Time {
	if s.Clock != nil {
		return s.Clock()
	}
	return time.Now()
}

// StaleReads returns how many reads were answered from an older state.
func (s *StaleBackend) StaleReads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stale
}

// record notes the state a write left. before is the state the document
// had before the write, needed the first time the document is seen.
func (s *StaleBackend) record(name string, st state, before func() state) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hist[name]
	if len(h) == 0 {
		b := before()
		b.at = time.Time{}
		h = append(h, b)
	}
	st.at = s.now()
	h = append(h, st)
	// Keep what a read may still need: the last state older than the
	// window and everything after it.
	cut := s.now().Add(-s.Window)
	i := len(h) - 1
	for i > 0 && h[i].at.After(cut) {
		i--
	}
	s.hist[name] = slices.Clone(h[i:])
}

// view returns the state a read sees now, and false when the read is
// fresh (the caller then reads the wrapped backend).
func (s *StaleBackend) view(name string) (state, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hist[name]
	if len(h) < 2 {
		return state{}, false
	}
	last := h[len(h)-1]
	if s.now().Sub(last.at) >= s.Window {
		return state{}, false
	}
	if s.P < 1 && s.rng.Float64() >= s.P {
		return state{}, false
	}
	s.stale++
	return h[len(h)-2], true
}

func notFound(name string) error {
	return fmt.Errorf("%w: %s (stale read)", tokenstore.ErrNotFound, name)
}

// Read implements casstore.Backend.
func (s *StaleBackend) Read(ctx context.Context, name string) (casstore.Object, error) {
	if st, ok := s.view(name); ok {
		if st.absent {
			return casstore.Object{}, notFound(name)
		}
		return casstore.Object{Value: slices.Clone(st.value), Version: st.version}, nil
	}
	return s.Backend.Read(ctx, name)
}

// ReadMany implements casstore.Backend.
func (s *StaleBackend) ReadMany(ctx context.Context, names []string) ([]casstore.Result, error) {
	res, err := s.Backend.ReadMany(ctx, names)
	if err != nil {
		return nil, err
	}
	for i, n := range names {
		if st, ok := s.view(n); ok {
			res[i] = casstore.Result{Name: n, Value: slices.Clone(st.value), Version: st.version}
			if st.absent {
				res[i] = casstore.Result{Name: n, Err: notFound(n)}
			}
		}
	}
	return res, nil
}

// before reads the current state of name from the wrapped backend.
func (s *StaleBackend) before(ctx context.Context, name string) func() state {
	obj, err := s.Backend.Read(context.WithoutCancel(ctx), name)
	return func() state {
		if err != nil {
			return state{absent: true}
		}
		return state{value: obj.Value, version: obj.Version}
	}
}

// Create implements casstore.Backend.
func (s *StaleBackend) Create(ctx context.Context, name string, value []byte) (string, error) {
	v, err := s.Backend.Create(ctx, name, value)
	if err == nil {
		s.record(name, state{value: slices.Clone(value), version: v}, func() state { return state{absent: true} })
	}
	return v, err
}

// Update implements casstore.Backend.
func (s *StaleBackend) Update(ctx context.Context, name string, value []byte, version string) (string, error) {
	prev := s.before(ctx, name)
	v, err := s.Backend.Update(ctx, name, value, version)
	if err == nil {
		s.record(name, state{value: slices.Clone(value), version: v}, prev)
	}
	return v, err
}

// Delete implements casstore.Backend.
func (s *StaleBackend) Delete(ctx context.Context, name string) error {
	prev := s.before(ctx, name)
	err := s.Backend.Delete(ctx, name)
	if err == nil {
		s.record(name, state{absent: true}, prev)
	}
	return err
}

// List implements casstore.Lister when the wrapped backend does: a
// document created within the window may be missing, one deleted within
// it may still be listed.
func (s *StaleBackend) List(ctx context.Context) ([]string, error) {
	l, ok := s.Backend.(casstore.Lister)
	if !ok {
		return nil, errors.New("casstoretest: the wrapped backend cannot list")
	}
	names, err := l.List(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	var recent []string
	for n := range s.hist {
		recent = append(recent, n)
	}
	s.mu.Unlock()
	for _, n := range recent {
		st, ok := s.view(n)
		if !ok {
			continue
		}
		has := slices.Contains(names, n)
		switch {
		case st.absent && has:
			names = slices.DeleteFunc(names, func(x string) bool { return x == n })
		case !st.absent && !has:
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, nil
}

// Quotas implements casstore.QuotaReporter when the wrapped backend does.
func (s *StaleBackend) Quotas() casstore.Quotas {
	if q, ok := s.Backend.(casstore.QuotaReporter); ok {
		return q.Quotas()
	}
	return casstore.Quotas{}
}

// BatchSize implements casstore.BatchReader: the wrapped backend's, or 1.
func (s *StaleBackend) BatchSize() int {
	if br, ok := s.Backend.(casstore.BatchReader); ok {
		return br.BatchSize()
	}
	return 1
}
