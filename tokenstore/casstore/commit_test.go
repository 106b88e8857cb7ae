package casstore_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// gatedIndex holds the first write of an index bucket until release is
// closed, and counts the index writes.
type gatedIndex struct {
	casstore.Backend
	release chan struct{}
	first   atomic.Bool
	writes  atomic.Int64
}

func (g *gatedIndex) hold(name string) {
	if strings.HasPrefix(name, "index-") {
		g.writes.Add(1)
		if g.first.CompareAndSwap(false, true) {
			<-g.release
		}
	}
}

func (g *gatedIndex) Create(ctx context.Context, name string, value []byte) (string, error) {
	g.hold(name)
	return g.Backend.Create(ctx, name, value)
}

func (g *gatedIndex) Update(ctx context.Context, name string, value []byte, version string) (string, error) {
	g.hold(name)
	return g.Backend.Update(ctx, name, value, version)
}

func (g *gatedIndex) List(ctx context.Context) ([]string, error) {
	return g.Backend.(casstore.Lister).List(ctx)
}

// Goroutines of one process that sign up users while an index write is
// in flight share the next write of the bucket (group commit): 32
// sign-ups, each of which writes the index at least once on its own, take
// a handful of index writes, and every user is stored once and found.
func TestConcurrentSavesShareIndexWrites(t *testing.T) {
	ctx := t.Context()
	mem := casstore.NewMemoryBackend()
	casstore.New(mem, casstore.Options{}).SaveToken(ctx, &tokenstore.Token{UserName: "first", RefreshToken: "rt-first"})
	g := &gatedIndex{Backend: mem, release: make(chan struct{})}
	s := casstore.New(g, casstore.Options{})
	const n = 32
	wait := signUps(ctx, s, n)
	time.Sleep(300 * time.Millisecond) // the others queue behind the held write
	close(g.release)
	errs := wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("save %d: %v", i, err)
		}
	}
	writes := g.writes.Load()
	t.Logf("%d sign-ups, %d index writes", n, writes)
	if writes >= n {
		t.Errorf("%d index writes for %d concurrent sign-ups: the writes were not shared", writes, n)
	}
	other := casstore.New(mem, casstore.Options{})
	all, err := other.Tokens(ctx)
	if err != nil || len(all) != n+1 {
		t.Fatalf("Tokens: %d (%v), want %d", len(all), err, n+1)
	}
	for i := range n {
		if _, err := other.FindToken(ctx, &tokenstore.Token{UserName: zohoToken(i).UserName}); err != nil {
			t.Errorf("FindToken(user %d): %v", i, err)
		}
	}
	if rep := mustCheck(t, other); !rep.OK() {
		t.Fatalf("Check: %s", rep)
	}
}

// cancelGate holds the first index write until its caller's context
// ends, and then fails it without applying it.
type cancelGate struct {
	gatedIndex
	holding chan struct{}
}

func (g *cancelGate) Update(ctx context.Context, name string, value []byte, version string) (string, error) {
	if strings.HasPrefix(name, "index-") && g.first.CompareAndSwap(false, true) {
		close(g.holding)
		<-ctx.Done()
		return "", ctx.Err()
	}
	return g.Backend.Update(ctx, name, value, version)
}

// The goroutine that writes a shared bucket change stops (its context is
// canceled mid-write): its own save fails with context.Canceled, and the
// changes queued behind it are written again by their own goroutines, so
// every other save succeeds and the store stays clean.
func TestCanceledWriterDoesNotFailQueuedSaves(t *testing.T) {
	ctx := t.Context()
	mem := casstore.NewMemoryBackend()
	if err := casstore.New(mem, casstore.Options{}).SaveToken(ctx, &tokenstore.Token{UserName: "first", RefreshToken: "rt-first"}); err != nil {
		t.Fatal(err)
	}
	g := &cancelGate{gatedIndex: gatedIndex{Backend: mem}, holding: make(chan struct{})}
	s := casstore.New(g, casstore.Options{})
	lctx, cancel := context.WithCancel(ctx)
	leader := make(chan error, 1)
	go func() { leader <- s.SaveToken(lctx, zohoToken(100)) }()
	<-g.holding
	const n = 8
	wait := signUps(ctx, s, n)
	time.Sleep(300 * time.Millisecond) // the others queue behind the held write
	cancel()
	if err := <-leader; !errors.Is(err, context.Canceled) {
		t.Errorf("the canceled save: %v, want context.Canceled", err)
	}
	errs := wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("queued save %d: %v", i, err)
		}
	}
	other := casstore.New(mem, casstore.Options{})
	for i := range n {
		if _, err := other.FindToken(ctx, &tokenstore.Token{UserName: zohoToken(i).UserName}); err != nil {
			t.Errorf("FindToken(user %d): %v", i, err)
		}
	}
	if rep := mustCheck(t, other); !rep.OK() {
		t.Fatalf("Check: %s", rep)
	}
}

// signUps starts n concurrent saves of zohoToken(0..n-1) on s; the
// returned function waits for them and returns their errors.
func signUps(ctx context.Context, s *casstore.Store, n int) func() []error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = s.SaveToken(ctx, zohoToken(i)) })
	}
	return func() []error { wg.Wait(); return errs }
}
