package stress

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cloudtokens/cloudtokens/proctest"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// Operation names, as reported in Summary.Ops.
const (
	OpSave         = "save"          // phase 1: SaveToken of a user
	OpFindUser     = "find_user"     // phase 2: FindToken by user name
	OpFindRefresh  = "find_refresh"  // phase 2: FindToken by refresh token, client ID and secret
	OpDelete       = "delete"        // phase 3: DeleteToken
	OpRefreshUser  = "refresh_user"  // phase 3: SaveToken of a new access token, by user name
	OpRefreshToken = "refresh_token" // phase 3: SaveToken of a new access token, by refresh token
)

var opOrder = []string{OpSave, OpFindUser, OpFindRefresh, OpDelete, OpRefreshUser, OpRefreshToken}

// Phase names, as reported in Summary.Phases.
var phaseNames = []string{"save", "find", "delete+refresh"}

// maxErrors bounds the error messages a child keeps per run.
const maxErrors = 20

// childResult is what a child reports in result-<worker>.json.
type childResult struct {
	Worker int
	// Done is set when the child went through every phase.
	Done bool
	// Phases holds the start and end (Unix nanoseconds) of each phase.
	Phases []phaseSpan
	// Ops counts outcomes and holds latencies per operation.
	Ops map[string]*opRecord
	// Errors holds the first unexpected errors, without token values.
	Errors []string
	// ErrorCount counts every unexpected error and inconsistency.
	ErrorCount int
	// Conflicts holds the first ErrConflict errors.
	Conflicts []string

	// Per user (index = user number):
	// SavedID is the ID the phase-1 save returned ("" if it failed).
	SavedID []string
	// FoundID is the ID phase 2 found by user name ("" if not found).
	FoundID []string
	// Deleted is set where this child's DeleteToken succeeded.
	Deleted []bool
	// RefreshedID is the ID a successful phase-3 save returned.
	RefreshedID []string
	// Access is the access token of this child's last successful save
	// (phase 3 if it succeeded, otherwise phase 1).
	Access []string
	// AccessPhase is the phase (1 or 3) Access was saved in, 0 for none.
	AccessPhase []int

	mu sync.Mutex
}

type phaseSpan struct {
	Name       string
	Start, End int64
}

// opRecord counts the outcomes of one kind of operation.
type opRecord struct {
	OK, NotFound, Conflict, Failed int
	// Micros holds the latency of every call, in microseconds.
	Micros []int64
}

func newChildResult(worker, users int) *childResult {
	return &childResult{
		Worker:      worker,
		Ops:         map[string]*opRecord{},
		SavedID:     make([]string, users),
		FoundID:     make([]string, users),
		Deleted:     make([]bool, users),
		RefreshedID: make([]string, users),
		Access:      make([]string, users),
		AccessPhase: make([]int, users),
	}
}

// record counts one call of op for user u that took d and returned err, and reports
// whether err is acceptable: nil, ErrNotFound where notFoundOK, or
// ErrConflict (judged later, by the parent). Other errors are kept.
func (r *childResult) record(op string, u int, d time.Duration, err error, notFoundOK bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.Ops[op]
	if rec == nil {
		rec = &opRecord{}
		r.Ops[op] = rec
	}
	rec.Micros = append(rec.Micros, d.Microseconds())
	switch {
	case err == nil:
		rec.OK++
		return true
	case errors.Is(err, tokenstore.ErrNotFound):
		rec.NotFound++
		if notFoundOK {
			return true
		}
	case errors.Is(err, tokenstore.ErrConflict):
		rec.Conflict++
		if len(r.Conflicts) < maxErrors {
			r.Conflicts = append(r.Conflicts, fmt.Sprintf("%s of user %d: %v", op, u, err))
		}
		return true
	default:
		rec.Failed++
	}
	r.addErrorLocked(fmt.Sprintf("%s of user %d: %v", op, u, err))
	return false
}

// problem records an inconsistency that is not an error of the store.
func (r *childResult) problem(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addErrorLocked(fmt.Sprintf(format, args...))
}

func (r *childResult) addErrorLocked(msg string) {
	r.ErrorCount++
	if len(r.Errors) < maxErrors {
		r.Errors = append(r.Errors, msg)
	}
}

func (r *childResult) write(dir string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return proctest.WriteResult(dir, r.Worker, r)
}

