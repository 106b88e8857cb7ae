package reliability

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/proctest"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// KillConfig describes a SIGKILL run. The zero value is the CI run.
type KillConfig struct {
	// Rounds is the number of child processes killed (default 20, or
	// CLOUDTOKENS_KILL_ROUNDS; 400 in a soak run).
	Rounds int
	// Users is the number of users the child works on (default 6); the
	// parent seeds the first half before each round.
	Users int
	// Goroutines is the number of goroutines of the child (default 2),
	// each with its own users.
	Goroutines int
	// IndexShards are the shard counts of the rounds, in turn (default
	// 1 and 4).
	IndexShards []int
	// MaxKillDelay bounds the random moment of the kill after the child's
	// first acknowledged operation (default 500ms).
	MaxKillDelay time.Duration
	// LockoutLimit bounds each save of the lockout check (default 20s).
	LockoutLimit time.Duration
	// Seed seeds the kill moments and the child's operations (default
	// CLOUDTOKENS_FAULT_SEED, else 1).
	Seed uint64
	// Env holds "KEY=value" pairs for the children (an emulator's
	// address, say).
	Env []string
}

func (c KillConfig) withDefaults() KillConfig {
	if c.Rounds <= 0 {
		def := 20
		if soak() {
			def = 400
		}
		c.Rounds = envInt(EnvKillRounds, def)
	}
	if c.Users <= 0 {
		c.Users = 6
	}
	if c.Goroutines <= 0 {
		c.Goroutines = 2
	}
	if len(c.IndexShards) == 0 {
		c.IndexShards = []int{1, 4}
	}
	if c.MaxKillDelay <= 0 {
		c.MaxKillDelay = 500 * time.Millisecond
	}
	if c.LockoutLimit <= 0 {
		c.LockoutLimit = 20 * time.Second
	}
	if c.Seed == 0 {
		c.Seed = seedFrom(EnvFaultSeed, 1)
	}
	return c
}

// KillSummary is what a SIGKILL run found.
type KillSummary struct {
	Rounds int
	// Killed counts the rounds whose child was killed in the middle of an
	// operation (its last journal record is a "begin").
	Killed int
	// UncleanBeforeRepair counts the rounds whose Check reported a problem
	// as the kill left the store (Repair then fixed it, or the round has a
	// violation).
	UncleanBeforeRepair int
	// Repaired sums what Repair changed over the rounds.
	Repaired casstore.RepairReport
	// RepairMax is the longest Repair of a round.
	RepairMax time.Duration
	// RoundsWithViolations counts the rounds with any violation.
	RoundsWithViolations int
	// Violations counts every violation by kind, over all rounds.
	Violations map[string]int
	// Ops counts the child's operations by outcome.
	Ops  string
	Time time.Duration
}

