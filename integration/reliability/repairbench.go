package reliability

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/proctest"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// RepairFigures is what BenchRepair measured on one store.
type RepairFigures struct {
	Tokens  int
	Buckets int
	// Load is the wall time of saving the tokens (16 at a time).
	Load time.Duration
	// Check and CleanRepair are Check and Repair of the store as loaded
	// (Repair then changes nothing: it is the cost of the survey).
	Check, CleanRepair time.Duration
	// LostIndexRepair is the mean time of Repair after every index bucket
	// was deleted out of band: it rebuilds the whole index from the
	// documents.
	LostIndexRepair time.Duration
	// Rebuilt is what the last of those Repairs reported.
	Rebuilt casstore.RepairReport
}

func (f RepairFigures) String() string {
	return fmt.Sprintf("%d tokens, %d buckets: load %v, Check %v, Repair (nothing to do) %v, Repair of a lost index %v (%s)",
		f.Tokens, f.Buckets, f.Load.Round(time.Millisecond), f.Check.Round(time.Millisecond), f.CleanRepair.Round(time.Millisecond),
		f.LostIndexRepair.Round(time.Millisecond), f.Rebuilt)
}

// BenchRepair measures Repair on a store of n tokens opened by newStore
// (which must honour StoreOptions.Wrap): Check and Repair of the store as
// loaded, then b.N times Repair after the whole index was deleted out of
// band, each time checking that Check is clean and every token is found
// again. It reports the figures as metrics (seconds) and logs them:
//
//	go test -run '^$' -bench BenchmarkRepair -benchtime 1x ./aws/ ./vault/ ./gcp/
func BenchRepair(b *testing.B, n int, newStore Factory) RepairFigures {
	b.Helper()
	ctx := b.Context()
	var mu sync.Mutex
	var raw casstore.Backend
	wrap := func(x casstore.Backend) casstore.Backend {
		mu.Lock()
		defer mu.Unlock()
		raw = x
		return x
	}
	st := newStore(b, StoreOptions{Prefix: proctest.UniqueName("repair-"), Wrap: wrap, Logger: slog.New(slog.DiscardHandler)})
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		if err := st.DeleteTokens(ctx); err != nil {
			b.Logf("cleanup: DeleteTokens: %v", err)
		}
	})
	fig := RepairFigures{Tokens: n}

	b.StopTimer()
	start := time.Now()
	if err := loadTokens(ctx, st, n); err != nil {
		b.Fatal(err)
	}
	fig.Load = time.Since(start)

	start = time.Now()
	rep, err := st.Check(ctx)
	fig.Check = time.Since(start)
	if err != nil || !rep.OK() || rep.Tokens != n {
		b.Fatalf("Check after loading %d tokens: %v (%v)", n, checkSummary(rep), err)
	}
	start = time.Now()
	rr, err := st.Repair(ctx)
	fig.CleanRepair = time.Since(start)
	if err != nil || rr.Changed() {
		b.Fatalf("Repair of a clean store: %s (%v)", rr, err)
	}

	var total time.Duration
	for range b.N {
		buckets, err := loseIndex(ctx, raw)
		if err != nil {
			b.Fatal(err)
		}
		fig.Buckets = buckets
		start = time.Now()
		b.StartTimer()
		rr, err = st.Repair(ctx)
		b.StopTimer()
		total += time.Since(start)
		if err != nil {
			b.Fatalf("Repair of a lost index: %v", err)
		}
		fig.Rebuilt = rr
		if rep, err := st.Check(ctx); err != nil || !rep.OK() || rep.Tokens != n {
			b.Fatalf("Check after rebuilding the index: %s (%v)", checkSummary(rep), err)
		}
		for u := 0; u < n; u += max(1, n/50) {
			if _, err := st.FindToken(ctx, &tokenstore.Token{UserName: userName(u)}); err != nil {
				b.Fatalf("user %d after rebuilding the index: %v", u, err)
			}
		}
	}
	fig.LostIndexRepair = total / time.Duration(b.N)
	b.ReportMetric(fig.LostIndexRepair.Seconds(), "s/lost-index-repair")
	b.ReportMetric(fig.CleanRepair.Seconds(), "s/clean-repair")
	b.ReportMetric(fig.Check.Seconds(), "s/check")
	b.ReportMetric(fig.Load.Seconds(), "s/load")
	b.Logf("Repair: %s", fig)
	return fig
}

// loadTokens saves n users, each with a refresh token, 16 at a time.
func loadTokens(ctx context.Context, st Store, n int) error {
	errs := make(chan error, n)
	work := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for u := range work {
				tok := &tokenstore.Token{UserName: userName(u), ClientID: clientID, ClientSecret: clientSecret,
					AccessToken: fmt.Sprintf("at-%d", u), RefreshToken: fmt.Sprintf("rt-u%d", u), Expiry: time.Now().Add(time.Hour)}
				if err := st.SaveToken(ctx, tok); err != nil {
					errs <- fmt.Errorf("loading user %d: %w", u, err)
				}
			}
		})
	}
	for u := range n {
		work <- u
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs // nil when the channel is empty
}

// loseIndex deletes every index bucket from the backend and returns how
// many there were.
func loseIndex(ctx context.Context, raw casstore.Backend) (int, error) {
	if raw == nil {
		return 0, errors.New("reliability: the factory did not pass StoreOptions.Wrap to WithBackendWrapper")
	}
	n := 0
	for ; ; n++ {
		err := raw.Delete(ctx, casstore.IndexName(n))
		if errors.Is(err, tokenstore.ErrNotFound) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("deleting %s: %w", casstore.IndexName(n), err)
		}
	}
}
