package tokensource_test

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/oauthtest"
	"github.com/cloudtokens/cloudtokens/tokensource"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// pool returns a Pool on store with the env's config and clock and a
// quiet logger.
func (e *env) pool(t *testing.T, store tokenstore.Store, opts ...tokensource.Option) *tokensource.Pool {
	t.Helper()
	opts = append([]tokensource.Option{tokensource.WithClock(e.clk.Now), tokensource.WithLogger(quietLogger())}, opts...)
	p, err := tokensource.NewPool(store, e.cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func wantCalls(t *testing.T, what string, got, want map[string]int) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Fatalf("%s: store calls %v, want %v", what, got, want)
	}
}

// TestPoolWarmTokenNoCalls: after the first call, a Pool serves a valid
// token with 0 store calls and 0 provider calls, by user name and by ID
// alike (one Source).
func TestPoolWarmTokenNoCalls(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore storeFunc) {
		e := newEnv(t, newStore)
		e.login(t, "alice@example.com")
		id := e.stored(t, "alice@example.com").ID
		store, calls := counting(e.store)
		p := e.pool(t, store)
		reqs := e.srv.TokenRequests()

		alice := &tokenstore.Token{UserName: "alice@example.com"}
		first, err := p.Token(ctxT(t), alice)
		if err != nil {
			t.Fatal(err)
		}
		wantCalls(t, "cold", calls(), map[string]int{"FindToken": 1})
		for i := range 100 {
			who := alice
			if i%2 == 1 {
				who = &tokenstore.Token{ID: id}
			}
			tok, err := p.Token(ctxT(t), who)
			if err != nil || tok.AccessToken != first.AccessToken {
				t.Fatalf("warm call %d: %v", i, err)
			}
		}
		wantCalls(t, "100 warm calls", calls(), map[string]int{})
		if n := e.srv.TokenRequests() - reqs; n != 0 {
			t.Fatalf("%d provider requests for a valid token", n)
		}
		if p.Len() != 1 {
			t.Fatalf("Len %d, want 1 Source for one record", p.Len())
		}
		src, err := p.Source(ctxT(t), &tokenstore.Token{ID: id})
		if err != nil || src.ID() != id {
			t.Fatalf("Source by ID: %v", err)
		}
		hc, err := p.Client(ctxT(t), alice)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Get(e.srv.APIURL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("API call with the Pool's client: %s", resp.Status)
		}
		wantCalls(t, "Source and Client", calls(), map[string]int{})
	})
}

// TestPoolExpiryOneRefresh: 50 goroutines asking for an expired token
// cause 1 refresh and the documented store calls: a read (did another
// process refresh it?), the lease, a read under the lease, the save
// (which gives the Pool's Source the lease for the next refresh). The
// next expiry, 50 goroutines in the owner's early window cause 1 refresh
// with a read and the save: no lease write.
func TestPoolExpiryOneRefresh(t *testing.T) {
	forEachStore(t, func(t *testing.T, newStore storeFunc) {
		e := newEnv(t, newStore, oauthtest.WithRotation(true), oauthtest.WithReuseDetection(true),
			oauthtest.WithLatency(20*time.Millisecond))
		e.login(t, "bob")
		store, calls := counting(e.store)
		p := e.pool(t, store)
		bob := &tokenstore.Token{UserName: "bob"}
		if _, err := p.Token(ctxT(t), bob); err != nil {
			t.Fatal(err)
		}
		calls()
		e.clk.Advance(time.Hour)

		callers := func(refreshes int) string {
			t.Helper()
			var wg sync.WaitGroup
			toks := make([]string, 50)
			errs := make([]error, 50)
			for i := range toks {
				wg.Go(func() {
					tok, err := p.Token(ctxT(t), bob)
					errs[i] = err
					if err == nil {
						toks[i] = tok.AccessToken
					}
				})
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil || toks[i] != toks[0] {
					t.Fatalf("caller %d: %v", i, err)
				}
			}
			if e.srv.Refreshes() != refreshes || e.srv.RefreshTokenReuses() != 0 {
				t.Fatalf("refreshes %d, reuses %d; want %d and 0", e.srv.Refreshes(), e.srv.RefreshTokenReuses(), refreshes)
			}
			if st := e.stored(t, "bob"); st.AccessToken != toks[0] {
				t.Fatal("the refreshed token is not the stored one")
			}
			return toks[0]
		}
		callers(1)
		wantCalls(t, "refresh", calls(), map[string]int{"FindTokenByID": 2, "AcquireLease": 1, "SaveTokenLeased": 1})
		// Warm again.
		for range 10 {
			if _, err := p.Token(ctxT(t), bob); err != nil {
				t.Fatal(err)
			}
		}
		wantCalls(t, "after the refresh", calls(), map[string]int{})

		e.clk.Advance(time.Hour - 90*time.Second) // 90 s left: the owner's window
		callers(2)
		wantCalls(t, "the owner's refresh", calls(), map[string]int{"FindTokenByID": 1, "SaveTokenLeased": 1})
	})
}