func (s *KillSummary) String() string {
	kinds := make([]string, 0, len(s.Violations))
	for k := range s.Violations {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	var b strings.Builder
	fmt.Fprintf(&b, "%d rounds (%d killed mid-operation) in %v; Check reported what the kill left in %d rounds; Repair changed: %s (longest %v); rounds with violations: %d\n",
		s.Rounds, s.Killed, s.Time.Round(time.Millisecond), s.UncleanBeforeRepair, s.Repaired, s.RepairMax.Round(time.Millisecond), s.RoundsWithViolations)
	for _, k := range kinds {
		fmt.Fprintf(&b, "  %4d  %s\n", s.Violations[k], k)
	}
	fmt.Fprintf(&b, "child operations: %s", s.Ops)
	return b.String()
}

// addRepair adds one Repair's counts to sum.
func addRepair(sum *casstore.RepairReport, r casstore.RepairReport) {
	sum.Tokens += r.Tokens
	sum.EntriesAdded += r.EntriesAdded
	sum.EntriesRemoved += r.EntriesRemoved
	sum.ClaimsExpired += r.ClaimsExpired
	sum.DuplicatesRemoved += r.DuplicatesRemoved
	sum.TombstonesRemoved += r.TombstonesRemoved
	sum.BucketsRebuilt += r.BucketsRebuilt
	sum.DeletesFinished += r.DeletesFinished
	sum.Corrupt = append(sum.Corrupt, r.Corrupt...)
	sum.Skipped = append(sum.Skipped, r.Skipped...)
}

// Operations of the child.
const (
	opUpdate = "update" // save a new access token by user name (an insert if absent)
	opRotate = "rotate" // save a new access and refresh token: the lookup keys change
	opDelete = "delete" // find by user name, then DeleteToken
	opFind   = "find"   // find by user name
)

// Stages of a journal record.
const (
	stageBegin = "begin"
	stageAck   = "ack"
	stageFail  = "fail"
)

// record is one line of the child's journal.
type record struct {
	Seq     int    `json:"seq"`
	User    int    `json:"user"`
	Op      string `json:"op"`
	Stage   string `json:"stage"`
	Access  string `json:"access,omitempty"`
	Refresh string `json:"refresh,omitempty"`
	// What a find (or the find of a delete) saw.
	Read    bool   `json:"read,omitempty"`
	Found   bool   `json:"found,omitempty"`
	RAccess string `json:"raccess,omitempty"`
	RRefres string `json:"rrefresh,omitempty"`
	Class   string `json:"class,omitempty"` // error class of a failure
	Err     string `json:"err,omitempty"`
}

// Variables the parent hands a child.
const (
	envPrefix = "CLOUDTOKENS_RELIABILITY_PREFIX"
	envShards = "CLOUDTOKENS_RELIABILITY_SHARDS"
	envUsers  = "CLOUDTOKENS_RELIABILITY_USERS"
	envProcs  = "CLOUDTOKENS_RELIABILITY_GOROUTINES"
	envSeed   = "CLOUDTOKENS_RELIABILITY_SEED"
)

const journalName = "journal"

// RunKills runs the SIGKILL test described in the package documentation
// on stores opened by newStore. In a child process it plays the child and
// returns nil; the calling test must then return.
func RunKills(t *testing.T, cfg KillConfig, newStore Factory) *KillSummary {
	t.Helper()
	if c, ok := proctest.Self(t); ok {
		runKillChild(t, c, newStore)
		return nil
	}
	SkipShort(t)
	cfg = cfg.withDefaults()
	start := time.Now()
	base := proctest.UniqueName("kill-")
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6b696c6c))
	t.Logf("SIGKILL run: %d rounds, %d users, shards %v, kill within %v of the first acknowledgement, seed %d (%s=%d replays it), prefixes %s-r<n>",
		cfg.Rounds, cfg.Users, cfg.IndexShards, cfg.MaxKillDelay, cfg.Seed, EnvFaultSeed, cfg.Seed, base)
	sum := &KillSummary{Rounds: cfg.Rounds, Violations: map[string]int{}}
	ops := &outcomes{}
	for r := range cfg.Rounds {
		if t.Context().Err() != nil {
			break
		}
		f, killed, rep := killRound(t, cfg, r, base, rng, newStore, ops)
		if killed {
			sum.Killed++
		}
		if rep.Before != nil && !rep.Before.OK() {
			sum.UncleanBeforeRepair++
		}
		addRepair(&sum.Repaired, rep.Report)
		sum.RepairMax = max(sum.RepairMax, rep.Took)
		for k, n := range f.counts() {
			sum.Violations[k] += n
		}
		if f.total() > 0 {
			sum.RoundsWithViolations++
		}
		if f.total() > 0 {
			t.Errorf("round %d (%d shards):\n%s", r, cfg.IndexShards[r%len(cfg.IndexShards)], f)
		}
	}
	sum.Ops, sum.Time = ops.String(), time.Since(start)
	t.Logf("SIGKILL summary:\n%s", sum)
	return sum
}

