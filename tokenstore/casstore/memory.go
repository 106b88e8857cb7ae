package casstore

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// MemoryBackend is an in-memory Backend and Lister. Several Stores over
// one MemoryBackend behave like processes sharing a secrets manager, which
// makes it the fixture for testing the engine itself. It counts calls.
type MemoryBackend struct {
	mu    sync.Mutex
	docs  map[string]Object
	next  int
	calls map[string]int
}

var (
	_ Backend = (*MemoryBackend)(nil)
	_ Lister  = (*MemoryBackend)(nil)
)

// NewMemoryBackend returns an empty MemoryBackend.
func NewMemoryBackend() *MemoryBackend {
	return &MemoryBackend{docs: map[string]Object{}, calls: map[string]int{}}
}

// Calls returns the number of calls per method ("Read", "Update", ...)
// since the last ResetCalls.
func (m *MemoryBackend) Calls() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]int, len(m.calls))
	for k, v := range m.calls {
		out[k] = v
	}
	return out
}

// ResetCalls zeroes the call counters.
func (m *MemoryBackend) ResetCalls() {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.calls)
}

// Put stores a raw value under name, bypassing compare-and-swap: for
// tests that corrupt a document.
func (m *MemoryBackend) Put(name string, value []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.next++
	m.docs[name] = Object{Value: slices.Clone(value), Version: strconv.Itoa(m.next)}
}

func (m *MemoryBackend) count(method string) { m.calls[method]++ }

// Read implements Backend.
func (m *MemoryBackend) Read(ctx context.Context, name string) (Object, error) {
	if err := ctx.Err(); err != nil {
		return Object{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.count("Read")
	o, ok := m.docs[name]
	if !ok {
		return Object{}, fmt.Errorf("%w: document %q", tokenstore.ErrNotFound, name)
	}
	return Object{Value: slices.Clone(o.Value), Version: o.Version}, nil
}

// ReadMany implements Backend in one call.
func (m *MemoryBackend) ReadMany(ctx context.Context, names []string) ([]Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.count("ReadMany")
	out := make([]Result, len(names))
	for i, n := range names {
		o, ok := m.docs[n]
		if !ok {
			out[i] = Result{Name: n, Err: fmt.Errorf("%w: document %q", tokenstore.ErrNotFound, n)}
			continue
		}
		out[i] = Result{Name: n, Value: slices.Clone(o.Value), Version: o.Version}
	}
	return out, nil
}

// Create implements Backend.
func (m *MemoryBackend) Create(ctx context.Context, name string, value []byte) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.count("Create")
	if _, ok := m.docs[name]; ok {
		return "", fmt.Errorf("%w: %q", ErrExists, name)
	}
	m.next++
	v := strconv.Itoa(m.next)
	m.docs[name] = Object{Value: slices.Clone(value), Version: v}
	return v, nil
}

// Update implements Backend.
func (m *MemoryBackend) Update(ctx context.Context, name string, value []byte, version string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.count("Update")
	o, ok := m.docs[name]
	if !ok {
		return "", fmt.Errorf("%w: document %q", tokenstore.ErrNotFound, name)
	}
	if o.Version != version {
		return "", fmt.Errorf("%w: %q is at %s, expected %s", ErrVersionMismatch, name, o.Version, version)
	}
	m.next++
	v := strconv.Itoa(m.next)
	m.docs[name] = Object{Value: slices.Clone(value), Version: v}
	return v, nil
}

// Delete implements Backend.
func (m *MemoryBackend) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.count("Delete")
	if _, ok := m.docs[name]; !ok {
		return fmt.Errorf("%w: document %q", tokenstore.ErrNotFound, name)
	}
	delete(m.docs, name)
	return nil
}

// List implements Lister.
func (m *MemoryBackend) List(ctx context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.count("List")
	names := make([]string, 0, len(m.docs))
	for n := range m.docs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}
