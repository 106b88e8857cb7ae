package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudtokens/cloudtokens/integration/bench"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// Throughput is the result of the concurrent mix, for the store and for
// the raw SDK making the same requests.
type Throughput struct {
	Goroutines int
	SaveEvery  int // one refresh save per SaveEvery operations
	Store, Raw MixResult
}

// MixResult is one side of the throughput run.
type MixResult struct {
	Ops      int64
	Errors   int64
	Calls    int
	Elapsed  time.Duration
	FirstErr string
}

// OpsPerSec is the operations per second.
func (m MixResult) OpsPerSec() float64 {
	if m.Elapsed <= 0 {
		return 0
	}
	return float64(m.Ops) / m.Elapsed.Seconds()
}

// throughput runs goroutines workers doing finds by user (warm cache) and,
// every saveEvery-th operation, a refresh save of the token the previous
// operation found (as an application saves what it found expired and
// refreshed), on the store and then with the raw SDK, alternating in
// slices of slice until each side has run for duration (the raw side only
// withRaw). The raw side makes the requests the store makes: a find is
// one Read, a save one Write with the version that Read returned (a Read
// first when it has none, at a slice boundary), on its own copy of each
// token (so that neither side disturbs the other's memory of versions).
// Each goroutine works on its own tokens, so there are no write
// conflicts.
func (r *runner) throughput(goroutines, saveEvery int, duration, slice time.Duration, withRaw bool) *Throughput {
	res := &Throughput{Goroutines: goroutines, SaveEvery: saveEvery}
	// Each goroutine owns the tokens i ≡ g (mod goroutines).
	own := make([][]*tokenstore.Token, goroutines)
	copies := make([][]string, goroutines)
	for i, t := range r.toks {
		g := i % goroutines
		own[g] = append(own[g], t)
		if withRaw {
			doc, _ := tokenstore.MarshalDocument(t)
			c, err := r.rawCopy(doc)
			if err != nil {
				res.Raw.FirstErr = err.Error()
				return res
			}
			copies[g] = append(copies[g], c.name)
		}
	}
	defer func() {
		for _, names := range copies {
			for _, name := range names {
				_ = r.t.Raw.Delete(r.ctx, r.prefix, name)
			}
		}
	}()
	pos := make([]int, goroutines) // next op number per goroutine, kept across slices
	var storeT, rawT time.Duration
	if !withRaw {
		rawT = duration
	}
	for storeT < duration || rawT < duration {
		for _, side := range []struct {
			raw     bool
			elapsed *time.Duration
			res     *MixResult
		}{{false, &storeT, &res.Store}, {true, &rawT, &res.Raw}} {
			if *side.elapsed >= duration {
				continue
			}
			d := min(slice, duration-*side.elapsed)
			before := r.t.Calls.Snapshot()
			start := time.Now()
			r.mixSlice(own, copies, pos, side.raw, saveEvery, d, side.res)
			*side.elapsed += time.Since(start)
			side.res.Elapsed = *side.elapsed
			side.res.Calls += r.t.Calls.Snapshot().Sub(before).Total()
		}
	}
	// Keep the runner's view of the tokens current.
	r.toks = r.toks[:0]
	for _, ts := range own {
		r.toks = append(r.toks, ts...)
	}
	return res
}

func (r *runner) mixSlice(own [][]*tokenstore.Token, copies [][]string, pos []int, raw bool, saveEvery int, d time.Duration, res *MixResult) {
	ctx, cancel := context.WithTimeout(r.ctx, d)
	defer cancel()
	var ops, errs atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range own {
		if len(own[g]) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			lastK, lastVersion := -1, "" // raw side: the token last read or written, and its version
			for ctx.Err() == nil {
				i := pos[g]
				n := len(own[g])
				save := i%saveEvery == saveEvery-1
				k := i % n
				if save {
					k = (i - 1 + n) % n // the token the previous operation found
				}
				t := own[g][k]
				var err error
				var u *tokenstore.Token
				switch {
				case save && !raw:
					u = bench.Refreshed(t)
					err = r.warm.SaveToken(r.ctx, u)
				case save && raw:
					name := copies[g][k]
					if lastK != k {
						var doc bench.Doc
						doc, err = r.t.Raw.Read(r.ctx, r.prefix, name)
						lastK, lastVersion = k, doc.Version
					}
					if err == nil {
						u = bench.Refreshed(t)
						b, _ := tokenstore.MarshalDocument(u)
						lastVersion, err = r.t.Raw.Write(r.ctx, r.prefix, name, b, lastVersion)
					}
					if err != nil {
						lastK = -1
					}
				case !raw:
					var got *tokenstore.Token
					got, err = r.warm.FindToken(r.ctx, bench.UserQuery(t))
					err = expectID(got, err, t.ID)
				default:
					var doc bench.Doc
					doc, err = r.t.Raw.Read(r.ctx, r.prefix, copies[g][k])
					lastK, lastVersion = k, doc.Version
					if err != nil {
						lastK = -1
					}
				}
				pos[g] = i + 1
				if err != nil {
					errs.Add(1)
					mu.Lock()
					if res.FirstErr == "" {
						res.FirstErr = err.Error()
					}
					mu.Unlock()
					continue
				}
				if u != nil {
					own[g][k] = u
				}
				ops.Add(1)
			}
		}()
	}
	wg.Wait()
	res.Ops += ops.Load()
	res.Errors += errs.Load()
}
