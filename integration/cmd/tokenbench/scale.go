package main

import (
	"cmp"
	"context"
	"fmt"
	"log"
	"sync"
	"time"

	"github.com/cloudtokens/cloudtokens/integration/bench"
)

// LoadSlice is one part of a load (5% of it by default): the inserts
// that completed in it.
type LoadSlice struct {
	To      int           // inserts completed at its end
	D       time.Duration // its wall time
	Buckets int           // index buckets at its end
	Splits  int
	Lost    int      // failed compare-and-swap writes
	Req     intStats // requests per insert
	Calls   intStats // Backend calls per insert
	P50     time.Duration
	Max     time.Duration
}

// Rate is the inserts a second of the slice.
func (s LoadSlice) Rate(from int) float64 {
	if s.D <= 0 {
		return 0
	}
	return float64(s.To-from) / s.D.Seconds()
}

// LoadResult is a load of N tokens, workers saves in flight.
type LoadResult struct {
	N, Workers, Rule2 int
	D                 time.Duration
	Slices            []LoadSlice
	Req, Calls        intStats // per insert (not counting the rule-2 records)
	IndexWrites       intStats
	Rule2Req          intStats // per insert of a record with only an access token
	Splits            int
	Worst             Sample // the insert with the most requests
	P50, P99, Max     time.Duration
	Errors            int
	FirstErr          string
	FirstErrAt        int // inserts completed when the first one failed
}

// loadAgg gathers the inserts of a load as they complete.
type loadAgg struct {
	mu     sync.Mutex
	n      int // planned inserts
	slices int
	done   int
	last   time.Time
	cur    struct {
		req, calls []int
		ds         []time.Duration
		splits     int
		lost       int
	}
	res      *LoadResult
	allReq   []int
	allCalls []int
	allIdx   []int
	allD     []time.Duration
	rule2Req []int
	buckets  func() int
	progress func(LoadSlice)
}

func (a *loadAgg) add(s Sample, err error, rule2 bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err == nil && rule2 {
		// Counted apart: each of these inserts scans the store.
		a.rule2Req = append(a.rule2Req, s.U.NRequests())
		a.res.Splits += s.U.Splits
		a.cur.splits += s.U.Splits
	}
	if err != nil {
		if a.res.Errors == 0 {
			a.res.FirstErrAt = a.done
		}
		a.res.Errors++
		a.res.FirstErr = cmp.Or(a.res.FirstErr, err.Error())
	} else if !rule2 {
		a.cur.req = append(a.cur.req, s.U.NRequests())
		a.cur.calls = append(a.cur.calls, s.U.NBackend())
		a.cur.ds = append(a.cur.ds, s.D)
		a.cur.splits += s.U.Splits
		a.cur.lost += s.U.FailedCAS
		a.allIdx = append(a.allIdx, s.U.IndexWrites)
		a.res.Splits += s.U.Splits
		if s.U.NRequests() > a.res.Worst.U.NRequests() {
			a.res.Worst = s
		}
	}
	a.done++
	if a.done*a.slices/a.n > len(a.res.Slices) || a.done == a.n {
		now := time.Now()
		sl := LoadSlice{To: a.done, D: now.Sub(a.last), Buckets: a.buckets(), Splits: a.cur.splits, Lost: a.cur.lost,
			Req: statsOf(a.cur.req), Calls: statsOf(a.cur.calls), P50: percentile(a.cur.ds, 50), Max: percentile(a.cur.ds, 100)}
		a.res.Slices = append(a.res.Slices, sl)
		if a.progress != nil {
			a.progress(sl)
		}
		a.allReq = append(a.allReq, a.cur.req...)
		a.allCalls = append(a.allCalls, a.cur.calls...)
		a.allD = append(a.allD, a.cur.ds...)
		a.cur.req, a.cur.calls, a.cur.ds, a.cur.splits, a.cur.lost = nil, nil, nil, 0, 0
		a.last = now
	}
}

