package gcpsm_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cloudtokens/cloudtokens/gcpsm"
	"github.com/cloudtokens/cloudtokens/gcpsm/gcpsmtest"
	"github.com/cloudtokens/cloudtokens/oauthtest"
	"github.com/cloudtokens/cloudtokens/tokensource"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// The refresh lease on Secret Manager is the destruction of the token's
// previous version (see casstore.VersionLeaser): these tests check that
// it is exclusive, that it runs out, and that it is never taken on a
// version that is no longer current.

// leaseEnv is a token saved twice (so that it has a previous version)
// and stores on separate connections, standing in for processes.
type leaseEnv struct {
	*env
	prefix string
	id     string
	secret string // the token's secret ID
}

func newLeaseEnv(t *testing.T, opts ...gcpsmtest.Option) *leaseEnv {
	t.Helper()
	e := newEnv(t, opts...)
	prefix := newPrefix()
	s := e.store(t, prefix)
	ctx := context.Background()
	if err := s.SaveToken(ctx, tok("lessee")); err != nil {
		t.Fatal(err)
	}
	got, err := s.FindToken(ctx, &tokenstore.Token{UserName: "lessee"})
	if err != nil {
		t.Fatal(err)
	}
	got.AccessToken = "access-VALUE-second"
	if err := s.SaveToken(ctx, got); err != nil {
		t.Fatal(err)
	}
	return &leaseEnv{env: e, prefix: prefix, id: got.ID, secret: prefix + "_token-" + got.ID}
}

// process returns a store with its own connection.
func (l *leaseEnv) process(t *testing.T) *gcpsm.Store {
	c, _ := newRecordedClient(t, l.srv)
	return newStore(t, c, l.prefix)
}

func TestVersionLeaseIsExclusive(t *testing.T) {
	l := newLeaseEnv(t)
	ctx := context.Background()
	const procs, rounds = 8, 10
	stores := make([]*gcpsm.Store, procs)
	for i := range stores {
		stores[i] = l.process(t)
	}
	for round := range rounds {
		var won atomic.Int32
		var winner atomic.Int32
		var wg sync.WaitGroup
		for i, s := range stores {
			wg.Go(func() {
				ok, err := s.AcquireLease(ctx, l.id, fmt.Sprintf("holder-%d", i), time.Minute)
				if err != nil {
					t.Errorf("round %d, store %d: %v", round, i, err)
				}
				if ok {
					won.Add(1)
					winner.Store(int32(i))
				}
			})
		}
		wg.Wait()
		if won.Load() != 1 {
			t.Fatalf("round %d: %d holders, want 1", round, won.Load())
		}
		// The lease wrote no version: the previous one was destroyed.
		if n := l.live(t, l.secret); n != 1 {
			t.Fatalf("round %d: %d live versions under the lease, want 1", round, n)
		}
		// The holder saves its refresh, which ends the lease.
		s := stores[winner.Load()]
		cur, err := s.FindTokenByID(ctx, l.id)
		if err != nil {
			t.Fatal(err)
		}
		cur.AccessToken = fmt.Sprintf("access-VALUE-round-%d", round)
		if err := s.SaveToken(ctx, cur); err != nil {
			t.Fatalf("round %d: the holder's save: %v", round, err)
		}
		if n := l.live(t, l.secret); n != 2 {
			t.Fatalf("round %d: %d live versions after the save, want 2", round, n)
		}
	}
}

