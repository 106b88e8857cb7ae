package casstore_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/observe"
	"github.com/cloudtokens/cloudtokens/observe/observetest"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/index"
)

// slowCreates is a backend whose token creates take delay: a slow or
// throttled cloud, on which a save spends that long between its claims
// and its document. (A fence's tombstone is created at once, so that a
// fence is not outrun by the create it fences.)
type slowCreates struct {
	*casstore.MemoryBackend
	delay time.Duration
}

func (s slowCreates) Create(ctx context.Context, name string, value []byte) (string, error) {
	if strings.HasPrefix(name, "token-") && !strings.Contains(string(value), `"deleted"`) {
		time.Sleep(s.delay)
	}
	return s.MemoryBackend.Create(ctx, name, value)
}

// Two processes sign up the same user at once on a backend where a save
// takes longer than Options.ClaimWait from claim to document. A Store that
// has seen its own saves take that long waits for the other's claim
// instead of fencing it (which would only make the other save start
// again, and on an overloaded backend each restart slows everyone
// further); a Store that has not, fences, as before. The wait does not
// spend the save's attempts: with 3 (a few milliseconds of retries) the
// waiting save still outlasts the other's.
func TestClaimWaitFollowsSlowSaves(t *testing.T) {
	const delay, claimWait = 400 * time.Millisecond, 20 * time.Millisecond
	for _, c := range []struct {
		name     string
		warm     bool
		attempts int
	}{{"cold", false, 0}, {"after slow saves", true, 0}, {"after slow saves, 3 attempts", true, 3}} {
		warm := c.warm
		t.Run(c.name, func(t *testing.T) {
			ctx := t.Context()
			b := slowCreates{MemoryBackend: casstore.NewMemoryBackend(), delay: delay}
			recs := []*observetest.Recorder{{}, {}}
			quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
			var stores []*casstore.Store
			for i, rec := range recs {
				s := casstore.New(b, casstore.Options{ClaimWait: claimWait, MaxAttempts: c.attempts, Observer: rec, Logger: quiet})
				stores = append(stores, s)
				if !warm {
					continue
				}
				for u := range 2 {
					user := "warm-" + string(rune('a'+i)) + string(rune('0'+u))
					if err := s.SaveToken(ctx, &tokenstore.Token{UserName: user, RefreshToken: "r-" + user}); err != nil {
						t.Fatal(err)
					}
				}
			}
			var wg sync.WaitGroup
			errs := make([]error, len(stores))
			for i, s := range stores {
				wg.Go(func() {
					errs[i] = s.SaveToken(ctx, &tokenstore.Token{UserName: "both", RefreshToken: "r-both", AccessToken: "a" + string(rune('0'+i))})
				})
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("store %d: %v", i, err)
				}
			}
			fences := len(recs[0].Events(observe.Fence)) + len(recs[1].Events(observe.Fence))
			switch {
			case warm && fences != 0:
				t.Errorf("%d fences; want none: both stores know a save takes about %v here", fences, delay)
			case !warm && fences == 0:
				t.Errorf("no fence; want the claim fenced after ClaimWait (%v), the test's control", claimWait)
			}
			toks, err := stores[0].Tokens(ctx)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, tok := range toks {
				if tok.UserName == "both" {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%d tokens of the user, want 1", n)
			}
			assertClean(t, stores[1])
		})
	}
}

// rivalWrites is a backend on which another writer rewrites an index
// bucket just before each of the next n index updates: every one of them
// loses its compare-and-swap.
type rivalWrites struct {
	*casstore.MemoryBackend
	n atomic.Int64
}

func (r *rivalWrites) Update(ctx context.Context, name string, value []byte, version string) (string, error) {
	if strings.HasPrefix(name, "index-") && r.n.Add(-1) >= 0 {
		n, _ := strconv.Atoi(strings.TrimPrefix(name, "index-"))
		cur, err := r.MemoryBackend.Read(ctx, name)
		if err != nil {
			return "", err
		}
		b, err := index.Decode(cur.Value, n)
		if err != nil {
			return "", err
		}
		b.Gen++ // the rival's write: the next generation of the bucket
		next, err := b.Encode()
		if err != nil {
			return "", err
		}
		if _, err := r.MemoryBackend.Update(ctx, name, next, cur.Version); err != nil {
			return "", err
		}
	}
	return r.MemoryBackend.Update(ctx, name, value, version)
}

// A delete whose release of the index entries loses more compare-and-swap
// races than Options.MaxAttempts (a busy bucket, many processes) keeps
// trying within the clean-up time: a token ID's entry is never claimed
// again, so an entry left behind would stay until Repair.
func TestReleaseOutlastsABusyBucket(t *testing.T) {
	ctx := t.Context()
	b := &rivalWrites{MemoryBackend: casstore.NewMemoryBackend()}
	s := casstore.New(b, casstore.Options{MaxAttempts: 3, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	tok := &tokenstore.Token{UserName: "u", RefreshToken: "r"}
	if err := s.SaveToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	b.n.Store(3*3 + 1) // more than three releases' worth of attempts
	if err := s.DeleteToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if left := b.n.Load(); left > 0 {
		t.Fatalf("%d rival writes left over: the release stopped early", left)
	}
	rep, err := s.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Tokens != 0 {
		t.Errorf("Check after the delete: %v; want no tokens and no entries", rep)
	}
}

// throttledOnce refuses the first update of each index bucket with
// casstore.ErrThrottled, applying nothing, as GCP's per-secret write rate
// does after the adapter's own retries.
type throttledOnce struct {
	*casstore.MemoryBackend
	mu      sync.Mutex
	refused map[string]bool
}

func (b *throttledOnce) Update(ctx context.Context, name string, value []byte, version string) (string, error) {
	b.mu.Lock()
	first := strings.HasPrefix(name, "index-") && !b.refused[name]
	if first {
		b.refused[name] = true
	}
	b.mu.Unlock()
	if first {
		return "", fmt.Errorf("emulated RESOURCE_EXHAUSTED: %w", casstore.ErrThrottled)
	}
	return b.MemoryBackend.Update(ctx, name, value, version)
}

// An index write the backend refuses for its rate is tried again from a
// fresh read: the saves that wait on it succeed.
func TestThrottledIndexWriteIsRetried(t *testing.T) {
	ctx := t.Context()
	b := &throttledOnce{MemoryBackend: casstore.NewMemoryBackend(), refused: map[string]bool{}}
	s := casstore.New(b, casstore.Options{})
	for i := range 3 {
		if err := s.SaveToken(ctx, zohoToken(i)); err != nil {
			t.Fatalf("save %d: %v", i, err)
		}
	}
	if !b.refused["index-0"] {
		t.Fatal("no index write was refused: the test did not exercise the retry")
	}
	rep, err := s.Check(ctx)
	if err != nil || !rep.OK() || rep.Tokens != 3 {
		t.Fatalf("Check: %v (%v)", rep, err)
	}
}
