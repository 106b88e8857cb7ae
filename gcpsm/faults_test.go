package gcpsm_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cloudtokens/cloudtokens/gcpsm"
	"github.com/cloudtokens/cloudtokens/gcpsm/gcpsmtest"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// injector fails chosen RPCs with a code, a given number of times each,
// before the service sees them (the request is not applied).
type injector struct {
	mu    sync.Mutex
	left  map[string]int // method -> failures still to inject
	code  map[string]codes.Code
	count map[string]int // failures injected
}

func newInjector() *injector {
	return &injector{left: map[string]int{}, code: map[string]codes.Code{}, count: map[string]int{}}
}

func (in *injector) fail(method string, code codes.Code, times int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.left[method], in.code[method] = times, code
}

func (in *injector) injected(method string) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.count[method]
}

func (in *injector) option() gcpsmtest.Option {
	return gcpsmtest.WithServerOptions(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		m := info.FullMethod[strings.LastIndexByte(info.FullMethod, '/')+1:]
		in.mu.Lock()
		fail := in.left[m] > 0
		if fail {
			in.left[m]--
			in.count[m]++
		}
		code := in.code[m]
		in.mu.Unlock()
		if fail {
			return nil, status.Errorf(code, "injected %v", code)
		}
		return h(ctx, req)
	}))
}

// newerThanCurrent returns the billed versions of a secret above the one
// its current alias names (stray versions a failed write left behind).
func (e *env) newerThanCurrent(t *testing.T, id string) []string {
	t.Helper()
	ctx := context.Background()
	sec, err := e.raw.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: secretPath(id)})
	if err != nil {
		t.Fatal(err)
	}
	cur := sec.GetVersionAliases()[gcpsm.CurrentAlias]
	var out []string
	it := e.raw.ListSecretVersions(ctx, &secretmanagerpb.ListSecretVersionsRequest{Parent: secretPath(id), Filter: "state:ENABLED OR state:DISABLED"})
	for v, err := it.Next(); err == nil; v, err = it.Next() {
		var n int64
		fmt.Sscan(v.GetName()[strings.LastIndexByte(v.GetName(), '/')+1:], &n)
		if n > cur {
			out = append(out, v.GetName())
		}
	}
	return out
}

// wantVersions fails t unless secret id has exactly live billed versions,
// none of them newer than the current one.
func (e *env) wantVersions(t *testing.T, id string, live int) {
	t.Helper()
	if stray := e.newerThanCurrent(t, id); len(stray) != 0 {
		t.Errorf("%s: stray versions newer than current: %v", id, stray)
	}
	if n := e.live(t, id); n != live {
		t.Errorf("%s: %d billed versions, want %d", id, n, live)
	}
}

// TestTransientErrorsAreRetried: RESOURCE_EXHAUSTED on the alias move and
// on AddSecretVersion, and UNAVAILABLE on GetSecret, are retried; the
// save succeeds and leaves no stray version.
func TestTransientErrorsAreRetried(t *testing.T) {
	in := newInjector()
	e := newEnv(t, in.option())
	ctx := context.Background()
	prefix := newPrefix()
	s := e.store(t, prefix)
	tk := tok("throttled")
	if err := s.SaveToken(ctx, tk); err != nil {
		t.Fatal(err)
	}
	id := s.SecretID(tk.ID)
	in.fail("UpdateSecret", codes.ResourceExhausted, 1)
	if err := s.SaveToken(ctx, &tokenstore.Token{ID: tk.ID, AccessToken: "access-VALUE-2"}); err != nil {
		t.Fatalf("save with one RESOURCE_EXHAUSTED on UpdateSecret: %v", err)
	}
	in.fail("AddSecretVersion", codes.ResourceExhausted, 2)
	if err := s.SaveToken(ctx, &tokenstore.Token{ID: tk.ID, AccessToken: "access-VALUE-3"}); err != nil {
		t.Fatalf("save with RESOURCE_EXHAUSTED on AddSecretVersion: %v", err)
	}
	in.fail("GetSecret", codes.Unavailable, 1)
	if err := e.store(t, prefix).SaveToken(ctx, &tokenstore.Token{ID: tk.ID, AccessToken: "access-VALUE-4"}); err != nil {
		t.Fatalf("save with UNAVAILABLE on GetSecret: %v", err)
	}
	if n := in.injected("UpdateSecret") + in.injected("AddSecretVersion") + in.injected("GetSecret"); n != 4 {
		t.Fatalf("%d failures injected, want 4", n)
	}
	got, err := s.FindTokenByID(ctx, tk.ID)
	if err != nil || got.AccessToken != "access-VALUE-4" {
		t.Fatalf("token after the retried saves: %v, %v", got, err)
	}
	e.wantVersions(t, id, 2)
}

