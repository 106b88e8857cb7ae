package tokenstoretest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// ErrInvalidConfig is wrapped by the error of a nil or bad [SharedOption].
var ErrInvalidConfig = errors.New("tokenstoretest: invalid configuration")

// RunShared runs the cases that need two store instances over the same
// data, standing in for two processes: newPair returns two stores that
// share storage (for example two adapters with the same prefix) and that
// no other test uses. The second store may cache its index: the cases
// warm it and then change the data through the first.
//
// With [WithVisibilityLag] the cases run as on an eventually consistent
// service; see the package documentation. A nil or invalid option fails
// t before any case runs.
func RunShared(t *testing.T, newPair func(t *testing.T) (a, b tokenstore.Store), opts ...SharedOption) {
	t.Helper()
	cfg, err := newSharedConfig(opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range SharedCases() {
		t.Run(c.Name, func(t *testing.T) {
			defer failOnPanic(t)
			a, b := newPair(t)
			if cfg.lag > 0 {
				a, b = withLag(a, b, cfg.lag)
			}
			c.Run(t, a, b)
		})
	}
}

// SharedOption configures [RunShared].
type SharedOption func(*sharedConfig) error

type sharedConfig struct {
	lag time.Duration
}

func newSharedConfig(opts []SharedOption) (sharedConfig, error) {
	var cfg sharedConfig
	for i, o := range opts {
		if o == nil {
			return sharedConfig{}, fmt.Errorf("%w: option %d is nil", ErrInvalidConfig, i)
		}
		if err := o(&cfg); err != nil {
			return sharedConfig{}, err
		}
	}
	return cfg, nil
}

// WithVisibilityLag runs the shared cases as on a service whose reads may
// miss another process's writes for up to d (eventual consistency, which
// every cloud secrets manager documents): before a case reads through one
// instance (FindToken, FindTokenByID, Tokens), it waits until d has passed
// since the last write through the other instance (SaveToken, DeleteToken,
// DeleteTokens, counted from the moment the write returned). The stores'
// own work is not delayed: a write through one instance right after a
// write through the other, and every read a store makes inside a write,
// must be correct under stale reads, and a store must see its own writes
// at once. d must be positive.
func WithVisibilityLag(d time.Duration) SharedOption {
	return func(c *sharedConfig) error {
		if d <= 0 {
			return fmt.Errorf("%w: visibility lag %v: must be positive", ErrInvalidConfig, d)
		}
		c.lag = d
		return nil
	}
}

// visibility tracks the writes through the two instances of a shared case.
type visibility struct {
	lag       time.Duration
	mu        sync.Mutex
	lastWrite [2]time.Time // when the last write through each instance returned
}

// lagged is one instance of a shared case under a visibility lag.
type lagged struct {
	tokenstore.Store
	self int // 0 or 1
	v    *visibility
}

func withLag(a, b tokenstore.Store, lag time.Duration) (tokenstore.Store, tokenstore.Store) {
	v := &visibility{lag: lag}
	return &lagged{Store: a, self: 0, v: v}, &lagged{Store: b, self: 1, v: v}
}

// wrote notes a write through this instance that has just returned.
func (l *lagged) wrote() {
	l.v.mu.Lock()
	defer l.v.mu.Unlock()
	l.v.lastWrite[l.self] = time.Now()
}

// await waits until the other instance's writes are visible.
func (l *lagged) await(ctx context.Context) error {
	l.v.mu.Lock()
	visible := l.v.lastWrite[1-l.self].Add(l.v.lag)
	l.v.mu.Unlock()
	d := time.Until(visible)
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *lagged) FindToken(ctx context.Context, q *tokenstore.Token) (*tokenstore.Token, error) {
	if err := l.await(ctx); err != nil {
		return nil, err
	}
	return l.Store.FindToken(ctx, q)
}

func (l *lagged) FindTokenByID(ctx context.Context, id string) (*tokenstore.Token, error) {
	if err := l.await(ctx); err != nil {
		return nil, err
	}
	return l.Store.FindTokenByID(ctx, id)
}

func (l *lagged) Tokens(ctx context.Context) ([]*tokenstore.Token, error) {
	if err := l.await(ctx); err != nil {
		return nil, err
	}
	return l.Store.Tokens(ctx)
}

func (l *lagged) SaveToken(ctx context.Context, t *tokenstore.Token) error {
	defer l.wrote()
	return l.Store.SaveToken(ctx, t)
}

func (l *lagged) DeleteToken(ctx context.Context, id string) error {
	defer l.wrote()
	return l.Store.DeleteToken(ctx, id)
}

func (l *lagged) DeleteTokens(ctx context.Context) error {
	defer l.wrote()
	return l.Store.DeleteTokens(ctx)
}

// SharedCase is one named check over two instances.
type SharedCase struct {
	Name string
	Run  func(t *testing.T, a, b tokenstore.Store)
}

// SharedCases returns the cases RunShared runs.
func SharedCases() []SharedCase {
	return []SharedCase{
		{"SavedThroughOneFoundThroughOther", func(t *testing.T, a, b tokenstore.Store) {
			x := save(t, a, userTok("shared-1", clientA, secretA, "acc", "ref-1"))
			mustFind(t, b, &tokenstore.Token{UserName: "shared-1"}, x.ID)
			mustFind(t, b, &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref-1"}, x.ID)
			if got, err := findByID(t, b, x.ID); err != nil || got.UserName != "shared-1" {
				t.Fatalf("FindTokenByID through the other instance: %v, %v", got, err)
			}
		}},
		{"NewTokenFoundAfterOtherWarmedCache", func(t *testing.T, a, b tokenstore.Store) {
			save(t, a, userTok("warm-1", clientA, secretA, "acc-1", "ref-w1"))
			mustFind(t, b, &tokenstore.Token{UserName: "warm-1"}, "") // warms b
			if _, err := b.Tokens(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			y := save(t, a, userTok("warm-2", clientA, secretA, "acc-2", "ref-w2"))
			mustFind(t, b, &tokenstore.Token{UserName: "warm-2"}, y.ID)
			mustFind(t, b, &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref-w2"}, y.ID)
		}},
		{"RecreatedTokenFoundAfterOtherCachedOldOne", func(t *testing.T, a, b tokenstore.Store) {
			x := save(t, a, userTok("again", clientA, secretA, "acc-1", "ref-1"))
			mustFind(t, b, &tokenstore.Token{UserName: "again"}, x.ID)
			if err := a.DeleteToken(ctxT(t), x.ID); err != nil {
				t.Fatal(err)
			}
			_, err := find(t, b, &tokenstore.Token{UserName: "again"})
			wantErr(t, "deleted token through a warm cache", err, tokenstore.ErrNotFound)
			y := save(t, a, userTok("again", clientA, secretA, "acc-2", "ref-2"))
			mustFind(t, b, &tokenstore.Token{UserName: "again"}, y.ID)
		}},
		{"RotatedRefreshTokenThroughWarmCache", func(t *testing.T, a, b tokenstore.Store) {
			x := save(t, a, userTok("rot", clientA, secretA, "acc-1", "ref-old"))
			mustFind(t, b, &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref-old"}, x.ID)
			save(t, a, &tokenstore.Token{ID: x.ID, AccessToken: "acc-2", RefreshToken: "ref-new"})
			_, err := find(t, b, &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref-old"})
			wantErr(t, "old refresh token through a warm cache", err, tokenstore.ErrNotFound)
			got := mustFind(t, b, &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref-new"}, x.ID)
			if got.AccessToken != "acc-2" {
				t.Fatalf("stale token through the other instance: %#v", got)
			}
		}},
		{"SaveThroughWarmCacheUpdatesNotDuplicates", func(t *testing.T, a, b tokenstore.Store) {
			x := save(t, a, userTok("upd", clientA, secretA, "acc-1", "ref-1"))
			mustFind(t, b, &tokenstore.Token{UserName: "upd"}, x.ID)
			if err := a.DeleteToken(ctxT(t), x.ID); err != nil {
				t.Fatal(err)
			}
			y := save(t, a, userTok("upd", clientA, secretA, "acc-2", "ref-2"))
			z := save(t, b, &tokenstore.Token{UserName: "upd", AccessToken: "acc-3"})
			if z.ID != y.ID {
				t.Fatalf("save through the stale instance made record %q, want update of %q", z.ID, y.ID)
			}
			if n := count(t, a); n != 1 {
				t.Fatalf("%d records, want 1", n)
			}
		}},
		{"ConcurrentSaversOnBothInstances", func(t *testing.T, a, b tokenstore.Store) {
			var wg sync.WaitGroup
			errs := make([]error, 16)
			for i := range 16 {
				s := a
				if i%2 == 1 {
					s = b
				}
				wg.Go(func() {
					errs[i] = s.SaveToken(ctxT(t), userTok("both", clientA, secretA, fmt.Sprintf("acc-%d", i), "ref-both"))
				})
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("saver %d: %v", i, err)
				}
			}
			for _, s := range []tokenstore.Store{a, b} {
				if n := count(t, s); n != 1 {
					t.Fatalf("%d records for one user, want 1", n)
				}
			}
		}},
		{"DeleteTokensSeenByOther", func(t *testing.T, a, b tokenstore.Store) {
			save(t, a, userTok("gone-1", clientA, secretA, "a1", "r1"))
			save(t, a, userTok("gone-2", clientA, secretA, "a2", "r2"))
			mustFind(t, b, &tokenstore.Token{UserName: "gone-1"}, "")
			if err := a.DeleteTokens(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			if n := count(t, b); n != 0 {
				t.Fatalf("other instance lists %d tokens after DeleteTokens", n)
			}
			_, err := find(t, b, &tokenstore.Token{UserName: "gone-1"})
			wantErr(t, "find through the other instance after DeleteTokens", err, tokenstore.ErrNotFound)
		}},
	}
}
