package reliability

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/faultinject"
	"github.com/cloudtokens/cloudtokens/integration/backend"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// Store is a store under test: a tokenstore.Store with the casstore
// engine's Check and Repair. Every adapter's Store is one.
type Store interface {
	tokenstore.Store
	Check(ctx context.Context) (*casstore.Report, error)
	Repair(ctx context.Context) (casstore.RepairReport, error)
}

// StoreOptions tell a Factory which store to open.
type StoreOptions struct {
	// Prefix is the run's (or round's) prefix: letters, digits and "-",
	// valid in every backend; add a separator if the adapter wants one.
	Prefix string
	// IndexShards is the shard count every store of the run must use.
	IndexShards int
	// Faults, when not nil, must see every request of the store's
	// client: faultinject.Transport for an HTTP client,
	// gcpsmtest.FaultClientOption for gRPC. Nil means a clean client.
	Faults *faultinject.Injector
	// Logger is the store's logger (WithLogger): the harness checks that
	// no user name or token value reaches it.
	Logger *slog.Logger
	// Wrap, when not nil, must be passed to the adapter's
	// WithBackendWrapper: BenchRepair uses it to reach the backend and
	// lose the index out of band.
	Wrap func(casstore.Backend) casstore.Backend
}

// Factory opens the store under test. The harness calls it for every
// store it needs: the faulty ones, the clean verification store, and in
// a SIGKILL test once in the child and once per round in the parent (a
// fresh store each time, so that nothing is cached). It should fail tb
// when it cannot; it may register cleanups.
type Factory func(tb testing.TB, o StoreOptions) Store

// logSink collects the log records of the stores under test.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logSink) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// secretsInLog matches the user names and token values of the tests,
// and the whole word around them.
var secretsInLog = regexp.MustCompile(`[^\s"=]*(?:user-\d+|\b(?:at|rt)-(?:s\d|u\d|\d)|seed-(?:rt-)?r\d|after-(?:r\d|faults))[^\s"]*`)

// check records a violation for every log line that carries a user
// name or a token value, and returns the number of lines.
func (l *logSink) check(f *findings, stage string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(l.buf.String()), "\n")
	n := 0
	for _, line := range lines {
		if line == "" {
			continue
		}
		n++
		if m := secretsInLog.FindString(line); m != "" {
			what := "a token value"
			if strings.Contains(m, "user-") {
				what = "a user name"
			}
			f.add(vLogLeak, "%s: a log record carries %s: %s", stage, what, secretsInLog.ReplaceAllString(line, "…"))
		}
	}
	return n
}

// Client values of every token the tests write: one OAuth client.
const (
	clientID     = "1000.RELIABILITY"
	clientSecret = "reliability-client-secret"
)

// Environment variables of soak runs (see the package documentation).
const (
	EnvSoak        = "CLOUDTOKENS_SOAK"
	EnvKillRounds  = "CLOUDTOKENS_KILL_ROUNDS"
	EnvFaultRounds = "CLOUDTOKENS_FAULT_ROUNDS"
	EnvFaultSeed   = "CLOUDTOKENS_FAULT_SEED"
)

// SkipShort skips a reliability test under -short, except in CI, which
// runs them all. RunFaults and RunKills call it; a test that starts a
// server first calls it before.
func SkipShort(t *testing.T) {
	t.Helper()
	if testing.Short() && !backend.InCI() {
		t.Skip("reliability test: skipped with -short (CI runs it)")
	}
}

func soak() bool {
	v, _ := strconv.ParseBool(os.Getenv(EnvSoak))
	return v
}

// envInt returns the integer in variable name, or def.
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// seedFrom returns the seed in variable name ("random" or unset in a soak
// run: a random one), or def.
func seedFrom(name string, def uint64) uint64 {
	v := os.Getenv(name)
	if v == "random" || (v == "" && soak()) {
		var b [8]byte
		_, _ = rand.Read(b[:])
		var s uint64
		for _, x := range b {
			s = s<<8 | uint64(x)
		}
		return s
	}
	if n, err := strconv.ParseUint(v, 10, 64); err == nil {
		return n
	}
	return def
}

// userName is the user name of user u.
func userName(u int) string { return "user-" + strconv.Itoa(u) }

func userOf(name string) (int, bool) {
	s, ok := strings.CutPrefix(name, "user-")
	if !ok {
		return 0, false
	}
	u, err := strconv.Atoi(s)
	return u, err == nil && u >= 0
}

