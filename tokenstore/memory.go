package tokenstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// MemoryStore is the in-memory reference Store: a map behind one mutex.
// It implements the same rules as every other store, and Leaser. It is
// safe for concurrent use and lives only as long as the process.
type MemoryStore struct {
	mu     sync.Mutex
	tokens map[string]*Token
	order  []string // insertion order, for a stable Tokens result
	leases map[string]Lease
	now    func() time.Time // times leases
}

var (
	_ Store         = (*MemoryStore)(nil)
	_ Leaser        = (*MemoryStore)(nil)
	_ Importer      = (*MemoryStore)(nil)
	_ BatchImporter = (*MemoryStore)(nil)
	_ LeaseSaver    = (*MemoryStore)(nil)
)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return NewMemoryStoreWithClock(time.Now)
}

// NewMemoryStoreWithClock returns an empty MemoryStore whose leases lapse
// by now (nil: [time.Now]). A test that runs several token sources on one
// store with a clock of its own (tokensource.WithClock) gives the store
// that clock too: the leases a source writes with its token
// ([LeaseSaver]) lapse on the source's clock.
func NewMemoryStoreWithClock(now func() time.Time) *MemoryStore {
	if now == nil {
		now = time.Now
	}
	return &MemoryStore{tokens: map[string]*Token{}, leases: map[string]Lease{}, now: now}
}

// FindToken implements Store.
func (m *MemoryStore) FindToken(ctx context.Context, query *Token) (*Token, error) {
	if _, err := QueryRuleOf(query); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return Select(query, m.listLocked())
}

// FindTokenByID implements Store.
func (m *MemoryStore) FindTokenByID(ctx context.Context, id string) (*Token, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tokens[id]
	if !ok {
		return nil, fmt.Errorf("%w: id %q", ErrNotFound, id)
	}
	return t.Clone(), nil
}

// SaveToken implements Store.
func (m *MemoryStore) SaveToken(ctx context.Context, t *Token) error {
	if err := ValidateForSave(t); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var target *Token
	if t.ID != "" {
		target = m.tokens[t.ID]
	}
	if target == nil {
		if _, err := QueryRuleOf(t); err == nil {
			found, err := Select(t, m.listLocked())
			switch {
			case err == nil:
				target = m.tokens[found.ID]
			case !errors.Is(err, ErrNotFound):
				return err
			}
		}
	}
	var next *Token
	if target != nil {
		next = ApplyUpdate(target, t)
	} else {
		next = t.Clone()
		next.ID = NewID()
	}
	if _, err := MarshalDocument(next); err != nil {
		return err
	}
	if other := m.clashLocked(next); other != "" {
		return fmt.Errorf("%w: the token's keys already belong to token %q", ErrConflict, other)
	}
	if target == nil {
		m.order = append(m.order, next.ID)
	}
	m.tokens[next.ID] = next
	delete(m.leases, next.ID)
	t.ID = next.ID
	return nil
}

// ImportToken implements Importer: t is stored exactly, under t.ID.
func (m *MemoryStore) ImportToken(ctx context.Context, t *Token) error {
	if t == nil {
		return fmt.Errorf("%w: nil token", ErrInvalidToken)
	}
	if err := ValidateID(t.ID); err != nil {
		return err
	}
	if err := ValidateForSave(t); err != nil {
		return err
	}
	if _, err := MarshalDocument(t); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if other := m.clashLocked(t); other != "" {
		return fmt.Errorf("%w: the token's keys already belong to token %q", ErrConflict, other)
	}
	if _, ok := m.tokens[t.ID]; !ok {
		m.order = append(m.order, t.ID)
	}
	m.tokens[t.ID] = t.Clone()
	delete(m.leases, t.ID)
	return nil
}

// SaveTokenLeased implements LeaseSaver.
func (m *MemoryStore) SaveTokenLeased(ctx context.Context, t *Token, holder string, until time.Time) error {
	if holder == "" {
		return fmt.Errorf("%w: lease without a holder", ErrInvalidToken)
	}
	if err := m.SaveToken(ctx, t); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.leases[t.ID] = Lease{Holder: holder, Until: until.UnixMilli()}
	return nil
}

// ImportTokens implements BatchImporter: ImportToken for each token.
func (m *MemoryStore) ImportTokens(ctx context.Context, toks []*Token) []error {
	errs := make([]error, len(toks))
	for i, t := range toks {
		errs[i] = m.ImportToken(ctx, t)
	}
	return errs
}

// clashLocked returns the ID of another token that holds a key of t: the
// same user name with an indistinguishable client, or the same grant or
// refresh token and client.
func (m *MemoryStore) clashLocked(t *Token) string {
	for _, id := range m.order {
		o := m.tokens[id]
		if o.ID == t.ID {
			continue
		}
		sameClient := o.ClientID == t.ClientID
		switch {
		case t.UserName != "" && o.UserName == t.UserName && (sameClient || o.ClientID == "" || t.ClientID == ""):
			return o.ID
		case t.GrantToken != "" && sameClient && o.GrantToken == t.GrantToken:
			return o.ID
		case t.RefreshToken != "" && sameClient && o.RefreshToken == t.RefreshToken:
			return o.ID
		}
	}
	return ""
}

// DeleteToken implements Store.
func (m *MemoryStore) DeleteToken(ctx context.Context, id string) error {
	if err := ValidateID(id); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.tokens[id]; !ok {
		return fmt.Errorf("%w: id %q", ErrNotFound, id)
	}
	delete(m.tokens, id)
	delete(m.leases, id)
	m.order = slices.DeleteFunc(m.order, func(s string) bool { return s == id })
	return nil
}

// Tokens implements Store.
func (m *MemoryStore) Tokens(ctx context.Context) ([]*Token, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.listLocked(), nil
}

// DeleteTokens implements Store.
func (m *MemoryStore) DeleteTokens(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.tokens)
	clear(m.leases)
	m.order = nil
	return nil
}

// AcquireLease implements Leaser.
func (m *MemoryStore) AcquireLease(ctx context.Context, id, holder string, ttl time.Duration) (bool, error) {
	if err := ValidateID(id); err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.tokens[id]; !ok {
		return false, fmt.Errorf("%w: id %q", ErrNotFound, id)
	}
	now := time.Now()
	if m.now != nil {
		now = m.now()
	}
	if l, ok := m.leases[id]; ok && !l.Expired(now) && l.Holder != holder {
		return false, nil
	}
	m.leases[id] = Lease{Holder: holder, Until: now.Add(ttl).UnixMilli()}
	return true, nil
}

// ReleaseLease implements Leaser.
func (m *MemoryStore) ReleaseLease(ctx context.Context, id, holder string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, ok := m.leases[id]; ok && l.Holder == holder {
		delete(m.leases, id)
	}
	return nil
}

// listLocked returns copies of all tokens in insertion order.
func (m *MemoryStore) listLocked() []*Token {
	out := make([]*Token, 0, len(m.order))
	for _, id := range m.order {
		out = append(out, m.tokens[id].Clone())
	}
	return out
}
