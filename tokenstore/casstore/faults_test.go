package casstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore/casstoretest"
)

// userLog records, for one user, the operations made on it in order:
// which ones were acknowledged, and the access token each save wrote (""
// for a delete).
type userLog struct {
	ops []userOp
}

type userOp struct {
	access string // "" for a delete
	acked  bool
}

// possible returns the access tokens the user's record may hold now (""
// for no record): the effect of the last acknowledged operation, or of
// any unacknowledged one after it.
func (l *userLog) possible() []string {
	last := -1
	for i, op := range l.ops {
		if op.acked {
			last = i
		}
	}
	var out []string
	if last < 0 {
		out = append(out, "") // never acknowledged: maybe nothing
	}
	for i := max(last, 0); i < len(l.ops); i++ {
		if i == last || !l.ops[i].acked {
			out = append(out, l.ops[i].access)
		}
	}
	return out
}

// TestRandomFaults: 2 stores × 8 goroutines × 40 users over one backend,
// each store's calls failing at random (15%: before being applied, or
// applied with the response lost). Each user belongs to one goroutine,
// which saves, refreshes, rotates and deletes it in turn, so the state
// every acknowledged operation leaves is known; a last phase has every
// goroutine save the same users at once. Afterwards, with the faults off:
// no duplicates, no value that was never written, every acknowledged
// operation's effect present, and a clean Check after Repair.
func TestRandomFaults(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { randomFaults(t, seed) })
	}
}

func randomFaults(t *testing.T, seed uint64) {
	ctx := t.Context()
	const stores, workers, users, rounds = 2, 8, 40, 6
	b := casstore.NewMemoryBackend()
	opts := crashOptions(1)
	opts.ClaimWait = 20 * time.Millisecond
	var fbs []*casstoretest.FaultBackend
	var ss []*casstore.Store
	for i := range stores {
		fb := casstoretest.NewFaultBackend(b).Random(seed*100+uint64(i), 0.15)
		fbs = append(fbs, fb)
		ss = append(ss, casstore.New(fb, opts))
	}
	logs := make([]userLog, users)
	written := map[string]bool{}
	var wmu sync.Mutex
	user := func(u int) string { return fmt.Sprintf("user-%02d@example.com", u) }
	var wg sync.WaitGroup
	for si, s := range ss {
		for w := range workers {
			g := si*workers + w
			wg.Go(func() {
				for r := range rounds {
					for u := g; u < users; u += stores * workers {
						access := fmt.Sprintf("acc-%d-%d", u, r)
						refresh := fmt.Sprintf("ref-%d-%d", u, r/2) // rotates every other round
						wmu.Lock()
						written[access], written[refresh] = true, true
						wmu.Unlock()
						var err error
						if r == 3 {
							var tok *tokenstore.Token
							if tok, err = s.FindToken(ctx, &tokenstore.Token{UserName: user(u)}); err == nil {
								err = s.DeleteToken(ctx, tok.ID)
							}
							if errors.Is(err, tokenstore.ErrNotFound) {
								err = nil // nothing to delete
							}
							logs[u].ops = append(logs[u].ops, userOp{acked: err == nil})
							continue
						}
						err = s.SaveToken(ctx, &tokenstore.Token{UserName: user(u), ClientID: "cid", ClientSecret: "cs",
							AccessToken: access, RefreshToken: refresh})
						logs[u].ops = append(logs[u].ops, userOp{access: access, acked: err == nil})
					}
				}
			})
		}
	}
	wg.Wait()
	// Every goroutine saves the same four users at once.
	var contended sync.Map
	for si, s := range ss {
		for w := range workers {
			wg.Go(func() {
				for u := range 4 {
					access := fmt.Sprintf("contended-%d-%d-%d", u, si, w)
					wmu.Lock()
					written[access] = true
					wmu.Unlock()
					if err := s.SaveToken(ctx, &tokenstore.Token{UserName: user(u), ClientID: "cid", ClientSecret: "cs", AccessToken: access}); err == nil {
						contended.Store(access, true)
					}
				}
			})
		}
	}
	wg.Wait()
	injected := 0
	for _, fb := range fbs {
		for _, n := range fb.Injected() {
			injected += n
		}
		fb.Off()
	}
	checker := casstore.New(b, opts)
	rep, err := checker.Repair(ctx)
	if err != nil {
		t.Fatalf("Repair: %v", err)
	}
	if check, err := checker.Check(ctx); err != nil || !check.OK() {
		t.Fatalf("Check after Repair: %v %v", check, err)
	}
	all, err := checker.Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byUser := map[string][]*tokenstore.Token{}
	for _, tok := range all {
		byUser[tok.UserName] = append(byUser[tok.UserName], tok)
		if !written[tok.AccessToken] || !written[tok.RefreshToken] && tok.RefreshToken != "" {
			t.Errorf("user %s holds a value that was never written", tok.UserName)
		}
	}
	for u := range users {
		recs := byUser[user(u)]
		if len(recs) > 1 {
			t.Errorf("%s has %d records", user(u), len(recs))
			continue
		}
		got := ""
		if len(recs) == 1 {
			got = recs[0].AccessToken
		}
		if u < 4 {
			continue // overwritten by the contended phase: checked below
		}
		if want := logs[u].possible(); !slices.Contains(want, got) {
			t.Errorf("%s holds %q; after its operations %+v it may hold only %q", user(u), got, logs[u].ops, want)
		}
	}
	for u := range 4 {
		recs := byUser[user(u)]
		if len(recs) != 1 {
			t.Errorf("%s has %d records after the contended saves", user(u), len(recs))
		}
	}
	t.Logf("seed %d: %d faults injected; Repair: %s", seed, injected, rep)
}

// TestPausedSaveIsFenced: a process stalls between claiming a new user's
// keys and creating the document; another process saves the same user
// meanwhile (fencing the stalled claim); when the first one wakes up, its
// create fails and it updates the record the other made. One record, both
// saves acknowledged.
func TestPausedSaveIsFenced(t *testing.T) {
	ctx := context.Background()
	b := casstore.NewMemoryBackend()
	opts := crashOptions(1)
	fb := casstoretest.NewFaultBackend(b).At(3, casstoretest.Pause) // read bucket, claim, >create<
	slow, fast := casstore.New(fb, opts), casstore.New(b, opts)
	if err := fast.SaveToken(ctx, &tokenstore.Token{UserName: "other", AccessToken: "x"}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- slow.SaveToken(ctx, &tokenstore.Token{UserName: "u", ClientID: "c", ClientSecret: "s", RefreshToken: "r-slow"})
	}()
	<-fb.Paused()
	if err := fast.SaveToken(ctx, &tokenstore.Token{UserName: "u", ClientID: "c", ClientSecret: "s", AccessToken: "a-fast"}); err != nil {
		t.Fatal(err)
	}
	fb.Resume()
	if err := <-done; err != nil {
		t.Fatalf("the stalled save: %v", err)
	}
	all, _ := fast.Tokens(ctx)
	all = slices.DeleteFunc(all, func(t *tokenstore.Token) bool { return t.UserName == "other" })
	if len(all) != 1 || all[0].RefreshToken != "r-slow" || all[0].AccessToken != "a-fast" {
		t.Fatalf("records after both saves: %v", all)
	}
	if rep, _ := fast.Check(ctx); len(rep.Tombstones) != 1 {
		t.Fatalf("the fence should leave one tombstone: %s", rep)
	}
}