func TestVersionLeaseRunsOut(t *testing.T) {
	l := newLeaseEnv(t)
	ctx := context.Background()
	a, b := l.process(t), l.process(t)
	const ttl = 300 * time.Millisecond
	if ok, err := a.AcquireLease(ctx, l.id, "a", ttl); !ok || err != nil {
		t.Fatalf("a: %v, %v", ok, err)
	}
	// a stops here, as if killed: it never saves nor releases.
	deadline := time.Now().Add(ttl)
	for time.Now().Before(deadline.Add(-50 * time.Millisecond)) {
		if ok, err := b.AcquireLease(ctx, l.id, "b", ttl); ok || err != nil {
			t.Fatalf("b while a's lease runs: %v, %v", ok, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Until(deadline) + 100*time.Millisecond)
	if ok, err := b.AcquireLease(ctx, l.id, "b", time.Minute); !ok || err != nil {
		t.Fatalf("b after a's lease ran out: %v, %v", ok, err)
	}
	// b took it over by writing its lease into the token: a, back from
	// its stall, cannot take it.
	if ok, err := a.AcquireLease(ctx, l.id, "a", ttl); ok || err != nil {
		t.Fatalf("a after b took over: %v, %v", ok, err)
	}
	got, err := a.FindTokenByID(ctx, l.id)
	if err != nil || got.AccessToken != "access-VALUE-second" {
		t.Fatalf("the token after the takeover: %v", err)
	}
	// ReleaseLease lets the next one in at once.
	if err := b.ReleaseLease(ctx, l.id, "b"); err != nil {
		t.Fatal(err)
	}
	if ok, err := a.AcquireLease(ctx, l.id, "a", ttl); !ok || err != nil {
		t.Fatalf("a after b released: %v, %v", ok, err)
	}
	if err := a.ReleaseLease(ctx, l.id, "a"); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.AcquireLease(ctx, l.id, "b", ttl); !ok || err != nil {
		t.Fatalf("b after a released its version lease: %v, %v", ok, err)
	}
	if n := l.live(t, l.secret); n > 2 {
		t.Fatalf("%d live versions, want at most 2", n)
	}
}

// A write whose process died after it moved the alias and before it
// destroyed the version before: the version a stale lease would destroy
// is still there. The lease must not be taken on the version that was
// current before that write.
func TestVersionLeaseAfterUnfinishedWrite(t *testing.T) {
	l := newLeaseEnv(t)
	ctx := context.Background()
	a := l.process(t)
	cur, err := a.FindTokenByID(ctx, l.id)
	if err != nil {
		t.Fatal(err)
	}
	cur.AccessToken = "access-VALUE-third"
	if err := a.SaveToken(ctx, cur); err != nil { // a remembers the secret's aliases
		t.Fatal(err)
	}
	// Another process writes the next version and dies before its
	// destroy: current -> n+1, previous -> n, n-1 still live.
	next := cur.Clone()
	next.AccessToken = "access-VALUE-unfinished"
	doc, err := tokenstore.MarshalStored(next, tokenstore.Meta{Gen: 50, SavedAt: time.Now().UnixMilli()})
	if err != nil {
		t.Fatal(err)
	}
	l.addCurrent(t, l.secret, doc, true)
	if n := l.live(t, l.secret); n != 3 {
		t.Fatalf("%d live versions after the unfinished write, want 3", n)
	}
	c := l.process(t)
	okA, err := a.AcquireLease(ctx, l.id, "a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	okC, err := c.AcquireLease(ctx, l.id, "c", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if okA == okC {
		t.Fatalf("a took the lease: %v, c: %v; want exactly one", okA, okC)
	}
	holder := a
	if okC {
		holder = c
	}
	got, err := holder.FindTokenByID(ctx, l.id)
	if err != nil || got.AccessToken != "access-VALUE-unfinished" {
		t.Fatalf("the holder reads %v, %v; want the unfinished write's token", got, err)
	}
}

// A destruction whose response is lost: the retry finds the version
// destroyed and cannot tell by whom, so nobody holds the lease until its
// TTL has run out; then the next caller takes it by a write.
func TestVersionLeaseLostResponse(t *testing.T) {
	var lose atomic.Bool
	hook := grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if _, ok := req.(*secretmanagerpb.DestroySecretVersionRequest); ok && lose.CompareAndSwap(true, false) {
			if _, err := h(ctx, req); err != nil {
				return nil, err
			}
			return nil, status.Error(codes.Unavailable, "injected: response lost")
		}
		return h(ctx, req)
	})
	l := newLeaseEnv(t, gcpsmtest.WithServerOptions(hook))
	ctx := context.Background()
	a, b := l.process(t), l.process(t)
	// The retry of the lost call pauses up to 0.5 s: the TTL outlasts it.
	const ttl = 2 * time.Second
	lose.Store(true)
	if ok, err := a.AcquireLease(ctx, l.id, "a", ttl); ok || err != nil {
		t.Fatalf("a, its destruction's response lost: %v, %v; want false, nil", ok, err)
	}
	if lose.Load() {
		t.Fatal("no DestroySecretVersion was sent")
	}
	if ok, err := b.AcquireLease(ctx, l.id, "b", ttl); ok || err != nil {
		t.Fatalf("b: %v, %v; want false, nil", ok, err)
	}
	time.Sleep(ttl + 100*time.Millisecond)
	okA, errA := a.AcquireLease(ctx, l.id, "a", time.Minute)
	okB, errB := b.AcquireLease(ctx, l.id, "b", time.Minute)
	if errA != nil || errB != nil || okA == okB {
		t.Fatalf("after the TTL: a %v, %v; b %v, %v; want exactly one holder", okA, errA, okB, errB)
	}
}

