package casstore_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/observe"
	"github.com/cloudtokens/cloudtokens/observe/observetest"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// TestObserver runs every store operation with an Observer: each is
// reported once, at the top, with its token ID; every backend request is
// reported (as many as the backend served) inside a store operation;
// nothing reported holds a token value or a user name.
func TestObserver(t *testing.T) {
	ctx := context.Background()
	rec := &observetest.Recorder{}
	b := casstore.NewMemoryBackend()
	s := casstore.New(b, casstore.Options{Observer: rec})
	secrets := []string{"alice@example.com", "rt-SECRET", "at-SECRET", "cs-SECRET", "gt-SECRET", "rt-IMPORTED"}

	tok := &tokenstore.Token{UserName: "alice@example.com", ClientID: "c", ClientSecret: "cs-SECRET", RefreshToken: "rt-SECRET", AccessToken: "at-SECRET", GrantToken: "gt-SECRET"}
	calls := map[observe.Kind]int{}
	do := func(kind observe.Kind, err error) {
		t.Helper()
		calls[kind]++
		if err != nil {
			t.Fatalf("%v: %v", kind, err)
		}
	}
	do(observe.SaveToken, s.SaveToken(ctx, tok))
	_, err := s.FindToken(ctx, &tokenstore.Token{UserName: "alice@example.com", ClientID: "c"})
	do(observe.FindToken, err)
	_, err = s.FindTokenByID(ctx, tok.ID)
	do(observe.FindTokenByID, err)
	_, err = s.AcquireLease(ctx, tok.ID, "holder", time.Minute)
	do(observe.AcquireLease, err)
	do(observe.ReleaseLease, s.ReleaseLease(ctx, tok.ID, "holder"))
	do(observe.ImportToken, s.ImportToken(ctx, &tokenstore.Token{ID: "imported", UserName: "bob", ClientID: "c", RefreshToken: "rt-IMPORTED"}))
	_, err = s.Tokens(ctx)
	do(observe.Tokens, err)
	_, err = s.Check(ctx)
	do(observe.Check, err)
	_, err = s.Repair(ctx)
	do(observe.Repair, err)
	do(observe.DeleteToken, s.DeleteToken(ctx, tok.ID))
	do(observe.DeleteTokens, s.DeleteTokens(ctx))
	_, err = s.FindTokenByID(ctx, "missing")
	if !errors.Is(err, tokenstore.ErrNotFound) {
		t.Fatalf("FindTokenByID(missing): %v", err)
	}

	for _, p := range rec.Nesting() {
		t.Error(p)
	}
	top := map[observe.Kind]int{}
	backend := map[string]int{}
	ops := rec.Ops()
	for _, r := range ops {
		switch r.Op.Kind.Layer() {
		case observe.LayerStore:
			if r.Parent == nil {
				top[r.Op.Kind]++
			}
		case observe.LayerBackend:
			backend[r.Op.Kind.String()]++
			if r.Op.Kind != observe.ReadMany && r.Op.Kind != observe.List && r.Op.Document == "" {
				t.Errorf("backend request %v without its document", r.Op.Kind)
			}
		default:
			t.Errorf("%v: layer %v", r.Op.Kind, r.Op.Kind.Layer())
		}
	}
	calls[observe.FindTokenByID]++ // the missing one
	for k, n := range calls {
		if top[k] != n {
			t.Errorf("%v reported %d times at the top, called %d times", k, top[k], n)
		}
	}
	for method, n := range b.Calls() {
		if backend[method] != n {
			t.Errorf("backend %s: %d reported, %d served", method, backend[method], n)
		}
	}
	last := ops[len(ops)-1]
	if last.Op.Kind != observe.FindTokenByID || last.Op.TokenID != "missing" || !errors.Is(last.Err, tokenstore.ErrNotFound) {
		t.Errorf("the last operation: %+v, want FindTokenByID(missing) ending with ErrNotFound", last)
	}
	for _, r := range ops {
		if r.Parent == nil && (r.Op.Kind == observe.SaveToken || r.Op.Kind == observe.FindToken) && r.Op.TokenID != tok.ID {
			t.Errorf("%v ended with token ID %q, want %q", r.Op.Kind, r.Op.TokenID, tok.ID)
		}
	}
	for _, str := range rec.Strings() {
		for _, sec := range secrets {
			if strings.Contains(str, sec) {
				t.Errorf("the Observer was given %q, which holds %q", str, sec)
			}
		}
	}
}

// TestObserverBackendMethods: the observing decorator is a Lister exactly
// when the backend is (Check needs one).
func TestObserverBackendMethods(t *testing.T) {
	ctx := context.Background()
	type plain struct{ casstore.Backend } // hides List
	s := casstore.New(plain{casstore.NewMemoryBackend()}, casstore.Options{Observer: &observetest.Recorder{}})
	if _, err := s.Check(ctx); err == nil || !strings.Contains(err.Error(), "Lister") {
		t.Errorf("Check on a backend without List: %v", err)
	}
	s = casstore.New(casstore.NewMemoryBackend(), casstore.Options{Observer: &observetest.Recorder{}})
	if _, err := s.Check(ctx); err != nil {
		t.Errorf("Check on a Lister: %v", err)
	}
}

// crashOnTokenCreate fails the first create of a token document and every
// call after it: a process that died between claiming a new token's keys
// and creating its document.
type crashOnTokenCreate struct {
	casstore.Backend
	mu      sync.Mutex
	crashed bool
}

