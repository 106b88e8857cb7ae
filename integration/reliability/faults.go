package reliability

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/faultinject"
	"github.com/cloudtokens/cloudtokens/proctest"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// FaultConfig describes a random-fault run. The zero value is the CI run:
// 2 stores × 8 goroutines × 40 users, 3 rounds, p = 0.15, seed 1.
type FaultConfig struct {
	// Stores is the number of stores, as separate processes would have
	// (default 2), each with its own client and fault injector.
	Stores int
	// Goroutines per store (default 8); goroutine g of every store
	// handles the users u with u % Goroutines == g, so each user has one
	// writer in every store at the same time.
	Goroutines int
	// Users is the number of users (default 40).
	Users int
	// Rounds of saves and finds before the delete and final phases
	// (default 3, or CLOUDTOKENS_FAULT_ROUNDS; 15 in a soak run).
	Rounds int
	// IndexShards of every store (default 4).
	IndexShards int
	// P is the fault probability (default faultinject.DefaultP).
	P float64
	// Seed of store i's injector is Seed+i (default
	// CLOUDTOKENS_FAULT_SEED, else 1).
	Seed uint64
	// OpTimeout bounds each operation (default 1 minute).
	OpTimeout time.Duration
	// LockoutLimit bounds each save of the lockout check (default 20s).
	LockoutLimit time.Duration
}

func (c FaultConfig) withDefaults() FaultConfig {
	if c.Stores <= 0 {
		c.Stores = 2
	}
	if c.Goroutines <= 0 {
		c.Goroutines = 8
	}
	if c.Users <= 0 {
		c.Users = 40
	}
	if c.Rounds <= 0 {
		def := 3
		if soak() {
			def = 15
		}
		c.Rounds = envInt(EnvFaultRounds, def)
	}
	if c.IndexShards <= 0 {
		c.IndexShards = 4
	}
	if c.P == 0 {
		c.P = faultinject.DefaultP
	}
	if c.Seed == 0 {
		c.Seed = seedFrom(EnvFaultSeed, 1)
	}
	if c.OpTimeout <= 0 {
		c.OpTimeout = time.Minute
	}
	if c.LockoutLimit <= 0 {
		c.LockoutLimit = 20 * time.Second
	}
	return c
}

// FaultSummary is what a random-fault run did and found.
type FaultSummary struct {
	// Faults sums the injectors' counts.
	Faults faultinject.Counts
	// Ops counts the operations by outcome.
	Ops string
	// Violations counts the violations by kind.
	Violations map[string]int
	// Check is the Check report right after the faults (before the
	// lockout check and Repair), in one line.
	Check string
	// Run and Verify are the wall times of the workload and of the
	// verification.
	Run, Verify time.Duration
	// LogRecords is the number of log records the stores wrote.
	LogRecords int
	// Repair is what Repair changed after the lockout check, RepairTook
	// how long it took.
	Repair     casstore.RepairReport
	RepairTook time.Duration
}

