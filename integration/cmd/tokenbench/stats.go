package main

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/cloudtokens/cloudtokens/integration/bench"
)

// Sample is one timed call of an operation and what it sent.
type Sample struct {
	D time.Duration
	U bench.Usage
	// M is the number of index buckets before the call (what the bench
	// knows of the layout: the buckets its stores created).
	M int
}

// Samples is a series of samples of one operation.
type Samples []Sample

// Percentile returns the p-th percentile (0 < p <= 100) of the durations,
// by the nearest-rank method; 0 for no samples.
func (s Samples) Percentile(p float64) time.Duration {
	ds := make([]time.Duration, len(s))
	for i, x := range s {
		ds[i] = x.D
	}
	return percentile(ds, p)
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	rank := int(math.Ceil(p / 100 * float64(len(ds))))
	return ds[max(rank, 1)-1]
}

// Max returns the longest duration.
func (s Samples) Max() time.Duration {
	var m time.Duration
	for _, x := range s {
		m = max(m, x.D)
	}
	return m
}

// count returns f of every sample.
func (s Samples) count(f func(Sample) int) []int {
	out := make([]int, len(s))
	for i, x := range s {
		out[i] = f(x)
	}
	return out
}

// Requests returns the transport requests of every sample.
func (s Samples) Requests() []int { return s.count(func(x Sample) int { return x.U.NRequests() }) }

// BackendCalls returns the Backend calls of every sample.
func (s Samples) BackendCalls() []int { return s.count(func(x Sample) int { return x.U.NBackend() }) }

// Worst returns the sample with the most requests.
func (s Samples) Worst() Sample {
	var w Sample
	for i, x := range s {
		if i == 0 || x.U.NRequests() > w.U.NRequests() {
			w = x
		}
	}
	return w
}

// intStats summarises counts: smallest, median, mean, largest.
type intStats struct {
	N             int
	Min, P50, Max int
	Mean          float64
	Sum           int
}

func statsOf(xs []int) intStats {
	if len(xs) == 0 {
		return intStats{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	st := intStats{N: len(s), Min: s[0], Max: s[len(s)-1], P50: s[(len(s)-1)/2]}
	for _, x := range s {
		st.Sum += x
	}
	st.Mean = float64(st.Sum) / float64(len(s))
	return st
}

// String is "p50 / max" (or one number when they agree).
func (st intStats) String() string {
	if st.N == 0 {
		return "-"
	}
	if st.P50 == st.Max {
		return fmt.Sprint(st.Max)
	}
	return fmt.Sprintf("%d / %d", st.P50, st.Max)
}

// MeanMax is "mean / max".
func (st intStats) MeanMax() string {
	if st.N == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f / %d", st.Mean, st.Max)
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
	case d < 100*time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	default:
		return d.Round(time.Second).String()
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

// commas formats n with thousands separators.
func commas(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + commas(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
