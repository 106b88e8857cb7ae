package tokensource_test

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// countingStore counts the Store (and Leaser) calls that reach a store.
type countingStore struct {
	tokenstore.Store
	mu    sync.Mutex
	calls map[string]int
}

// countingLeaser is a countingStore over a store that is a Leaser.
type countingLeaser struct {
	*countingStore
	l tokenstore.Leaser
}

// countingSaver is a countingLeaser over a store that is a
// tokenstore.LeaseSaver too.
type countingSaver struct {
	*countingLeaser
	s tokenstore.LeaseSaver
}

// counting wraps store; the result is a Leaser (and a LeaseSaver) if
// store is one. calls reads and zeroes the counts.
func counting(store tokenstore.Store) (tokenstore.Store, func() map[string]int) {
	c := &countingStore{Store: store, calls: map[string]int{}}
	take := func() map[string]int {
		c.mu.Lock()
		defer c.mu.Unlock()
		out := c.calls
		c.calls = map[string]int{}
		return out
	}
	l, ok := store.(tokenstore.Leaser)
	if !ok {
		return c, take
	}
	cl := &countingLeaser{countingStore: c, l: l}
	if s, ok := store.(tokenstore.LeaseSaver); ok {
		return &countingSaver{countingLeaser: cl, s: s}, take
	}
	return cl, take
}

func (c *countingStore) count(op string) {
	c.mu.Lock()
	c.calls[op]++
	c.mu.Unlock()
}

func (c *countingStore) FindToken(ctx context.Context, q *tokenstore.Token) (*tokenstore.Token, error) {
	c.count("FindToken")
	return c.Store.FindToken(ctx, q)
}

func (c *countingStore) FindTokenByID(ctx context.Context, id string) (*tokenstore.Token, error) {
	c.count("FindTokenByID")
	return c.Store.FindTokenByID(ctx, id)
}

func (c *countingStore) SaveToken(ctx context.Context, t *tokenstore.Token) error {
	c.count("SaveToken")
	return c.Store.SaveToken(ctx, t)
}

func (c *countingStore) DeleteToken(ctx context.Context, id string) error {
	c.count("DeleteToken")
	return c.Store.DeleteToken(ctx, id)
}

func (c *countingStore) Tokens(ctx context.Context) ([]*tokenstore.Token, error) {
	c.count("Tokens")
	return c.Store.Tokens(ctx)
}

func (c *countingLeaser) AcquireLease(ctx context.Context, id, holder string, ttl time.Duration) (bool, error) {
	c.count("AcquireLease")
	return c.l.AcquireLease(ctx, id, holder, ttl)
}

func (c *countingSaver) SaveTokenLeased(ctx context.Context, t *tokenstore.Token, holder string, until time.Time) error {
	c.count("SaveTokenLeased")
	return c.s.SaveTokenLeased(ctx, t, holder, until)
}

func (c *countingLeaser) ReleaseLease(ctx context.Context, id, holder string) error {
	c.count("ReleaseLease")
	return c.l.ReleaseLease(ctx, id, holder)
}

// staleStore serves reads from the version of a record before its last
// save while stale reads are switched on, as an eventually consistent
// store may; writes and leases go to the real store (conditional writes
// are checked against the authoritative state).
type staleStore struct {
	*tokenstore.MemoryStore
	mu       sync.Mutex
	previous map[string]*tokenstore.Token // ID -> the record before its last save
	stale    int                          // reads still to answer stale; <0: all
	served   int                          // stale answers given
}

// open is the staleStore's storeFunc: it opens s on a MemoryStore whose
// leases lapse by now.
func (s *staleStore) open(now func() time.Time) tokenstore.Store {
	s.MemoryStore = tokenstore.NewMemoryStoreWithClock(now)
	s.previous = map[string]*tokenstore.Token{}
	return s
}

// StaleReads makes the next n reads of a saved-over record stale (n < 0:
// every read).
func (s *staleStore) StaleReads(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stale = n
}

func (s *staleStore) Served() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.served
}

func (s *staleStore) SaveToken(ctx context.Context, t *tokenstore.Token) error {
	return s.save(ctx, t, func() error { return s.MemoryStore.SaveToken(ctx, t) })
}

func (s *staleStore) SaveTokenLeased(ctx context.Context, t *tokenstore.Token, holder string, until time.Time) error {
	return s.save(ctx, t, func() error { return s.MemoryStore.SaveTokenLeased(ctx, t, holder, until) })
}

// save runs write, the save of t, and remembers the record before it.
func (s *staleStore) save(ctx context.Context, t *tokenstore.Token, write func() error) error {
	var before *tokenstore.Token
	if t.ID != "" {
		before, _ = s.MemoryStore.FindTokenByID(ctx, t.ID)
	}
	if err := write(); err != nil {
		return err
	}
	if before != nil {
		s.mu.Lock()
		s.previous[t.ID] = before
		s.mu.Unlock()
	}
	return nil
}

func (s *staleStore) maybeStale(t *tokenstore.Token, err error) (*tokenstore.Token, error) {
	if err != nil {
		return t, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.previous[t.ID]
	if prev == nil || s.stale == 0 {
		return t, nil
	}
	if s.stale > 0 {
		s.stale--
	}
	s.served++
	return prev.Clone(), nil
}

func (s *staleStore) FindTokenByID(ctx context.Context, id string) (*tokenstore.Token, error) {
	return s.maybeStale(s.MemoryStore.FindTokenByID(ctx, id))
}

func (s *staleStore) FindToken(ctx context.Context, q *tokenstore.Token) (*tokenstore.Token, error) {
	return s.maybeStale(s.MemoryStore.FindToken(ctx, q))
}

// failingStore fails SaveToken while failing is set.
type failingStore struct {
	*tokenstore.MemoryStore
	mu      sync.Mutex
	failing bool
}

var errSaveFailed = errors.New("test: the store is down")

func (f *failingStore) Fail(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failing = on
}

func (f *failingStore) SaveToken(ctx context.Context, t *tokenstore.Token) error {
	if f.down() {
		return errSaveFailed
	}
	return f.MemoryStore.SaveToken(ctx, t)
}

func (f *failingStore) SaveTokenLeased(ctx context.Context, t *tokenstore.Token, holder string, until time.Time) error {
	if f.down() {
		return errSaveFailed
	}
	return f.MemoryStore.SaveTokenLeased(ctx, t, holder, until)
}

func (f *failingStore) down() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failing
}