// errClass names the kind of an operation's error, for the summaries.
func errClass(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, tokenstore.ErrNotFound):
		return "not-found"
	case errors.Is(err, tokenstore.ErrConflict):
		return "conflict"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "timeout"
	case errors.Is(err, tokenstore.ErrMalformed):
		return "malformed"
	case errors.Is(err, tokenstore.ErrInvalidToken):
		return "invalid"
	}
	return "other"
}

// outcomes counts operation results by operation and error class.
type outcomes struct {
	mu sync.Mutex
	n  map[string]map[string]int
}

func (o *outcomes) add(op string, err error) { o.addClass(op, errClass(err)) }

func (o *outcomes) addClass(op, class string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == nil {
		o.n = map[string]map[string]int{}
	}
	if o.n[op] == nil {
		o.n[op] = map[string]int{}
	}
	o.n[op][class]++
}

func (o *outcomes) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	ops := make([]string, 0, len(o.n))
	for op := range o.n {
		ops = append(ops, op)
	}
	slices.Sort(ops)
	var b strings.Builder
	for _, op := range ops {
		classes := make([]string, 0, len(o.n[op]))
		for c := range o.n[op] {
			classes = append(classes, c)
		}
		slices.Sort(classes)
		fmt.Fprintf(&b, "%s:", op)
		for _, c := range classes {
			fmt.Fprintf(&b, " %s=%d", c, o.n[op][c])
		}
		b.WriteString("; ")
	}
	return strings.TrimSuffix(b.String(), "; ")
}

// findings collects the violations of a run, by kind, with the first few
// messages of each kind.
type findings struct {
	mu    sync.Mutex
	count map[string]int
	first map[string][]string
	order []string
}

const shownPerKind = 8

// add records one violation of kind.
func (f *findings) add(kind, format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.count == nil {
		f.count, f.first = map[string]int{}, map[string][]string{}
	}
	if f.count[kind] == 0 {
		f.order = append(f.order, kind)
	}
	f.count[kind]++
	if len(f.first[kind]) < shownPerKind {
		f.first[kind] = append(f.first[kind], fmt.Sprintf(format, args...))
	}
}

// Total returns the number of violations.
func (f *findings) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.count {
		n += c
	}
	return n
}

// counts returns the violations per kind.
func (f *findings) counts() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.count)
}

func (f *findings) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, k := range f.order {
		fmt.Fprintf(&b, "%s: %d\n", k, f.count[k])
		for _, m := range f.first[k] {
			fmt.Fprintf(&b, "    %s\n", m)
		}
		if f.count[k] > len(f.first[k]) {
			fmt.Fprintf(&b, "    …\n")
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// Kinds of violation.
const (
	vWrongValue      = "wrong value (never written for the user)"
	vStaleRead       = "find returned a state that was not legal at that moment"
	vLostSave        = "acknowledged save lost"
	vResurrected     = "deleted user found again"
	vIllegalState    = "user in a state no operation could have left"
	vDuplicate       = "duplicate: two records for one user"
	vUnlisted        = "found but not listed by Tokens"
	vUnfindable      = "listed but not found"
	vRefreshLookup   = "not found by its refresh token"
	vLockedOut       = "user locked out: a save did not succeed in time"
	vRepairFailed    = "Repair failed"
	vCheckUnclean    = "Check not clean after Repair"
	vRepairDisagrees = "Check and Repair disagree (a problem one of them missed)"
	vRepairRepeated  = "a second Repair changed something (not idempotent)"
	vAfterRepair     = "state not legal after Repair"
	vCheckAfterSaves = "Check not clean after saving every user"
	vChild           = "child process failed"
	vLogLeak         = "log record with a user name or token value"
)

// checkSummary is a Check report in one line, with the counts first.
func checkSummary(rep *casstore.Report) string {
	if rep == nil {
		return "no report"
	}
	return fmt.Sprintf("%d tokens, %d unindexed, %d missing, %d missing keys, %d duplicates, %d corrupt (%s)",
		rep.Tokens, len(rep.Unindexed), len(rep.Missing), len(rep.MissingKeys), len(rep.Duplicates), len(rep.Corrupt), rep)
}

// withTimeout runs fn with a context bounded by d.
func withTimeout(parent context.Context, d time.Duration, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(parent, d)
	defer cancel()
	return fn(ctx)
}