// TestLeasedRefreshesKeepTwoLiveVersions refreshes one token 100 times
// the way tokensource does with the lease (read, lease, read, save),
// alternating between two
// processes (each lease taken by the one that did not write the token
// last): every refresh costs 3 write requests (the lease's
// DestroySecretVersion, then AddSecretVersion and UpdateSecret), the
// secret has 1 billed version under the lease and 2 after the save, and
// the previous version stays readable between refreshes.
func TestLeasedRefreshesKeepTwoLiveVersions(t *testing.T) {
	l := newLeaseEnv(t)
	ctx := context.Background()
	type proc struct {
		s   *gcpsm.Store
		rec *recorder
	}
	var procs [2]proc
	for i := range procs {
		c, rec := newRecordedClient(t, l.srv)
		procs[i] = proc{newStore(t, c, l.prefix), rec}
	}
	writes := func() (n int) {
		for _, p := range procs {
			for _, c := range p.rec.take() {
				switch c.Method {
				case add, update, destroy, create, del:
					n++
				}
			}
		}
		return n
	}
	for round := range 100 {
		p := procs[round%2]
		// tokensource reads the token (expired) before it takes the lease.
		if _, err := p.s.FindTokenByID(ctx, l.id); err != nil {
			t.Fatal(err)
		}
		writes()
		if ok, err := p.s.AcquireLease(ctx, l.id, fmt.Sprint("holder-", round%2), time.Minute); !ok || err != nil {
			t.Fatalf("round %d: lease %v, %v", round, ok, err)
		}
		if n := l.live(t, l.secret); n != 1 {
			t.Fatalf("round %d: %d billed versions under the lease, want 1", round, n)
		}
		cur, err := p.s.FindTokenByID(ctx, l.id)
		if err != nil {
			t.Fatal(err)
		}
		cur.AccessToken = fmt.Sprintf("access-VALUE-%d", round)
		if err := p.s.SaveToken(ctx, cur); err != nil {
			t.Fatalf("round %d: save: %v", round, err)
		}
		if n := writes(); n != 3 {
			t.Fatalf("round %d: %d write requests for the lease and the save, want 3", round, n)
		}
		if n := l.live(t, l.secret); n != 2 {
			t.Fatalf("round %d: %d billed versions after the save, want 2", round, n)
		}
	}
	st := l.versionStates(t, l.secret)
	t.Logf("after 100 leased refreshes: %v", st)
	// Versions 1 and 2 (newLeaseEnv), then 100 refreshes: 102 added.
	if st[secretmanagerpb.SecretVersion_ENABLED] != 2 || st[secretmanagerpb.SecretVersion_DESTROYED] != 100 {
		t.Errorf("versions %v, want 2 ENABLED and 100 DESTROYED", st)
	}
	if _, err := l.raw.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: secretPath(l.secret) + "/versions/" + gcpsm.PreviousAlias}); err != nil {
		t.Errorf("previous version: %v", err)
	}
}

// TestLeasedRefreshesAcrossProcesses runs six Sources on six stores (own
// connections, standing in for processes) that share one user's token
// from a provider that rotates refresh tokens and revokes the chain when
// one is used twice, through several expiries: every refresh is taken
// under a lease (the owner's or a version lease), so the provider sees no
// reuse, every call gets a token, and each expiry is refreshed about once.
func TestLeasedRefreshesAcrossProcesses(t *testing.T) {
	const lifetime = 2 * time.Second
	prov := oauthtest.Start(t, oauthtest.WithRotation(true), oauthtest.WithReuseDetection(true),
		oauthtest.WithLifetime(lifetime), oauthtest.WithLatency(30*time.Millisecond))
	e := newEnv(t)
	prefix := newPrefix()
	cfg := tokensource.Config{TokenURL: prov.TokenURL, ClientID: prov.ClientID(), ClientSecret: prov.ClientSecret()}
	ctx := context.Background()
	login, err := tokensource.New(e.store(t, prefix), &tokenstore.Token{UserName: "shared", GrantToken: prov.IssueGrant("shared")}, cfg,
		tokensource.WithRefreshMargin(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := login.TokenContext(ctx); err != nil {
		t.Fatal(err)
	}
	var held atomic.Int64 // GetSecretVersion calls: a version lease found held
	const procs = 6
	stop := time.Now().Add(5 * lifetime)
	var wg sync.WaitGroup
	for i := range procs {
		c, rec := newRecordedClient(t, e.srv)
		src, err := tokensource.New(newStore(t, c, prefix), &tokenstore.Token{UserName: "shared"}, cfg,
			tokensource.WithRefreshMargin(500*time.Millisecond), tokensource.WithLeaseTTL(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for n := 0; time.Now().Before(stop); n++ {
				if _, err := src.TokenContext(ctx); err != nil {
					t.Errorf("process %d, call %d: %v", i, n, err)
					return
				}
				time.Sleep(time.Duration(10+i*7) * time.Millisecond)
			}
			for _, c := range rec.take() {
				if c.Method == "GetSecretVersion" {
					held.Add(1)
				}
			}
		})
	}
	wg.Wait()
	refreshes := prov.Refreshes()
	t.Logf("%d refreshes over %v (token lifetime %v), %d refresh token reuses; %d GetSecretVersion (a version lease found held)",
		refreshes, 5*lifetime, lifetime, prov.RefreshTokenReuses(), held.Load())
	if prov.RefreshTokenReuses() != 0 {
		t.Fatalf("%d refresh token reuses", prov.RefreshTokenReuses())
	}
	// An expiry every 1.5 s (lifetime minus the margin) over 10 s: 6 or
	// 7 refreshes; the owner's early window and timing add a few.
	if refreshes < 4 || refreshes > 14 {
		t.Errorf("%d refreshes, want about one per expiry", refreshes)
	}
}