// TestExhaustedRetriesDestroyTheVersion: when RESOURCE_EXHAUSTED outlasts
// the retries on the alias move, the save fails with that status (and
// casstore.ErrThrottled) and the version it added is destroyed: nothing
// newer than current is billed.
func TestExhaustedRetriesDestroyTheVersion(t *testing.T) {
	in := newInjector()
	e := newEnv(t, in.option())
	ctx := context.Background()
	s := e.store(t, newPrefix(), gcpsm.WithTransientRetries(1))
	tk := tok("exhausted")
	if err := s.SaveToken(ctx, tk); err != nil {
		t.Fatal(err)
	}
	id := s.SecretID(tk.ID)
	in.fail("UpdateSecret", codes.ResourceExhausted, 2)
	err := s.SaveToken(ctx, &tokenstore.Token{ID: tk.ID, AccessToken: "access-VALUE-2"})
	if status.Code(err) != codes.ResourceExhausted || !errors.Is(err, casstore.ErrThrottled) {
		t.Fatalf("save = %v, want RESOURCE_EXHAUSTED wrapping casstore.ErrThrottled", err)
	}
	assertNoSecrets(t, "error", err.Error())
	e.wantVersions(t, id, 1)
	if got, err := s.FindTokenByID(ctx, tk.ID); err != nil || got.AccessToken != tk.AccessToken {
		t.Fatalf("token after the failed save: %v, %v", got, err)
	}
	// The next save works.
	if err := s.SaveToken(ctx, &tokenstore.Token{ID: tk.ID, AccessToken: "access-VALUE-3"}); err != nil {
		t.Fatal(err)
	}
}

// TestSecretWriteRateIsRetried: with the documented per-secret write rate
// enforced (2 AddSecretVersion + UpdateSecret per second), back-to-back
// refreshes of one token are throttled and retried, and all succeed. The
// emulator's clock moves a second whenever the client sees
// RESOURCE_EXHAUSTED, standing in for the time the backoff waits.
func TestSecretWriteRateIsRetried(t *testing.T) {
	clock := gcpsmtest.NewManualClock(epoch)
	srv := gcpsmtest.Start(t, gcpsmtest.WithClock(clock.Now), gcpsmtest.WithSecretWriteRate(gcpsmtest.DocumentedSecretWriteRate()))
	tick := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if status.Code(err) == codes.ResourceExhausted {
			clock.Advance(time.Second)
		}
		return err
	}
	client := newClient(t, srv, option.WithGRPCDialOption(grpc.WithChainUnaryInterceptor(tick)))
	ctx := context.Background()
	s := newStore(t, client, newPrefix())
	tk := tok("rated")
	if err := s.SaveToken(ctx, tk); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if err := s.SaveToken(ctx, &tokenstore.Token{ID: tk.ID, AccessToken: fmt.Sprintf("access-VALUE-%d", i)}); err != nil {
			t.Fatalf("refresh %d: %v", i, err)
		}
	}
	if srv.Throttled() == 0 {
		t.Error("no request was throttled: the rate limit was not exercised")
	}
	t.Logf("%d requests throttled and retried", srv.Throttled())
	got, err := s.FindTokenByID(ctx, tk.ID)
	if err != nil || got.AccessToken != "access-VALUE-5" {
		t.Fatalf("token: %v, %v", got, err)
	}
}

// TestWritesOfOneSecretArePaced: once the service has refused a write
// with RESOURCE_EXHAUSTED, a Store keeps its own writes of one secret
// within the documented rate (2 AddSecretVersion + UpdateSecret a
// second), so back-to-back refreshes of one token wait for the window
// instead of drawing RESOURCE_EXHAUSTED: only the first is throttled.
func TestWritesOfOneSecretArePaced(t *testing.T) {
	srv := gcpsmtest.Start(t, gcpsmtest.WithSecretWriteRate(gcpsmtest.DocumentedSecretWriteRate()))
	ctx := t.Context()
	s := newStore(t, newClient(t, srv), newPrefix())
	tk := tok("paced")
	if err := s.SaveToken(ctx, tk); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := s.SaveToken(ctx, &tokenstore.Token{ID: tk.ID, AccessToken: fmt.Sprintf("access-VALUE-%d", i)}); err != nil {
			t.Fatalf("refresh %d: %v", i, err)
		}
	}
	if n := srv.Throttled(); n != 1 {
		t.Errorf("%d requests throttled; want 1, the first, then the Store paces its writes of one secret", n)
	}
}