var errCrashed = errors.New("crashed")

func (c *crashOnTokenCreate) dead(name string, create bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if create && strings.HasPrefix(name, "token-") {
		c.crashed = true
	}
	return c.crashed
}

func (c *crashOnTokenCreate) Read(ctx context.Context, name string) (casstore.Object, error) {
	if c.dead(name, false) {
		return casstore.Object{}, errCrashed
	}
	return c.Backend.Read(ctx, name)
}

func (c *crashOnTokenCreate) Create(ctx context.Context, name string, value []byte) (string, error) {
	if c.dead(name, true) {
		return "", errCrashed
	}
	return c.Backend.Create(ctx, name, value)
}

func (c *crashOnTokenCreate) Update(ctx context.Context, name string, value []byte, version string) (string, error) {
	if c.dead(name, false) {
		return "", errCrashed
	}
	return c.Backend.Update(ctx, name, value, version)
}

func (c *crashOnTokenCreate) Delete(ctx context.Context, name string) error {
	if c.dead(name, false) {
		return errCrashed
	}
	return c.Backend.Delete(ctx, name)
}

func (c *crashOnTokenCreate) ReadMany(ctx context.Context, names []string) ([]casstore.Result, error) {
	if c.dead("", false) {
		return nil, errCrashed
	}
	return c.Backend.ReadMany(ctx, names)
}

// TestObserverEvents: index splits, the fence of a crashed save's claim
// and the retries that wait for it are reported as events inside the
// save that caused them.
func TestObserverEvents(t *testing.T) {
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	t.Run("split", func(t *testing.T) {
		rec := &observetest.Recorder{}
		s := casstore.New(casstore.NewMemoryBackend(), casstore.Options{IndexShards: 4, Observer: rec, Logger: quiet})
		if err := s.SaveToken(ctx, &tokenstore.Token{UserName: "u", ClientID: "c", RefreshToken: "r"}); err != nil {
			t.Fatal(err)
		}
		var grew []int
		for _, e := range rec.Events(observe.Split) {
			grew = append(grew, e.Event.Buckets)
			if e.In == nil || e.In.Kind != observe.SaveToken {
				t.Errorf("split outside the save: %+v", e.In)
			}
		}
		if !slices.Equal(grew, []int{2, 3, 4}) {
			t.Errorf("splits to %v buckets, want [2 3 4]", grew)
		}
	})

	t.Run("fence", func(t *testing.T) {
		b := casstore.NewMemoryBackend()
		crash := &crashOnTokenCreate{Backend: b}
		dead := casstore.New(crash, casstore.Options{Logger: quiet, CleanupTimeout: time.Second})
		if err := dead.SaveToken(ctx, &tokenstore.Token{UserName: "u", ClientID: "c", RefreshToken: "r1"}); !errors.Is(err, errCrashed) {
			t.Fatalf("the crashed save: %v", err)
		}
		rec := &observetest.Recorder{}
		s := casstore.New(b, casstore.Options{ClaimWait: time.Millisecond, Observer: rec, Logger: quiet})
		tok := &tokenstore.Token{UserName: "u", ClientID: "c", RefreshToken: "r2"}
		if err := s.SaveToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		fences := rec.Events(observe.Fence)
		if len(fences) == 0 {
			t.Fatal("no fence reported")
		}
		for _, f := range fences {
			if f.In == nil || f.In.Kind != observe.SaveToken || f.Event.TokenID == "" || f.Event.TokenID == tok.ID || f.Event.Key == "" {
				t.Errorf("fence %+v in %+v: want the crashed token's ID and a key kind, inside the save", f.Event, f.In)
			}
		}
		retries := rec.Events(observe.Retry)
		if len(retries) == 0 || retries[0].Event.Attempt != 1 || retries[0].Event.Err == nil {
			t.Errorf("retries while the claim was pending: %+v", retries)
		}
	})
}

// noopObserver does nothing: BenchmarkObserver measures the engine's own
// cost of reporting.
type noopObserver struct{}

func (noopObserver) Start(ctx context.Context, _ observe.Op) context.Context { return ctx }
func (noopObserver) End(context.Context, observe.Op, error)                  {}
func (noopObserver) Event(context.Context, observe.Event)                    {}

// BenchmarkObserver compares a Store without an Observer (none) with one
// whose Observer does nothing (noop), on the two calls of a warm token:
// a read by ID and the save of a refresh (one compare-and-swap).
func BenchmarkObserver(b *testing.B) {
	for _, c := range []struct {
		name string
		o    observe.Observer
	}{{"none", nil}, {"noop", noopObserver{}}} {
		ctx := context.Background()
		s := casstore.New(casstore.NewMemoryBackend(), casstore.Options{Observer: c.o})
		tok := &tokenstore.Token{UserName: "u", ClientID: "c", RefreshToken: "r", AccessToken: "a"}
		if err := s.SaveToken(ctx, tok); err != nil {
			b.Fatal(err)
		}
		b.Run(c.name+"/FindTokenByID", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.FindTokenByID(ctx, tok.ID); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/SaveToken", func(b *testing.B) {
			b.ReportAllocs()
			next := &tokenstore.Token{ID: tok.ID}
			for i := 0; b.Loop(); i++ {
				next.AccessToken = "a" + string(rune('a'+i%26))
				if err := s.SaveToken(ctx, next); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