// killRound runs round r: seed, start the child, kill it, verify.
func killRound(t *testing.T, cfg KillConfig, r int, base string, rng *rand.Rand, newStore Factory, ops *outcomes) (f *findings, killed bool, rep repairOutcome) {
	t.Helper()
	f = &findings{}
	ctx := t.Context()
	shards := cfg.IndexShards[r%len(cfg.IndexShards)]
	prefix := fmt.Sprintf("%s-r%d", base, r)
	dir := t.TempDir()

	logs := &logSink{}
	open := func() Store {
		return newStore(t, StoreOptions{Prefix: prefix, IndexShards: shards, Logger: logs.logger()})
	}
	// Seed the first half of the users, with refresh tokens.
	st := open()
	initial := map[int]state{}
	for u := range cfg.Users {
		initial[u] = state{}
		if u >= cfg.Users/2 {
			continue
		}
		tok := &tokenstore.Token{UserName: userName(u), ClientID: clientID, ClientSecret: clientSecret,
			AccessToken: fmt.Sprintf("seed-r%d-u%d", r, u), RefreshToken: fmt.Sprintf("seed-rt-r%d-u%d", r, u)}
		if err := st.SaveToken(ctx, tok); err != nil {
			t.Fatalf("round %d: seeding user %d: %v", r, u, err)
		}
		initial[u] = stateOf(tok)
	}

	env := append(slices.Clone(cfg.Env),
		envPrefix+"="+prefix, envShards+"="+strconv.Itoa(shards), envUsers+"="+strconv.Itoa(cfg.Users),
		envProcs+"="+strconv.Itoa(cfg.Goroutines), envSeed+"="+strconv.FormatUint(cfg.Seed+uint64(r), 10))
	child := proctest.Start(ctx, t, proctest.Options{Dir: dir, Worker: r, Env: env, Timeout: 5 * time.Minute})
	journal := filepath.Join(dir, journalName)

	// Kill it at a random moment after its first acknowledgement.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		recs, err := proctest.ReadJournal[record](journal)
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(recs, func(rc record) bool { return rc.Stage == stageAck }) {
			break
		}
		select {
		case <-child.Done():
			t.Fatalf("round %d: the child exited before its first acknowledgement: %v\n%s", r, child.Wait(), child.Output())
		case <-time.After(2 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("round %d: no acknowledgement from the child in 2 minutes\n%s", r, child.Output())
		}
	}
	time.Sleep(time.Duration(rng.Int64N(int64(cfg.MaxKillDelay) + 1)))
	if err := child.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := child.Wait(); !child.Killed() {
		f.add(vChild, "round %d: the child was not killed but exited: %v\n%s", r, err, child.Output())
		return f, false, rep
	}
	recs, err := proctest.ReadJournal[record](journal)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) > 0 && recs[len(recs)-1].Stage == stageBegin {
		killed = true
	}
	for _, rc := range recs {
		switch rc.Stage {
		case stageAck:
			ops.addClass(rc.Op, "ok")
		case stageFail:
			ops.addClass(rc.Op, rc.Class)
		}
	}

	// The legal states of every user, from the journal.
	legal, readViolations := legalStates(initial, recs)
	for _, v := range readViolations {
		f.add(vStaleRead, "round %d: %s", r, v)
	}
	attempted := attemptedValues(initial, recs)

	// As the kill left it (a fresh store: nothing cached).
	vs := open()
	o := observe(ctx, vs, cfg.Users, f, fmt.Sprintf("round %d, after the kill", r))
	judge(f, fmt.Sprintf("round %d, after the kill", r), o, legal, attempted, lastAcked(recs), "")

	// Check reports what the kill left, Repair fixes exactly that (and
	// again nothing), Check is then clean and the state still legal.
	rep = repairAndCheck(ctx, vs, f, fmt.Sprintf("round %d", r))
	if rep.Before != nil && !rep.Before.OK() {
		t.Logf("round %d: Check as the kill left the store: %s; Repair (%v): %s", r, checkSummary(rep.Before), rep.Took.Round(time.Millisecond), rep.Report)
	}
	o = observe(ctx, vs, cfg.Users, f, fmt.Sprintf("round %d, after Repair", r))
	judge(f, fmt.Sprintf("round %d, after Repair", r), o, legal, attempted, lastAcked(recs), vAfterRepair)

	// No user locked out: the save the kill cut short, retried as a
	// restarted function would, and then a new save of every user,
	// succeed in bounded time; and the store is clean after that.
	retryCutShort(ctx, vs, recs, cfg.LockoutLimit, f, fmt.Sprintf("round %d, retrying the cut-short saves", r))
	saveEveryUser(ctx, vs, cfg.Users, fmt.Sprintf("after-r%d", r), cfg.LockoutLimit, f, fmt.Sprintf("round %d, lockout check", r))
	if rep, err := vs.Check(ctx); err != nil || !rep.OK() {
		f.add(vCheckAfterSaves, "round %d: %s %v", r, checkSummary(rep), err)
	}
	logs.check(f, fmt.Sprintf("round %d, the parent's logs", r))
	if f.total() > 0 {
		t.Logf("round %d: the child's last journal records (test values only): %s", r, journalTail(recs, 8))
	}
	return f, killed, rep
}

