package casstore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore/casstoretest"
)

// crashOptions are the options of every store of the crash tests: a short
// claim wait, so that a claim left by a crash is fenced within a test.
func crashOptions(buckets int) casstore.Options {
	return casstore.Options{
		IndexShards:    buckets,
		ClaimWait:      time.Millisecond,
		CleanupTimeout: 5 * time.Second,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// world is one run of the crash-point enumeration: a backend, the values
// ever sent to it, and the stores that play the processes.
type world struct {
	b       *casstore.MemoryBackend
	opts    casstore.Options
	mu      sync.Mutex
	written map[string]bool // every secret value ever saved
}

func newWorld(buckets int) *world {
	return &world{b: casstore.NewMemoryBackend(), opts: crashOptions(buckets), written: map[string]bool{}}
}

// store returns a new store on the world's backend (a new process).
func (w *world) store() *casstore.Store { return casstore.New(w.b, w.opts) }

// tok returns a token of user with the given secrets, recording them as
// written.
func (w *world) tok(user, access, refresh, grant string) *tokenstore.Token {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, v := range []string{access, refresh, grant} {
		if v != "" {
			w.written[v] = true
		}
	}
	return &tokenstore.Token{UserName: user, ClientID: "cid", ClientSecret: "cs", AccessToken: access, RefreshToken: refresh, GrantToken: grant}
}

// crashOp is a mutating operation under test: setup prepares the world
// with a healthy store and returns the state the run needs; run does the
// operation with the store under test; acked checks, when run returned
// nil, that its effect is there.
type crashOp struct {
	name  string
	setup func(t *testing.T, w *world) *tokenstore.Token
	run   func(ctx context.Context, w *world, s *casstore.Store, u *tokenstore.Token) error
	after string // the user the normal operation saves afterwards
	acked func(t *testing.T, w *world, s *casstore.Store, u *tokenstore.Token)
}

func mustSave(t *testing.T, s *casstore.Store, tok *tokenstore.Token) *tokenstore.Token {
	t.Helper()
	if err := s.SaveToken(t.Context(), tok); err != nil {
		t.Fatalf("setup save: %v", err)
	}
	return tok
}

func wantRecord(t *testing.T, s *casstore.Store, q *tokenstore.Token, check func(*tokenstore.Token) bool) {
	t.Helper()
	got, err := s.FindToken(t.Context(), q)
	if err != nil || !check(got) {
		t.Errorf("acknowledged save lost: FindToken(%v) = %v, %v", q, got, err)
	}
}

func crashOps() []crashOp {
	return []crashOp{
		{name: "insert", after: "u",
			setup: func(t *testing.T, w *world) *tokenstore.Token {
				mustSave(t, w.store(), w.tok("other", "a-o", "r-o", "g-o"))
				return nil
			},
			run: func(ctx context.Context, w *world, s *casstore.Store, _ *tokenstore.Token) error {
				return s.SaveToken(ctx, w.tok("u", "a1", "r1", "g1"))
			},
			acked: func(t *testing.T, w *world, s *casstore.Store, _ *tokenstore.Token) {
				wantRecord(t, s, &tokenstore.Token{UserName: "u"}, func(g *tokenstore.Token) bool { return g.RefreshToken == "r1" && g.GrantToken == "g1" })
			}},
		{name: "update-adds-keys", after: "u",
			setup: func(t *testing.T, w *world) *tokenstore.Token {
				return mustSave(t, w.store(), w.tok("u", "a0", "", ""))
			},
			run: func(ctx context.Context, w *world, s *casstore.Store, _ *tokenstore.Token) error {
				return s.SaveToken(ctx, w.tok("u", "", "r1", "g1"))
			},
			acked: func(t *testing.T, w *world, s *casstore.Store, _ *tokenstore.Token) {
				wantRecord(t, s, &tokenstore.Token{ClientID: "cid", ClientSecret: "cs", RefreshToken: "r1"}, func(g *tokenstore.Token) bool { return g.UserName == "u" })
			}},
		{name: "update-renames", after: "u2",
			setup: func(t *testing.T, w *world) *tokenstore.Token {
				return mustSave(t, w.store(), w.tok("u", "a0", "r0", ""))
			},
			run: func(ctx context.Context, w *world, s *casstore.Store, u *tokenstore.Token) error {
				nt := w.tok("u2", "a-renamed", "", "")
				nt.ID = u.ID
				return s.SaveToken(ctx, nt)
			},
			acked: func(t *testing.T, w *world, s *casstore.Store, u *tokenstore.Token) {
				wantRecord(t, s, &tokenstore.Token{UserName: "u2"}, func(g *tokenstore.Token) bool { return g.ID == u.ID })
			}},
		{name: "rotation", after: "u",
			setup: func(t *testing.T, w *world) *tokenstore.Token {
				return mustSave(t, w.store(), w.tok("u", "a0", "r0", "g0"))
			},
			run: func(ctx context.Context, w *world, s *casstore.Store, u *tokenstore.Token) error {
				nt := w.tok("", "a1", "r1", "")
				nt.ID = u.ID
				return s.SaveToken(ctx, nt)
			},
			acked: func(t *testing.T, w *world, s *casstore.Store, u *tokenstore.Token) {
				wantRecord(t, s, &tokenstore.Token{ClientID: "cid", ClientSecret: "cs", RefreshToken: "r1"}, func(g *tokenstore.Token) bool { return g.ID == u.ID })
			}},
		{name: "delete", after: "u",
			setup: func(t *testing.T, w *world) *tokenstore.Token {
				return mustSave(t, w.store(), w.tok("u", "a0", "r0", "g0"))
			},
			run: func(ctx context.Context, w *world, s *casstore.Store, u *tokenstore.Token) error {
				return s.DeleteToken(ctx, u.ID)
			},
			acked: func(t *testing.T, w *world, s *casstore.Store, u *tokenstore.Token) {
				if _, err := s.FindTokenByID(t.Context(), u.ID); !errors.Is(err, tokenstore.ErrNotFound) {
					t.Errorf("acknowledged delete: token still found (%v)", err)
				}
			}},
		{name: "delete-tokens", after: "u",
			setup: func(t *testing.T, w *world) *tokenstore.Token {
				s := w.store()
				mustSave(t, s, w.tok("v", "a-v", "r-v", ""))
				mustSave(t, s, w.tok("x", "a-x", "", "g-x"))
				return mustSave(t, s, w.tok("u", "a0", "r0", "g0"))
			},
			run: func(ctx context.Context, w *world, s *casstore.Store, _ *tokenstore.Token) error {
				return s.DeleteTokens(ctx)
			},
			acked: func(t *testing.T, w *world, s *casstore.Store, u *tokenstore.Token) {
				for _, user := range []string{"v", "x"} {
					if _, err := s.FindToken(t.Context(), &tokenstore.Token{UserName: user}); !errors.Is(err, tokenstore.ErrNotFound) {
						t.Errorf("acknowledged DeleteTokens: %s still found (%v)", user, err)
					}
				}
			}},
		{name: "acquire-lease", after: "u",
			setup: func(t *testing.T, w *world) *tokenstore.Token {
				return mustSave(t, w.store(), w.tok("u", "a0", "r0", ""))
			},
			run: func(ctx context.Context, w *world, s *casstore.Store, u *tokenstore.Token) error {
				ok, err := s.AcquireLease(ctx, u.ID, "holder", time.Minute)
				if err == nil && !ok {
					err = errors.New("lease refused")
				}
				return err
			}},
		{name: "release-lease", after: "u",
			setup: func(t *testing.T, w *world) *tokenstore.Token {
				s := w.store()
				u := mustSave(t, s, w.tok("u", "a0", "r0", ""))
				if ok, err := s.AcquireLease(t.Context(), u.ID, "holder", time.Minute); !ok || err != nil {
					t.Fatalf("setup lease: %v %v", ok, err)
				}
				return u
			},
			run: func(ctx context.Context, w *world, s *casstore.Store, u *tokenstore.Token) error {
				return s.ReleaseLease(ctx, u.ID, "holder")
			}},
		{name: "import", after: "u",
			setup: func(t *testing.T, w *world) *tokenstore.Token {
				mustSave(t, w.store(), w.tok("other", "a-o", "r-o", ""))
				return nil
			},
			run: func(ctx context.Context, w *world, s *casstore.Store, _ *tokenstore.Token) error {
				nt := w.tok("u", "a1", "r1", "")
				nt.ID = "imported-1"
				return s.ImportToken(ctx, nt)
			},
			acked: func(t *testing.T, w *world, s *casstore.Store, _ *tokenstore.Token) {
				wantRecord(t, s, &tokenstore.Token{UserName: "u"}, func(g *tokenstore.Token) bool { return g.ID == "imported-1" && g.RefreshToken == "r1" })
			}},
	}
}

// TestCrashPoints enumerates, for every mutating operation, every backend
// call it makes, and at each call each fault: the call fails before it is
// applied; it is applied and its response lost; the process crashes
// before it (every later call fails); it is applied and then the process
// crashes. After each run it checks the invariants after one normal save
// of the same user by another process, and again after Repair.
func TestCrashPoints(t *testing.T) {
	total := 0
	for _, buckets := range []int{1, 4} {
		for _, op := range crashOps() {
			// A clean run counts the calls of the operation.
			w := newWorld(buckets)
			u := op.setup(t, w)
			fb := casstoretest.NewFaultBackend(w.b)
			if err := op.run(t.Context(), w, casstore.New(fb, w.opts), u); err != nil {
				t.Fatalf("%s: clean run: %v", op.name, err)
			}
			n := fb.Calls()
			for k := 1; k <= n; k++ {
				for _, fault := range casstoretest.Faults {
					name := fmt.Sprintf("buckets=%d/%s/call-%d-of-%d/%s", buckets, op.name, k, n, fault)
					total++
					t.Run(name, func(t *testing.T) { runCrashPoint(t, buckets, op, k, fault) })
				}
			}
		}
	}
	t.Logf("%d crash points enumerated", total)
}

func runCrashPoint(t *testing.T, buckets int, op crashOp, k int, fault casstoretest.Fault) {
	ctx := t.Context()
	w := newWorld(buckets)
	u := op.setup(t, w)
	fb := casstoretest.NewFaultBackend(w.b).At(k, fault)
	normal := w.store()
	// One normal operation on the same user, by another process: it must
	// succeed (no user locked out). With Pause it runs while the operation
	// under test is stalled, with Delay before the held-back call lands.
	normalSave := func() {
		t.Helper()
		if err := normal.SaveToken(ctx, w.tok(op.after, "after", "", "")); err != nil {
			t.Fatalf("the next save of %q (%v at call %d): %v\nfaults: %v", op.after, fault, k, err, fb.Log())
		}
	}
	done := make(chan error, 1)
	go func() { done <- op.run(ctx, w, casstore.New(fb, w.opts), u) }()
	var err error
	switch fault {
	case casstoretest.Pause:
		select {
		case <-fb.Paused():
			normalSave()
			fb.Resume()
			err = <-done
		case err = <-done:
			normalSave()
		}
	default:
		err = <-done
		if err == nil && op.acked != nil {
			op.acked(t, w, w.store(), u)
		}
		normalSave()
		fb.ApplyDelayed()
	}
	if err == nil && op.acked != nil {
		op.acked(t, w, normal, u)
	}
	w.verify(t, "after one normal save", normal, false)
	rep, rerr := normal.Repair(ctx)
	if rerr != nil {
		t.Fatalf("Repair: %v", rerr)
	}
	w.verify(t, "after Repair "+rep.String(), w.store(), true)
}

// verify asserts the invariants: no two records for a key; every listed
// token findable by each of its keys and every live document listed (no
// orphan); no value that was never written; and, with clean, a clean
// Check.
func (w *world) verify(t *testing.T, when string, s *casstore.Store, clean bool) {
	t.Helper()
	ctx := t.Context()
	rep, err := s.Check(ctx)
	if err != nil {
		t.Fatalf("%s: Check: %v", when, err)
	}
	if len(rep.Duplicates)+len(rep.Unindexed)+len(rep.MissingKeys)+len(rep.Corrupt) > 0 || (clean && !rep.OK()) {
		t.Fatalf("%s: %s", when, rep)
	}
	listed, err := s.Tokens(ctx)
	if err != nil {
		t.Fatalf("%s: Tokens: %v", when, err)
	}
	ids := map[string]bool{}
	for _, tok := range listed {
		ids[tok.ID] = true
		for _, v := range []string{tok.AccessToken, tok.RefreshToken, tok.GrantToken} {
			if v != "" && !w.written[v] {
				t.Fatalf("%s: token %s holds a value that was never written", when, tok.ID)
			}
		}
		if tok.UserName != "" {
			if got, err := s.FindToken(ctx, &tokenstore.Token{UserName: tok.UserName}); err != nil || got.ID != tok.ID {
				t.Fatalf("%s: listed token %s not found by user: %v %v", when, tok.ID, got, err)
			}
		}
		if tok.RefreshToken != "" {
			if got, err := s.FindToken(ctx, &tokenstore.Token{ClientID: tok.ClientID, ClientSecret: "cs", RefreshToken: tok.RefreshToken}); err != nil || got.ID != tok.ID {
				t.Fatalf("%s: listed token %s not found by refresh token: %v %v", when, tok.ID, got, err)
			}
		}
	}
	names, _ := w.b.List(ctx)
	for _, n := range names {
		id, ok := strings.CutPrefix(n, "token-")
		if !ok {
			continue
		}
		obj, err := w.b.Read(ctx, n)
		if err != nil {
			continue
		}
		tok, meta, err := tokenstore.UnmarshalStored(obj.Value)
		if err != nil {
			t.Fatalf("%s: document %s: %v", when, n, err)
		}
		if meta.Deleted == 0 && !ids[id] {
			t.Fatalf("%s: live document %s (user %q) is not listed: an orphan", when, id, tok.UserName)
		}
	}
	users := map[string]int{}
	for _, tok := range listed {
		users[tok.UserName]++
	}
	for user, n := range users {
		if user != "" && n > 1 {
			t.Fatalf("%s: %d records for user %q", when, n, user)
		}
	}
}