// TestCancellation: every error of a call cut short by its context wraps
// context.Canceled or context.DeadlineExceeded.
func TestCancellation(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, newPrefix())
	tk := tok("cancel")
	if err := s.SaveToken(context.Background(), tk); err != nil {
		t.Fatal(err)
	}
	b := gcpsm.BackendOf(s)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	for _, c := range []struct {
		ctx  context.Context
		want error
	}{{canceled, context.Canceled}, {expired, context.DeadlineExceeded}} {
		calls := map[string]error{}
		_, calls["Read"] = b.Read(c.ctx, casstore.TokenName(tk.ID))
		_, calls["Update"] = b.Update(c.ctx, casstore.TokenName(tk.ID), []byte("{}"), "1")
		_, calls["Create"] = b.Create(c.ctx, "token-new", []byte("{}"))
		calls["Delete"] = b.Delete(c.ctx, casstore.TokenName(tk.ID))
		_, calls["List"] = b.(casstore.Lister).List(c.ctx)
		_, calls["DestroyStaleVersions"] = s.DestroyStaleVersions(c.ctx)
		for op, err := range calls {
			if !errors.Is(err, c.want) {
				t.Errorf("%s with an ended context: %v, want %v", op, err, c.want)
			}
		}
	}
	if _, err := s.FindTokenByID(context.Background(), tk.ID); err != nil {
		t.Fatalf("the token after canceled calls: %v", err)
	}
}

// TestCancelDuringMove: the caller's context ends while UpdateSecret is in
// flight and the move never reaches the service. The save fails with an
// error wrapping context.Canceled; the store settles the move on its own
// context, so the version it added is destroyed and the token keeps its
// old value.
func TestCancelDuringMove(t *testing.T) {
	var cancelCall atomic.Pointer[context.CancelFunc]
	hook := grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if _, ok := req.(*secretmanagerpb.UpdateSecretRequest); ok {
			if c := cancelCall.Swap(nil); c != nil {
				(*c)()
				<-ctx.Done() // the client's cancellation reaches the server
				return nil, status.FromContextError(ctx.Err()).Err()
			}
		}
		return h(ctx, req)
	})
	e := newEnv(t, gcpsmtest.WithServerOptions(hook))
	var logs bytes.Buffer
	s := e.store(t, newPrefix(), gcpsm.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	tk := tok("cancel-move")
	if err := s.SaveToken(context.Background(), tk); err != nil {
		t.Fatal(err)
	}
	id := s.SecretID(tk.ID)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cancelCall.Store(&cancel)
	err := s.SaveToken(ctx, &tokenstore.Token{ID: tk.ID, AccessToken: "access-VALUE-2"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("save canceled during the move: %v, want context.Canceled", err)
	}
	assertNoSecrets(t, "error", err.Error())
	e.wantVersions(t, id, 1)
	got, err := s.FindTokenByID(context.Background(), tk.ID)
	if err != nil || got.AccessToken != tk.AccessToken {
		t.Fatalf("token after the canceled save: %v, %v", got, err)
	}
	assertNoSecrets(t, "log", logs.String())
	if strings.Contains(logs.String(), tk.UserName) {
		t.Errorf("the log names the user: %s", logs.String())
	}
}

// ignoreAliases acknowledges UpdateSecret without changing the aliases,
// as a third-party emulator does: it applies a labels-only update instead.
func ignoreAliases(on *atomic.Bool) gcpsmtest.Option {
	return gcpsmtest.WithServerOptions(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if r, ok := req.(*secretmanagerpb.UpdateSecretRequest); ok && on.Load() {
			r.Secret.VersionAliases = nil
			r.UpdateMask.Paths = []string{"annotations"}
		}
		return h(ctx, req)
	}))
}