// retryCutShort repeats, for every user whose last operation was a save
// that was not acknowledged (cut short by the kill, or failed), that same
// save: what a platform that restarts the killed function does.
func retryCutShort(ctx context.Context, st Store, recs []record, limit time.Duration, f *findings, stage string) {
	last := map[int]record{}
	var users []int
	for _, rc := range recs {
		if _, ok := last[rc.User]; !ok {
			users = append(users, rc.User)
		}
		last[rc.User] = rc
	}
	slices.Sort(users)
	for _, u := range users {
		rc := last[u]
		if rc.Stage == stageAck || (rc.Op != opUpdate && rc.Op != opRotate) {
			continue
		}
		// The begin record holds the values (a fail record repeats none).
		begin := rc
		for _, b := range recs {
			if b.Seq == rc.Seq && b.Stage == stageBegin {
				begin = b
			}
		}
		tok := &tokenstore.Token{UserName: userName(u), ClientID: clientID, ClientSecret: clientSecret,
			AccessToken: begin.Access, RefreshToken: begin.Refresh}
		start := time.Now()
		if err := withTimeout(ctx, limit, func(ctx context.Context) error { return st.SaveToken(ctx, tok) }); err != nil {
			f.add(vLockedOut, "%s: user %d: the %s save #%d again: failed after %v: %v", stage, u, begin.Op, begin.Seq, time.Since(start).Round(time.Millisecond), err)
		}
	}
}

// legalStates replays the journal: for every user, the states the store
// may hold after the child's operations, given the initial states. An
// acknowledged operation replaces the set by its effect; an operation
// that failed or was cut short by the kill adds its effect to it (it may
// or may not have applied). A find narrows the set to what it read, and
// must have read a legal state: the returned messages say where it did
// not.
func legalStates(initial map[int]state, recs []record) (map[int]map[state]bool, []string) {
	legal := map[int]map[state]bool{}
	for u, s := range initial {
		legal[u] = map[state]bool{s: true}
	}
	var bad []string
	bySeq := map[int][]record{}
	var seqs []int
	for _, rc := range recs {
		if _, ok := bySeq[rc.Seq]; !ok {
			seqs = append(seqs, rc.Seq)
		}
		bySeq[rc.Seq] = append(bySeq[rc.Seq], rc)
	}
	slices.Sort(seqs)
	for _, seq := range seqs {
		rs := bySeq[seq]
		begin, end := rs[0], rs[len(rs)-1]
		u := begin.User
		set := legal[u]
		if end.Read {
			read := state{}
			if end.Found {
				read = state{Present: true, Access: end.RAccess, Refresh: end.RRefres}
			}
			if !set[read] {
				bad = append(bad, fmt.Sprintf("user %d: %s #%d read %v, legal then: %v", u, begin.Op, seq, read, keys(set)))
			}
			set = map[state]bool{read: true}
		}
		acked := end.Stage == stageAck
		next := map[state]bool{}
		if !acked {
			for s := range set {
				next[s] = true
			}
		}
		for s := range set {
			switch begin.Op {
			case opUpdate, opRotate:
				eff := state{Present: true, Access: begin.Access, Refresh: s.Refresh}
				if begin.Refresh != "" {
					eff.Refresh = begin.Refresh
				}
				next[eff] = true
			case opDelete:
				next[state{}] = true
			case opFind:
				next[s] = true
			}
		}
		legal[u] = next
	}
	return legal, bad
}

func keys(set map[state]bool) []string {
	var out []string
	for s := range set {
		out = append(out, s.String())
	}
	slices.Sort(out)
	return out
}

// attemptedValues returns every access token written (or tried) per user.
func attemptedValues(initial map[int]state, recs []record) map[int]map[string]bool {
	out := map[int]map[string]bool{}
	for u, s := range initial {
		out[u] = map[string]bool{}
		if s.Present {
			out[u][s.Access] = true
		}
	}
	for _, rc := range recs {
		if rc.Stage == stageBegin && rc.Access != "" {
			out[rc.User][rc.Access] = true
		}
	}
	return out
}

// lastAcked returns, per user, the operation of its last acknowledged
// record.
func lastAcked(recs []record) map[int]string {
	out := map[int]string{}
	for _, rc := range recs {
		if rc.Stage == stageAck && rc.Op != opFind {
			out[rc.User] = rc.Op
		}
	}
	return out
}