// loadScale saves n new tokens with workers saves in flight through the
// warm store, and keeps about keep of them for the measurements that
// follow. rule2 of them, spread over the first rule2·rule2Every inserts,
// are records with only an access token: inserting one scans every token
// (the engine looks for a refreshable record with that access token), so
// they go in while the store is small, and are looked up at full size. It
// reports the inserts in slices of the load, to show the throughput over
// time (a split's pause, a slower index as it grows).
func (r *runner) loadScale(n, workers, rule2, rule2Every, keep, slices int) *LoadResult {
	res := &LoadResult{N: n, Workers: workers}
	agg := &loadAgg{n: n, slices: slices, res: res, last: time.Now(), buckets: r.buckets}
	if slices > 1 {
		agg.progress = func(s LoadSlice) {
			log.Printf("%s: %s of %s inserts, %.0f/s in the last %s, %s buckets", r.t.Name, commas(s.To), commas(n), float64(n/slices)/s.D.Seconds(), fmtDur(s.D), commas(s.Buckets))
		}
	}
	stride := max(1, n/max(1, keep))
	var mu sync.Mutex
	next := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for i := range next {
				t := bench.NewToken(r.next + i)
				isRule2 := rule2Every > 0 && i < rule2*rule2Every && i%rule2Every == rule2Every-1
				if isRule2 {
					t = bench.NewAccessOnlyToken()
				}
				s, err := r.timed(func(ctx context.Context) error { return r.warm.SaveToken(ctx, t) })
				agg.add(s, err, isRule2)
				if err != nil {
					continue
				}
				mu.Lock()
				r.n++
				switch {
				case isRule2:
					res.Rule2++
					r.rule2 = append(r.rule2, t)
				case i%stride == 0:
					r.toks = append(r.toks, t)
				}
				mu.Unlock()
			}
		})
	}
	for i := range n {
		if r.ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	res.D = time.Since(start)
	r.next += n
	res.Req, res.Calls, res.IndexWrites, res.Rule2Req = statsOf(agg.allReq), statsOf(agg.allCalls), statsOf(agg.allIdx), statsOf(agg.rule2Req)
	res.P50, res.P99, res.Max = percentile(agg.allD, 50), percentile(agg.allD, 99), percentile(agg.allD, 100)
	return res
}

// CheckResult is a Check of the scale store.
type CheckResult struct {
	D                       time.Duration
	Tokens, Buckets         int
	Layout                  string
	OK                      bool
	Smallest, Largest, Mean int
	Problems                string
	Err                     string
}

func (r *runner) check() *CheckResult {
	start := time.Now()
	rep, err := r.warm.Check(r.ctx)
	res := &CheckResult{D: time.Since(start)}
	if err != nil {
		res.Err = err.Error()
		return res
	}
	res.Tokens, res.Buckets, res.Layout, res.OK = rep.Tokens, rep.Buckets, rep.Layout, rep.OK()
	sum := 0
	for i, sz := range rep.ShardSizes {
		if i == 0 || sz < res.Smallest {
			res.Smallest = sz
		}
		res.Largest = max(res.Largest, sz)
		sum += sz
	}
	if len(rep.ShardSizes) > 0 {
		res.Mean = sum / len(rep.ShardSizes)
	}
	if !res.OK {
		s := rep.String()
		if len(s) > 2000 {
			s = s[:2000] + " …"
		}
		res.Problems = s
	}
	if res.Tokens != r.n {
		res.Problems += fmt.Sprintf("; Check found %d tokens, the load saved %d", res.Tokens, r.n)
		res.OK = false
	}
	return res
}

// tokensAt measures Tokens at the store's size.
func (r *runner) tokensAt(samples int) *Op {
	op := &Op{Name: fmt.Sprintf("Tokens (N=%s)", commas(r.n)), BudgetExpr: "B·R + RM(N)"}
	for range samples {
		r.addOp(op, func(ctx context.Context) error {
			all, err := r.warm.Tokens(ctx)
			if err == nil && len(all) != r.n {
				err = fmt.Errorf("Tokens returned %d tokens, want %d", len(all), r.n)
			}
			return err
		}, func(s Sample) int { return s.M + 1 })
	}
	return op
}