// TestAliasNotMoved: a server that acknowledges UpdateSecret but ignores
// the aliases must not turn writes into silent losses: the save fails with
// ErrAliasNotMoved and the version it added is destroyed.
func TestAliasNotMoved(t *testing.T) {
	var on atomic.Bool
	e := newEnv(t, ignoreAliases(&on))
	ctx := context.Background()
	s := e.store(t, newPrefix())
	tk := tok("ignored")
	if err := s.SaveToken(ctx, tk); err != nil {
		t.Fatal(err)
	}
	on.Store(true)
	err := s.SaveToken(ctx, &tokenstore.Token{ID: tk.ID, AccessToken: "access-VALUE-2"})
	if !errors.Is(err, gcpsm.ErrAliasNotMoved) || !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("refresh on a server that ignores aliases: %v, want ErrAliasNotMoved", err)
	}
	assertNoSecrets(t, "error", err.Error())
	e.wantVersions(t, s.SecretID(tk.ID), 1)
	// A new token: its create fails loudly too, and nothing claims it was
	// saved.
	nt := tok("never")
	if err := s.SaveToken(ctx, nt); !errors.Is(err, gcpsm.ErrAliasNotMoved) {
		t.Fatalf("insert: %v, want ErrAliasNotMoved", err)
	}
	on.Store(false)
	if _, err := s.FindToken(ctx, &tokenstore.Token{UserName: "never"}); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Errorf("the failed insert: %v, want ErrNotFound", err)
	}
	got, err := s.FindTokenByID(ctx, tk.ID)
	if err != nil || got.AccessToken != tk.AccessToken {
		t.Fatalf("token: %v, %v", got, err)
	}
}

// TestDestroyStaleVersionsDuringWrite: DestroyStaleVersions runs between
// a write's AddSecretVersion and its UpdateSecret. It sees a version newer
// than current, fences the secret and destroys the version; the write's
// move then fails, and the write is made again: it succeeds, and nothing
// is lost or left behind.
func TestDestroyStaleVersionsDuringWrite(t *testing.T) {
	var s *gcpsm.Store
	var during atomic.Bool
	var destroyed atomic.Int64
	hook := grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if _, ok := req.(*secretmanagerpb.UpdateSecretRequest); ok && during.CompareAndSwap(true, false) {
			n, err := s.DestroyStaleVersions(context.Background())
			if err != nil {
				return nil, err
			}
			destroyed.Store(int64(n))
		}
		return h(ctx, req)
	})
	e := newEnv(t, gcpsmtest.WithServerOptions(hook))
	ctx := context.Background()
	s = e.store(t, newPrefix())
	tk := tok("pruned")
	if err := s.SaveToken(ctx, tk); err != nil {
		t.Fatal(err)
	}
	id := s.SecretID(tk.ID)
	during.Store(true)
	e.rec.take()
	if err := s.SaveToken(ctx, &tokenstore.Token{ID: tk.ID, AccessToken: "access-VALUE-2"}); err != nil {
		t.Fatalf("save during DestroyStaleVersions: %v", err)
	}
	if destroyed.Load() != 1 {
		t.Errorf("DestroyStaleVersions destroyed %d versions, want 1 (the write's first version)", destroyed.Load())
	}
	got, err := s.FindTokenByID(ctx, tk.ID)
	if err != nil || got.AccessToken != "access-VALUE-2" {
		t.Fatalf("token: %v, %v", got, err)
	}
	e.wantVersions(t, id, 2)
}

func TestOptionValidation(t *testing.T) {
	e := newEnv(t)
	for name, opts := range map[string][]gcpsm.Option{
		"nil option":           {nil},
		"nil among valid ones": {gcpsm.WithIndexCache(true), nil},
		"negative retries":     {gcpsm.WithTransientRetries(-1)},
		"negative stale wait":  {gcpsm.WithStaleReadWait(-time.Second)},
	} {
		if _, err := gcpsm.New(context.Background(), e.client, testProject, "p", opts...); !errors.Is(err, gcpsm.ErrInvalidConfig) {
			t.Errorf("%s: New = %v, want ErrInvalidConfig", name, err)
		}
	}
	for name, o := range map[string]gcpsm.Option{
		"no retries":     gcpsm.WithTransientRetries(0),
		"no stale wait":  gcpsm.WithStaleReadWait(0),
		"patient reader": gcpsm.WithStaleReadWait(time.Minute),
	} {
		if _, err := gcpsm.New(context.Background(), e.client, testProject, "p", o); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if !slices.Contains([]error{errors.Unwrap(gcpsm.ErrStaleAlias)}, tokenstore.ErrConflict) {
		t.Error("ErrStaleAlias does not wrap tokenstore.ErrConflict")
	}
}