// judge compares what a store shows with the legal states. kind, when
// set, replaces the violation kinds (for the checks after Repair).
func judge(f *findings, stage string, o *observed, legal map[int]map[state]bool, attempted map[int]map[string]bool, last map[int]string, kind string) {
	us := make([]int, 0, len(legal))
	for u := range legal {
		us = append(us, u)
	}
	slices.Sort(us)
	for _, u := range us {
		got, ok := o.find[u]
		if !ok || legal[u][got] {
			continue // a read error is recorded by observe
		}
		k := vIllegalState
		switch {
		case got.Present && !attempted[u][got.Access]:
			k = vWrongValue
		case !got.Present && (last[u] == opUpdate || last[u] == opRotate):
			k = vLostSave
		case got.Present && last[u] == opDelete:
			k = vResurrected
		}
		if kind != "" {
			k = kind
		}
		f.add(k, "%s: user %d is %v, legal: %v (last acknowledged: %s)", stage, u, got, keys(legal[u]), orNone(last[u]))
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// runKillChild is the child: it loops random operations on its users
// until it is killed, journaling each before and after.
func runKillChild(t *testing.T, c proctest.Child, newStore Factory) {
	shards, _ := strconv.Atoi(os.Getenv(envShards))
	users, _ := strconv.Atoi(os.Getenv(envUsers))
	procs, _ := strconv.Atoi(os.Getenv(envProcs))
	seed, _ := strconv.ParseUint(os.Getenv(envSeed), 10, 64)
	prefix := os.Getenv(envPrefix)
	if shards < 1 || users < 1 || procs < 1 || prefix == "" {
		t.Fatal("reliability: child without its configuration")
	}
	st := newStore(t, StoreOptions{Prefix: prefix, IndexShards: shards, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	j, err := proctest.OpenJournal(filepath.Join(c.Dir, journalName))
	if err != nil {
		t.Fatal(err)
	}
	var seqMu sync.Mutex
	seq := 0
	nextSeq := func() int {
		seqMu.Lock()
		defer seqMu.Unlock()
		seq++
		return seq
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute) // the parent kills it long before
	defer cancel()
	var wg sync.WaitGroup
	for g := range procs {
		rng := rand.New(rand.NewPCG(seed, uint64(g)))
		wg.Go(func() {
			for ctx.Err() == nil {
				u := g + procs*rng.IntN((users-g+procs-1)/procs)
				if err := childOp(ctx, st, j, nextSeq(), u, rng); err != nil {
					t.Errorf("reliability: child: journal: %v", err)
					cancel()
				}
			}
		})
	}
	wg.Wait()
}

// childOp does one random operation on user u, journaled; the error is
// the journal's.
func childOp(ctx context.Context, st Store, j *proctest.Journal, seq, u int, rng *rand.Rand) error {
	rc := record{Seq: seq, User: u, Stage: stageBegin}
	switch p := rng.IntN(100); {
	case p < 35:
		rc.Op, rc.Access = opUpdate, fmt.Sprintf("at-%d", seq)
	case p < 55:
		rc.Op, rc.Access, rc.Refresh = opRotate, fmt.Sprintf("at-%d", seq), fmt.Sprintf("rt-%d", seq)
	case p < 75:
		rc.Op = opDelete
	default:
		rc.Op = opFind
	}
	if err := j.Append(rc); err != nil {
		return err
	}
	var err error
	switch rc.Op {
	case opUpdate, opRotate:
		err = st.SaveToken(ctx, &tokenstore.Token{UserName: userName(u), ClientID: clientID, ClientSecret: clientSecret,
			AccessToken: rc.Access, RefreshToken: rc.Refresh, Expiry: time.Now().Add(time.Hour).Truncate(time.Second)})
	case opFind, opDelete:
		var got *tokenstore.Token
		got, err = st.FindToken(ctx, &tokenstore.Token{UserName: userName(u)})
		if err == nil || errors.Is(err, tokenstore.ErrNotFound) {
			rc.Read, rc.Found = true, err == nil
			if got != nil {
				rc.RAccess, rc.RRefres = got.AccessToken, got.RefreshToken
			}
			err = nil
			if rc.Op == opDelete && got != nil {
				err = st.DeleteToken(ctx, got.ID)
				if errors.Is(err, tokenstore.ErrNotFound) {
					err = nil // gone either way
				}
			}
		}
	}
	rc.Stage = stageAck
	if err != nil {
		rc.Stage, rc.Class, rc.Err = stageFail, errClass(err), err.Error()
	}
	return j.Append(rc)
}

// journalTail formats the last n journal records, for a failed round.
func journalTail(recs []record, n int) string {
	var b strings.Builder
	for _, rc := range recs[max(0, len(recs)-n):] {
		fmt.Fprintf(&b, "\n    #%d user %d %s %s", rc.Seq, rc.User, rc.Op, rc.Stage)
		if rc.Err != "" {
			fmt.Fprintf(&b, " (%s)", rc.Err)
		}
	}
	return b.String()
}
