package main

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/cloudtokens/cloudtokens/integration/bench"
)

// Sample is one timed call of an operation and the requests it made.
type Sample struct {
	D       time.Duration
	Calls   bench.Calls
	Writes  bench.Calls // resources written, by name
	Retries int         // requests that were SDK retries (AWS only)
}

// Samples is a series of samples of one operation.
type Samples []Sample

// Percentile returns the p-th percentile (0 < p <= 100) of the durations,
// by the nearest-rank method; 0 for no samples.
func (s Samples) Percentile(p float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	ds := make([]time.Duration, len(s))
	for i, x := range s {
		ds[i] = x.D
	}
	slices.Sort(ds)
	rank := int(math.Ceil(p / 100 * float64(len(ds))))
	return ds[max(rank, 1)-1]
}

// CallRange returns the fewest and most requests of one sample.
func (s Samples) CallRange() (lo, hi int) {
	for i, x := range s {
		n := x.Calls.Total()
		if i == 0 || n < lo {
			lo = n
		}
		if i == 0 || n > hi {
			hi = n
		}
	}
	return lo, hi
}

// Worst returns the sample with the most requests.
func (s Samples) Worst() Sample {
	var w Sample
	for i, x := range s {
		if i == 0 || x.Calls.Total() > w.Calls.Total() {
			w = x
		}
	}
	return w
}

func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < time.Microsecond:
		return fmt.Sprintf("%d ns", d.Nanoseconds())
	case d < 10*time.Microsecond:
		return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond))
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
}

func ratio(a, b time.Duration) string {
	if a == 0 || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", float64(a)/float64(b))
}

func rangeStr(lo, hi int) string {
	if lo == hi {
		return fmt.Sprint(lo)
	}
	return fmt.Sprintf("%d–%d", lo, hi)
}

func fmtBytes(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// overhead formats a - b, the time an operation adds to its raw
// sequence.
func overhead(a, b time.Duration) string {
	if a == 0 || b == 0 {
		return "-"
	}
	d := a - b
	sign := "+"
	if d < 0 {
		sign, d = "−", -d
	}
	return sign + fmtDur(d)
}
