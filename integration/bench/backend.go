package bench

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"

	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// countingBackend sits between the engine and the adapter's backend (and
// any wrapper a run adds, such as casstoretest.QuotaBackend): it counts
// every Backend call in the target's Backend counter, in the Tally of the
// call's context, and in the layout of the store's prefix. It passes
// casstore.Lister, casstore.QuotaReporter and casstore.BatchReader through,
// so the engine sees the backend exactly as without it.
type countingBackend struct {
	next   casstore.Backend
	calls  *Counter
	layout *Layout
}

var (
	_ casstore.Backend       = (*countingBackend)(nil)
	_ casstore.Lister        = (*countingBackend)(nil)
	_ casstore.QuotaReporter = (*countingBackend)(nil)
	_ casstore.BatchReader   = (*countingBackend)(nil)
)

// indexNumber returns n for the engine's document name "index-<n>".
func indexNumber(name string) (int, bool) {
	s, ok := strings.CutPrefix(name, "index-")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

func (b *countingBackend) count(ctx context.Context, method, name string, err error) {
	b.calls.count(method)
	n, isIndex := indexNumber(name)
	lost := errors.Is(err, casstore.ErrVersionMismatch) || errors.Is(err, casstore.ErrExists)
	write := method == "Create" || method == "Update"
	if isIndex && method == "Create" && err == nil {
		b.layout.created(n)
	}
	t := tallyOf(ctx)
	if t == nil {
		return
	}
	t.update(func(u *Usage) {
		u.Backend[method]++
		switch {
		case isIndex && method == "Read":
			u.IndexReads++
		case isIndex && write:
			u.IndexWrites++
		case write:
			u.TokenWrites++
		}
		if isIndex && method == "Create" && err == nil && n > 0 {
			u.Splits++
		}
		if lost {
			u.FailedCAS++
		}
	})
}

func (b *countingBackend) Read(ctx context.Context, name string) (casstore.Object, error) {
	o, err := b.next.Read(ctx, name)
	b.count(ctx, "Read", name, err)
	return o, err
}

func (b *countingBackend) ReadMany(ctx context.Context, names []string) ([]casstore.Result, error) {
	res, err := b.next.ReadMany(ctx, names)
	b.count(ctx, "ReadMany", "", err)
	return res, err
}

func (b *countingBackend) Create(ctx context.Context, name string, value []byte) (string, error) {
	v, err := b.next.Create(ctx, name, value)
	b.count(ctx, "Create", name, err)
	return v, err
}

func (b *countingBackend) Update(ctx context.Context, name string, value []byte, version string) (string, error) {
	v, err := b.next.Update(ctx, name, value, version)
	b.count(ctx, "Update", name, err)
	return v, err
}

func (b *countingBackend) Delete(ctx context.Context, name string) error {
	err := b.next.Delete(ctx, name)
	b.count(ctx, "Delete", name, err)
	return err
}

func (b *countingBackend) List(ctx context.Context) ([]string, error) {
	l, ok := b.next.(casstore.Lister)
	if !ok {
		return nil, errors.New("bench: the backend cannot list")
	}
	names, err := l.List(ctx)
	b.count(ctx, "List", "", err)
	return names, err
}

func (b *countingBackend) Quotas() casstore.Quotas {
	if q, ok := b.next.(casstore.QuotaReporter); ok {
		return q.Quotas()
	}
	return casstore.Quotas{}
}

func (b *countingBackend) BatchSize() int {
	if br, ok := b.next.(casstore.BatchReader); ok {
		return br.BatchSize()
	}
	return 1
}

// Layout is what the bench knows of the index of one prefix: the buckets
// created through its stores. Stores of one prefix in this process share
// it; a prefix written by other processes is not followed.
type Layout struct {
	mu      sync.Mutex
	buckets map[int]bool
}

func (l *Layout) created(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		l.buckets = map[int]bool{}
	}
	l.buckets[n] = true
}

// Buckets returns the number of index buckets created so far (at least
// 1: an index without documents is one empty bucket).
func (l *Layout) Buckets() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return max(1, len(l.buckets))
}