func (s *FaultSummary) String() string {
	kinds := make([]string, 0, len(s.Violations))
	for k := range s.Violations {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	var b strings.Builder
	fmt.Fprintf(&b, "faults: %v\nrun %v, verify %v\noperations: %s\nlog records: %d\nCheck after the faults: %s\nRepair after the lockout check (%v): %s\nviolations:", s.Faults,
		s.Run.Round(time.Millisecond), s.Verify.Round(time.Millisecond), s.Ops, s.LogRecords, s.Check, s.RepairTook.Round(time.Millisecond), s.Repair)
	if len(kinds) == 0 {
		b.WriteString(" none")
	}
	for _, k := range kinds {
		fmt.Fprintf(&b, "\n  %4d  %s", s.Violations[k], k)
	}
	return b.String()
}

// faultRun is the shared state of one run's workload.
type faultRun struct {
	cfg FaultConfig
	ops outcomes
	f   findings

	mu        sync.Mutex
	attempted []map[string]bool // per user: every access token any save tried
	final     []map[string]bool // per user: the access tokens of the final phase's saves
	finalAck  []bool            // per user: a final save was acknowledged
	savedAck  []bool            // per user: a save was acknowledged (rounds)
	savedPrev []bool            // savedAck as it was when the current round began
	deleteAck []bool            // per user: a delete (or a find that found nothing) was acknowledged in the delete phase
	reads     []readRec
}

type readRec struct {
	user   int
	access string
	how    string
}

// RunFaults runs the random-fault test described in the package
// documentation on stores opened by newStore.
func RunFaults(t *testing.T, cfg FaultConfig, newStore Factory) *FaultSummary {
	t.Helper()
	SkipShort(t)
	cfg = cfg.withDefaults()
	prefix := proctest.UniqueName("faults-")
	t.Logf("random faults: %d stores × %d goroutines × %d users, %d rounds, p=%.2f, seed %d (%s=%d replays it), prefix %s",
		cfg.Stores, cfg.Goroutines, cfg.Users, cfg.Rounds, cfg.P, cfg.Seed, EnvFaultSeed, cfg.Seed, prefix)
	run := &faultRun{cfg: cfg}
	for range cfg.Users {
		run.attempted = append(run.attempted, map[string]bool{})
		run.final = append(run.final, map[string]bool{})
	}
	run.finalAck = make([]bool, cfg.Users)
	run.savedAck = make([]bool, cfg.Users)
	run.deleteAck = make([]bool, cfg.Users)

	logs := &logSink{}
	injs := make([]*faultinject.Injector, cfg.Stores)
	stores := make([]Store, cfg.Stores)
	for i := range stores {
		injs[i] = faultinject.New(faultinject.Config{Seed: cfg.Seed + uint64(i), P: cfg.P})
		stores[i] = newStore(t, StoreOptions{Prefix: prefix, IndexShards: cfg.IndexShards, Faults: injs[i], Logger: logs.logger()})
	}

	start := time.Now()
	ctx := t.Context()
	for r := 1; r <= cfg.Rounds; r++ {
		run.savedPrev = slices.Clone(run.savedAck)
		run.phase(ctx, stores, func(ctx context.Context, s, g, u int, st Store) {
			run.save(ctx, st, u, fmt.Sprintf("at-s%d-r%d-u%d", s, r, u), refreshOf(s, r, u), false)
			run.find(ctx, st, u)
		})
	}
	run.phase(ctx, stores, func(ctx context.Context, s, g, u int, st Store) {
		if u%4 == 0 {
			run.remove(ctx, st, u)
		}
	})
	run.phase(ctx, stores, func(ctx context.Context, s, g, u int, st Store) {
		if u%8 != 0 { // users 0, 8, 16, ... stay deleted
			run.save(ctx, st, u, fmt.Sprintf("at-s%d-final-u%d", s, u), refreshOf(s, cfg.Rounds+1, u), true)
		}
	})
	sum := &FaultSummary{Run: time.Since(start)}
	for _, inj := range injs {
		inj.Pause()
		c := inj.Counts()
		if sum.Faults.ByKind == nil {
			sum.Faults.ByKind = map[faultinject.Kind]int64{}
		}
		sum.Faults.Requests += c.Requests
		for k, n := range c.ByKind {
			sum.Faults.ByKind[k] += n
		}
	}

	start = time.Now()
	run.verify(ctx, newStore(t, StoreOptions{Prefix: prefix, IndexShards: cfg.IndexShards, Logger: logs.logger()}), prefix, sum)
	sum.Verify = time.Since(start)
	sum.LogRecords = logs.check(&run.f, "logs")
	sum.Ops = run.ops.String()
	sum.Violations = run.f.counts()
	t.Logf("random faults summary:\n%s", sum)
	if run.f.total() > 0 {
		t.Errorf("random faults: violations:\n%s", &run.f)
	}
	return sum
}

// refreshOf is the refresh token of a save of user u by store s in round
// r: users u%3 == 0 rotate it every save, u%3 == 1 keep one for ever,
// u%3 == 2 have none.
func refreshOf(s, r, u int) string {
	switch u % 3 {
	case 0:
		return fmt.Sprintf("rt-s%d-r%d-u%d", s, r, u)
	case 1:
		return fmt.Sprintf("rt-u%d", u)
	}
	return ""
}

// phase runs fn for every store, goroutine and user of the goroutine,
// and returns when all are done.
func (run *faultRun) phase(ctx context.Context, stores []Store, fn func(ctx context.Context, s, g, u int, st Store)) {
	var wg sync.WaitGroup
	for s, st := range stores {
		for g := range run.cfg.Goroutines {
			wg.Go(func() {
				for u := g; u < run.cfg.Users; u += run.cfg.Goroutines {
					fn(ctx, s, g, u, st)
				}
			})
		}
	}
	wg.Wait()
}

func (run *faultRun) save(ctx context.Context, st Store, u int, access, refresh string, final bool) {
	run.mu.Lock()
	run.attempted[u][access] = true
	if final {
		run.final[u][access] = true
	}
	run.mu.Unlock()
	tok := &tokenstore.Token{UserName: userName(u), ClientID: clientID, ClientSecret: clientSecret,
		AccessToken: access, RefreshToken: refresh, Expiry: time.Now().Add(time.Hour).Truncate(time.Second)}
	err := withTimeout(ctx, run.cfg.OpTimeout, func(ctx context.Context) error { return st.SaveToken(ctx, tok) })
	run.ops.add("save", err)
	if err == nil {
		run.mu.Lock()
		if final {
			run.finalAck[u] = true
		} else {
			run.savedAck[u] = true
		}
		run.mu.Unlock()
	}
}

// findToken is st.FindToken(q) within the operation timeout.
func (run *faultRun) findToken(ctx context.Context, st Store, q *tokenstore.Token) (*tokenstore.Token, error) {
	ctx, cancel := context.WithTimeout(ctx, run.cfg.OpTimeout)
	defer cancel()
	return st.FindToken(ctx, q)
}

func (run *faultRun) find(ctx context.Context, st Store, u int) {
	got, err := run.findToken(ctx, st, &tokenstore.Token{UserName: userName(u)})
	run.ops.add("find", err)
	if errors.Is(err, tokenstore.ErrNotFound) && run.savedPrev[u] {
		// No delete before the delete phase: a save acknowledged in an
		// earlier round must be found.
		run.f.add(vLostSave, "user %d: a save was acknowledged in an earlier round, FindToken finds nothing", u)
	}
	if err != nil {
		return
	}
	if got.UserName != userName(u) {
		run.f.add(vWrongValue, "user %d: FindToken returned token %s of user %q", u, got.ID, got.UserName)
		return
	}
	run.mu.Lock()
	run.reads = append(run.reads, readRec{user: u, access: got.AccessToken, how: "find by user name"})
	run.mu.Unlock()
	if got.RefreshToken == "" {
		return
	}
	byRefresh, err := run.findToken(ctx, st, &tokenstore.Token{ClientID: clientID, ClientSecret: clientSecret, RefreshToken: got.RefreshToken})
	run.ops.add("find-by-refresh", err)
	if err != nil {
		return // a concurrent save may have rotated it away meanwhile
	}
	u2, _ := userOf(byRefresh.UserName)
	if u2 != u {
		run.f.add(vWrongValue, "user %d: its refresh token found token %s of user %q", u, byRefresh.ID, byRefresh.UserName)
		return
	}
	run.mu.Lock()
	run.reads = append(run.reads, readRec{user: u, access: byRefresh.AccessToken, how: "find by refresh token"})
	run.mu.Unlock()
}

func (run *faultRun) remove(ctx context.Context, st Store, u int) {
	got, err := run.findToken(ctx, st, &tokenstore.Token{UserName: userName(u)})
	if err == nil {
		err = withTimeout(ctx, run.cfg.OpTimeout, func(ctx context.Context) error { return st.DeleteToken(ctx, got.ID) })
	}
	run.ops.add("delete", err)
	if err == nil || errors.Is(err, tokenstore.ErrNotFound) {
		run.mu.Lock()
		run.deleteAck[u] = true
		run.mu.Unlock()
	}
}

// verify checks the final state on a clean store.
func (run *faultRun) verify(ctx context.Context, st Store, prefix string, sum *FaultSummary) {
	f := &run.f
	for _, rd := range run.reads {
		if !run.attempted[rd.user][rd.access] {
			f.add(vWrongValue, "user %d: %s returned an access token nobody wrote for the user", rd.user, rd.how)
		}
	}
	o := observe(ctx, st, run.cfg.Users, f, "after the run")
	for u := range run.cfg.Users {
		got, ok := o.find[u]
		if !ok {
			continue
		}
		for _, tok := range o.listed[u] {
			if !run.attempted[u][tok.AccessToken] {
				f.add(vWrongValue, "user %d: Tokens lists token %s with an access token nobody wrote", u, tok.ID)
			}
		}
		switch {
		case got.Present && !run.attempted[u][got.Access]:
			f.add(vWrongValue, "user %d: found with an access token nobody wrote", u)
		case u%8 == 0 && run.deleteAck[u] && got.Present:
			f.add(vResurrected, "user %d: deleted (acknowledged), found again with %s", u, got.Access)
		case u%8 != 0 && run.finalAck[u] && !got.Present:
			f.add(vLostSave, "user %d: its final save was acknowledged, it is not found", u)
		case u%8 != 0 && run.finalAck[u] && !run.final[u][got.Access]:
			f.add(vLostSave, "user %d: its final save was acknowledged, it holds %s from an earlier round", u, got.Access)
		}
	}
	if rep, err := st.Check(ctx); err == nil {
		sum.Check = checkSummary(rep)
	} else {
		sum.Check = err.Error()
	}
	// No user is locked out once the faults stop.
	saveEveryUser(ctx, st, run.cfg.Users, "after-faults", run.cfg.LockoutLimit, f, "lockout check")
	// Check reports what is left, Repair fixes exactly that (and again
	// nothing), and then Check is clean, with one record per user.
	rep := repairAndCheck(ctx, st, f, "after the run")
	sum.Repair, sum.RepairTook = rep.Report, rep.Took
	if rep.After != nil && rep.After.Tokens != run.cfg.Users {
		f.add(vCheckUnclean, "after Repair: %d token documents for %d users", rep.After.Tokens, run.cfg.Users)
	}
}