func readResult(dir string, worker int) (*childResult, error) {
	var r childResult
	if err := proctest.ReadResult(dir, worker, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Summary is what Run measured, for BENCHMARKS.md.
type Summary struct {
	// Config is the configuration that ran, defaults filled in.
	Config Config
	// Phases holds the wall time of each phase, from the first process
	// entering it to the last one leaving it.
	Phases []PhaseStat
	// Ops holds the outcome counts and latencies per operation, summed
	// over all processes, in a fixed order.
	Ops []OpStat
	// Conflicts is the number of operations that returned
	// tokenstore.ErrConflict.
	Conflicts int
	// Errors is the number of unexpected errors and inconsistencies that
	// the children reported.
	Errors int
	// Verify is the time the parent took to list, check and query the
	// store.
	Verify time.Duration
	// Buckets is the number of index buckets at the end (Check's
	// Report.Buckets) and LargestBucket the encoded size in bytes of the
	// largest.
	Buckets, LargestBucket int
	// Total is the wall time of the children, from start to exit.
	Total time.Duration
}

// PhaseStat is the measurement of one phase.
type PhaseStat struct {
	Name string
	Wall time.Duration
	Ops  int
}

// OpStat is the measurement of one kind of operation.
type OpStat struct {
	Name                           string
	Calls                          int
	OK, NotFound, Conflict, Failed int
	P50, P95, P99, Max             time.Duration
}

func summarize(cfg Config, results []*childResult) *Summary {
	s := &Summary{Config: cfg}
	for i, name := range phaseNames {
		var start, end int64
		ops := 0
		for _, r := range results {
			if r == nil || i >= len(r.Phases) {
				continue
			}
			p := r.Phases[i]
			if start == 0 || p.Start < start {
				start = p.Start
			}
			end = max(end, p.End)
		}
		for _, op := range phaseOps(i) {
			for _, r := range results {
				if r != nil && r.Ops[op] != nil {
					ops += len(r.Ops[op].Micros)
				}
			}
		}
		if start != 0 {
			s.Phases = append(s.Phases, PhaseStat{Name: name, Wall: time.Duration(end - start), Ops: ops})
		}
	}
	for _, op := range opOrder {
		st := OpStat{Name: op}
		var micros []int64
		for _, r := range results {
			if r == nil || r.Ops[op] == nil {
				continue
			}
			rec := r.Ops[op]
			st.OK += rec.OK
			st.NotFound += rec.NotFound
			st.Conflict += rec.Conflict
			st.Failed += rec.Failed
			micros = append(micros, rec.Micros...)
		}
		st.Calls = len(micros)
		if st.Calls == 0 {
			continue
		}
		slices.Sort(micros)
		pct := func(p float64) time.Duration {
			return time.Duration(micros[int(p*float64(len(micros)-1))]) * time.Microsecond
		}
		st.P50, st.P95, st.P99, st.Max = pct(0.50), pct(0.95), pct(0.99), pct(1)
		s.Conflicts += st.Conflict
		s.Ops = append(s.Ops, st)
	}
	for _, r := range results {
		if r != nil {
			s.Errors += r.ErrorCount
		}
	}
	return s
}

func phaseOps(i int) []string {
	switch i {
	case 0:
		return []string{OpSave}
	case 1:
		return []string{OpFindUser, OpFindRefresh}
	}
	return []string{OpDelete, OpRefreshUser, OpRefreshToken}
}

// String formats the summary as the lines Run logs.
func (s *Summary) String() string {
	var b strings.Builder
	c := s.Config
	layout := fmt.Sprintf("%d index shards", c.IndexShards)
	if c.GrowingIndex {
		layout = "default options (growing index)"
	}
	fmt.Fprintf(&b, "%d processes × %d goroutines × %d users, %s: total %v, verify %v, %d conflicts, %d errors; %d index buckets at the end, the largest %d bytes\n",
		c.Processes, c.Goroutines, c.Users, layout, s.Total.Round(time.Millisecond), s.Verify.Round(time.Millisecond), s.Conflicts, s.Errors, s.Buckets, s.LargestBucket)
	for _, p := range s.Phases {
		rate := 0.0
		if p.Wall > 0 {
			rate = float64(p.Ops) / p.Wall.Seconds()
		}
		fmt.Fprintf(&b, "phase %-15s %9v  %5d ops  %7.0f ops/s\n", p.Name, p.Wall.Round(time.Millisecond), p.Ops, rate)
	}
	fmt.Fprintf(&b, "%-13s %6s %6s %8s %8s %6s %9s %9s %9s %9s\n", "op", "calls", "ok", "notfound", "conflict", "failed", "p50", "p95", "p99", "max")
	for _, o := range s.Ops {
		fmt.Fprintf(&b, "%-13s %6d %6d %8d %8d %6d %9v %9v %9v %9v\n", o.Name, o.Calls, o.OK, o.NotFound, o.Conflict, o.Failed,
			o.P50.Round(10*time.Microsecond), o.P95.Round(10*time.Microsecond), o.P99.Round(10*time.Microsecond), o.Max.Round(10*time.Microsecond))
	}
	return strings.TrimRight(b.String(), "\n")
}