// TestPoolConcurrentColdCalls: concurrent first calls for one identity
// make one Source and one store read.
func TestPoolConcurrentColdCalls(t *testing.T) {
	e := newEnv(t, memoryStore)
	e.login(t, "cara")
	store, calls := counting(e.store)
	p := e.pool(t, store)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := p.Token(ctxT(t), &tokenstore.Token{UserName: "cara"}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	wantCalls(t, "20 concurrent cold calls", calls(), map[string]int{"FindToken": 1})
	if p.Len() != 1 {
		t.Fatalf("Len %d", p.Len())
	}
}

// TestPoolIdentitiesShareSource: a Source made for an ID and one made for
// the user name of the same record become one once the second has found
// the record.
func TestPoolIdentitiesShareSource(t *testing.T) {
	e := newEnv(t, memoryStore)
	e.login(t, "dora")
	id := e.stored(t, "dora").ID
	store, calls := counting(e.store)
	p := e.pool(t, store)
	byID, err := p.Source(ctxT(t), &tokenstore.Token{ID: id})
	if err != nil {
		t.Fatal(err)
	}
	byName, err := p.Source(ctxT(t), &tokenstore.Token{UserName: "dora"})
	if err != nil {
		t.Fatal(err)
	}
	if byName != byID || p.Len() != 1 {
		t.Fatalf("two Sources for one record (Len %d)", p.Len())
	}
	wantCalls(t, "by ID, then by name", calls(), map[string]int{"FindTokenByID": 1, "FindToken": 1})
	for range 10 {
		if _, err := p.Token(ctxT(t), &tokenstore.Token{UserName: "dora"}); err != nil {
			t.Fatal(err)
		}
	}
	wantCalls(t, "warm by name", calls(), map[string]int{})
}

// TestPoolLogin: a who with a grant code is a login; it gets a Source that
// exchanges the code and then serves the record's other identities.
func TestPoolLogin(t *testing.T) {
	e := newEnv(t, memoryStore, oauthtest.WithRotation(true), oauthtest.WithReuseDetection(true))
	p := e.pool(t, e.store)
	first, err := p.Token(ctxT(t), &tokenstore.Token{UserName: "eve", GrantToken: e.srv.IssueGrant("eve")})
	if err != nil {
		t.Fatal(err)
	}
	byName, err := p.Token(ctxT(t), &tokenstore.Token{UserName: "eve"})
	if err != nil || byName.AccessToken != first.AccessToken || p.Len() != 1 {
		t.Fatalf("by name after the login: %v, Len %d", err, p.Len())
	}
	// A second login (new consent) replaces the token everywhere.
	second, err := p.Token(ctxT(t), &tokenstore.Token{UserName: "eve", GrantToken: e.srv.IssueGrant("eve")})
	if err != nil || second.AccessToken == first.AccessToken {
		t.Fatalf("second login: %v", err)
	}
	for _, who := range []*tokenstore.Token{{UserName: "eve"}, {ID: second.Extra(tokensource.ExtraTokenID).(string)}} {
		tok, err := p.Token(ctxT(t), who)
		if err != nil || tok.AccessToken != second.AccessToken {
			t.Fatalf("%v after the second login: %v (old token served: %v)", who, err, tok != nil && tok.AccessToken == first.AccessToken)
		}
	}
	if p.Len() != 1 || e.srv.Exchanges() != 2 {
		t.Fatalf("Len %d, exchanges %d", p.Len(), e.srv.Exchanges())
	}
	// Repeating a login request does not exchange the used code again.
	if _, err := p.Token(ctxT(t), &tokenstore.Token{UserName: "eve"}); err != nil || e.srv.TokenRequests() != 2 {
		t.Fatalf("token requests %d", e.srv.TokenRequests())
	}
}

// TestPoolEvictionLosesNothing: a full Pool drops its least recently used
// Source; the identity then costs one store read and gets the same token.
// A Source whose save failed is kept until it has saved.
func TestPoolEvictionLosesNothing(t *testing.T) {
	e := newEnv(t, func(now func() time.Time) tokenstore.Store {
		return &failingStore{MemoryStore: tokenstore.NewMemoryStoreWithClock(now)}
	}, oauthtest.WithRotation(true))
	fs := e.store.(*failingStore)
	for _, u := range []string{"u1", "u2", "u3"} {
		e.login(t, u)
	}
	store, calls := counting(e.store)
	p := e.pool(t, store, tokensource.WithPoolSize(2))
	tokens := map[string]string{}
	for _, u := range []string{"u1", "u2", "u3"} {
		tok, err := p.Token(ctxT(t), &tokenstore.Token{UserName: u})
		if err != nil {
			t.Fatal(err)
		}
		tokens[u] = tok.AccessToken
	}
	if p.Len() != 2 {
		t.Fatalf("Len %d, want 2", p.Len())
	}
	calls()
	tok, err := p.Token(ctxT(t), &tokenstore.Token{UserName: "u1"}) // evicted: read again
	if err != nil || tok.AccessToken != tokens["u1"] {
		t.Fatalf("u1 after eviction: %v", err)
	}
	wantCalls(t, "evicted identity", calls(), map[string]int{"FindToken": 1})

	// u1's refresh cannot be saved: its Source keeps the new token and
	// stays in the Pool while u2 and u3 come and go.
	e.clk.Advance(time.Hour)
	fs.Fail(true)
	if _, err := p.Token(ctxT(t), &tokenstore.Token{UserName: "u1"}); !errors.Is(err, errSaveFailed) {
		t.Fatalf("refresh with the store down: %v", err)
	}
	fs.Fail(false)
	for _, u := range []string{"u2", "u3", "u2", "u3"} {
		if _, err := p.Token(ctxT(t), &tokenstore.Token{UserName: u}); err != nil {
			t.Fatal(err)
		}
	}
	refreshes := e.srv.Refreshes()
	tok, err = p.Token(ctxT(t), &tokenstore.Token{UserName: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	if e.srv.Refreshes() != refreshes {
		t.Fatal("u1 was refreshed again: the unsaved token was lost with its Source")
	}
	if st := e.stored(t, "u1"); st.AccessToken != tok.AccessToken || !e.srv.RefreshTokenValid(st.RefreshToken) {
		t.Fatal("the store does not hold u1's refreshed token")
	}
}

func TestPoolSizeBound(t *testing.T) {
	e := newEnv(t, memoryStore, oauthtest.WithLimit(0, 0))
	p := e.pool(t, e.store, tokensource.WithPoolSize(5))
	for i := range 20 {
		u := fmt.Sprintf("user%d", i)
		if _, err := p.Token(ctxT(t), &tokenstore.Token{UserName: u, GrantToken: e.srv.IssueGrant(u)}); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Token(ctxT(t), &tokenstore.Token{UserName: u}); err != nil {
			t.Fatal(err)
		}
		if p.Len() > 5 {
			t.Fatalf("Len %d after %d users", p.Len(), i+1)
		}
	}
}

// TestPoolUnknownUser: no token is ErrNoToken; the Source stays, and a
// login saved later by another process is found on the next call.
func TestPoolUnknownUser(t *testing.T) {
	e := newEnv(t, memoryStore)
	p := e.pool(t, e.store)
	if _, err := p.Token(ctxT(t), &tokenstore.Token{UserName: "fay"}); !errors.Is(err, tokensource.ErrNoToken) || !errors.Is(err, tokenstore.ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
	e.login(t, "fay")
	if _, err := p.Token(ctxT(t), &tokenstore.Token{UserName: "fay"}); err != nil {
		t.Fatalf("after a login elsewhere: %v", err)
	}
	if _, err := p.Token(ctxT(t), nil); !errors.Is(err, tokenstore.ErrInvalidToken) {
		t.Fatalf("nil who: %v", err)
	}
	if _, err := p.Token(ctxT(t), &tokenstore.Token{ClientSecret: "x"}); !errors.Is(err, tokenstore.ErrInvalidToken) {
		t.Fatalf("who without identity: %v", err)
	}
}

// TestPoolRefreshPerLifetime: with the default 5 s margin, a 3 s token is
// refreshed about once per lifetime, not on every call.
func TestPoolRefreshPerLifetime(t *testing.T) {
	e := newEnv(t, memoryStore, oauthtest.WithLifetime(3*time.Second), oauthtest.WithLimit(0, 0))
	p := e.pool(t, e.store)
	who := &tokenstore.Token{UserName: "gil", GrantToken: e.srv.IssueGrant("gil")}
	if _, err := p.Token(ctxT(t), who); err != nil {
		t.Fatal(err)
	}
	// 30 s in 100 ms steps: a 3 s token refreshed at 10% of its lifetime
	// left is refreshed every 2.7 s: 11 times.
	for range 300 {
		e.clk.Advance(100 * time.Millisecond)
		if _, err := p.Token(ctxT(t), &tokenstore.Token{UserName: "gil"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.srv.Refreshes(); n < 10 || n > 12 {
		t.Fatalf("%d refreshes in 10 lifetimes", n)
	}
}

// BenchmarkPoolWarm: a warm Token call (no store or provider call).
func BenchmarkPoolWarm(b *testing.B) {
	srv := oauthtest.Start(b, oauthtest.WithLimit(0, 0))
	store := tokenstore.NewMemoryStore()
	p, err := tokensource.NewPool(store, cfgOf(srv), tokensource.WithLogger(quietLogger()))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := p.Token(b.Context(), &tokenstore.Token{UserName: "u", GrantToken: srv.IssueGrant("u")}); err != nil {
		b.Fatal(err)
	}
	who := &tokenstore.Token{UserName: "u"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := p.Token(b.Context(), who); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPoolMemory reports the heap a full Pool of DefaultPoolSize warm
// Sources holds, per Source (tokens of oauthtest's size, 1000.<32>.<32>).
func BenchmarkPoolMemory(b *testing.B) {
	srv := oauthtest.Start(b, oauthtest.WithLimit(0, 0))
	store := tokenstore.NewMemoryStore()
	for i := range tokensource.DefaultPoolSize {
		u := fmt.Sprintf("user%04d@example.com", i)
		src, err := tokensource.New(store, &tokenstore.Token{UserName: u, GrantToken: srv.IssueGrant(u)}, cfgOf(srv), tokensource.WithLogger(quietLogger()))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := src.Token(); err != nil {
			b.Fatal(err)
		}
	}
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		p, err := tokensource.NewPool(store, cfgOf(srv), tokensource.WithLogger(quietLogger()))
		if err != nil {
			b.Fatal(err)
		}
		for i := range tokensource.DefaultPoolSize {
			if _, err := p.Token(b.Context(), &tokenstore.Token{UserName: fmt.Sprintf("user%04d@example.com", i)}); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(p.Len()), "heapB/source")
		runtime.KeepAlive(p)
	}
}
