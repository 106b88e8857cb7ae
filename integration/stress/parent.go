package stress

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/proctest"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// maxProblems bounds the problems Run prints; the count is always given.
const maxProblems = 30

func runParent(t *testing.T, cfg Config, env map[string]string, newStore Factory) *Summary {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), cfg.Timeout)
	defer cancel()

	results, outputs, total := spawn(ctx, t, cfg, env, dir)
	sum := summarize(cfg, results)
	sum.Total = total
	if cfg.VisibilityLag > 0 {
		time.Sleep(cfg.VisibilityLag) // the children's last writes become visible
	}

	// Verify with a fresh store, whatever happened: its report says more
	// than a failed child, and the cleanup needs it anyway.
	vs := newStore(t, StoreOptions{Prefix: cfg.Prefix, IndexShards: cfg.IndexShards, Worker: -1, env: env})
	if vs == nil {
		t.Fatal("stress: the factory returned a nil Store")
	}
	if !cfg.KeepData {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
			defer cancel()
			if err := vs.DeleteTokens(ctx); err != nil {
				t.Errorf("stress: cleanup: DeleteTokens: %v", err)
			}
		})
	}
	start := time.Now()
	toks, err := vs.Tokens(ctx)
	if err != nil {
		t.Fatalf("stress: verification: Tokens: %v", err)
	}
	rep, err := vs.Check(ctx)
	if err != nil {
		t.Fatalf("stress: verification: Check: %v", err)
	}
	problems := verify(cfg, results, toks, rep)
	problems = append(problems, verifyLookups(ctx, cfg, vs, toks)...)
	if cfg.CheckOutputs != nil {
		problems = append(problems, cfg.CheckOutputs(outputs)...)
	}
	sum.Verify = time.Since(start)
	sum.Buckets = rep.Buckets
	for _, sz := range rep.ShardSizes {
		sum.LargestBucket = max(sum.LargestBucket, sz)
	}
	if rep.Buckets < cfg.MinBuckets {
		problems = append(problems, fmt.Sprintf("the index has %d buckets at the end, want at least %d", rep.Buckets, cfg.MinBuckets))
	}

	t.Logf("stress summary (prefix %s):\n%s\ncheck: %s; index shard sizes %v", cfg.Prefix, sum, reportSummary(rep), rep.ShardSizes)
	for _, r := range results {
		if r != nil && r.ErrorCount > 0 {
			t.Errorf("stress: worker %d reported %d unexpected errors or inconsistencies; the first ones:\n%s", r.Worker, r.ErrorCount, strings.Join(r.Errors, "\n"))
		}
	}
	if sum.Conflicts > 0 {
		var first []string
		for _, r := range results {
			if r != nil {
				for _, c := range r.Conflicts[:min(len(r.Conflicts), 5)] {
					first = append(first, fmt.Sprintf("worker %d: %s", r.Worker, c))
				}
			}
		}
		msg := fmt.Sprintf("stress: %d operations failed with tokenstore.ErrConflict; the first ones:\n%s", sum.Conflicts, strings.Join(first, "\n"))
		if cfg.AllowConflicts {
			t.Log(msg)
		} else {
			t.Error(msg + "\n(set Config.AllowConflicts to tolerate them)")
		}
	}
	if len(problems) > 0 {
		shown := problems[:min(len(problems), maxProblems)]
		t.Errorf("stress: verification found %d problems:\n%s%s", len(problems), strings.Join(shown, "\n"), traceIDs(rep, outputs))
	}
	return sum
}

// spawn runs the children and returns their results (nil for a child that
// wrote none) and the wall time from the first start to the last exit.
func spawn(ctx context.Context, t *testing.T, cfg Config, env map[string]string, dir string) ([]*childResult, []string, time.Duration) {
	t.Helper()
	extra := []string{envConfig + "=" + encodeChildConfig(cfg), envPrefix + "=" + cfg.Prefix}
	for k, v := range env {
		extra = append(extra, k+"="+v)
	}
	ps := make([]*proctest.Process, cfg.Processes)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range cfg.Processes {
		ps[w] = proctest.Start(ctx, t, proctest.Options{Dir: dir, Worker: w, Env: extra, Timeout: cfg.Timeout + time.Minute, Verbose: true})
		wg.Go(func() {
			if err := ps[w].Wait(); err != nil {
				proctest.Abort(dir, fmt.Sprintf("worker %d exited: %v", w, err))
			}
		})
	}
	wg.Wait()
	total := time.Since(start)

	results := make([]*childResult, cfg.Processes)
	outputs := make([]string, cfg.Processes)
	for w, p := range ps {
		r, err := readResult(dir, w)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stress: %v", err)
		}
		results[w] = r
		out := strings.TrimSpace(p.Output())
		outputs[w] = out
		switch err := p.Wait(); {
		case err != nil:
			if ctx.Err() != nil {
				t.Errorf("stress: worker %d killed after the timeout of %v: %v\n%s", w, cfg.Timeout, err, out)
			} else {
				t.Errorf("stress: worker %d failed: %v\n%s", w, err, out)
			}
		case r == nil:
			t.Errorf("stress: worker %d exited without a result\n%s", w, out)
		case testing.Verbose():
			t.Logf("stress: worker %d output:\n%s", w, out)
		}
	}
	return results, outputs, total
}

// verify compares the store's final state (its token listing and its
// Check report) with what the children did and returns the problems.
func verify(cfg Config, results []*childResult, toks []*tokenstore.Token, rep *casstore.Report) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	var done []*childResult
	for w, r := range results {
		switch {
		case r == nil:
			add("worker %d reported no result", w)
		case !r.Done:
			add("worker %d did not finish the workload", w)
		}
		if r != nil && len(r.SavedID) == cfg.Users {
			done = append(done, r)
		}
	}

	// Every process must have seen the same token for a user.
	agreed := make([]string, cfg.Users)
	for u := range cfg.Users {
		var ids []string
		for _, r := range done {
			for _, id := range []string{r.SavedID[u], r.FoundID[u], r.RefreshedID[u]} {
				if id != "" && !slices.Contains(ids, id) {
					ids = append(ids, id)
				}
			}
		}
		switch len(ids) {
		case 0:
			add("user %d: no process saved or found it", u)
		case 1:
			agreed[u] = ids[0]
		default:
			slices.Sort(ids)
			add("user %d: the processes saw %d different tokens %v (a duplicate, or a token lost and saved again)", u, len(ids), ids)
		}
	}

	// Exactly one DeleteToken per deleted user succeeded.
	deletes, deletedUsers := 0, 0
	for u := range cfg.Users {
		if !cfg.deleted(u) {
			continue
		}
		deletedUsers++
		n := 0
		for _, r := range done {
			if r.Deleted[u] {
				n++
			}
		}
		deletes += n
		if n != 1 {
			add("user %d: %d DeleteToken calls succeeded, want exactly 1", u, n)
		}
	}
	if deletes != deletedUsers {
		add("%d DeleteToken calls succeeded for %d deleted users", deletes, deletedUsers)
	}

	// One token per surviving user, none for a deleted one, holding what
	// the last successful saves wrote.
	byUser := map[int][]*tokenstore.Token{}
	for _, tok := range toks {
		u, ok := userOf(tok.UserName)
		if !ok || u >= cfg.Users {
			add("token %s has user name %q, which is none of the run's", tok.ID, tok.UserName)
			continue
		}
		byUser[u] = append(byUser[u], tok)
	}
	survivors := 0
	for u := range cfg.Users {
		ts := byUser[u]
		ids := make([]string, len(ts))
		for i, tok := range ts {
			ids[i] = tok.ID
		}
		if cfg.deleted(u) {
			if len(ts) > 0 {
				add("user %d was deleted but Tokens lists %v", u, ids)
			}
			continue
		}
		survivors++
		switch {
		case len(ts) == 0:
			add("user %d lost: Tokens lists no token for it", u)
			continue
		case len(ts) > 1:
			add("user %d duplicated: Tokens lists %d tokens %v", u, len(ts), ids)
			continue
		}
		tok := ts[0]
		if agreed[u] != "" && tok.ID != agreed[u] {
			add("user %d: Tokens lists token %s, the processes saw %s", u, tok.ID, agreed[u])
		}
		if want := lastWrites(done, u); !slices.Contains(want, tok.AccessToken) {
			add("user %d: token %s has an access token that none of the %d last successful saves wrote", u, tok.ID, len(want))
		}
		if cfg.hasRefresh(u) && (tok.RefreshToken != refreshTokenOf(u) || tok.ClientID != clientID || tok.ClientSecret != clientSecret) {
			add("user %d: token %s lost its refresh token or client", u, tok.ID)
		}
	}
	if len(toks) != survivors {
		add("Tokens lists %d tokens, want %d (one per surviving user)", len(toks), survivors)
	}

	// The Check verdict goes first: it sums up the state of the store.
	var check string
	switch {
	case rep == nil:
		check = "no Check report"
	case !rep.OK():
		check = "Check: the index does not match the documents: " + reportSummary(rep)
	case rep.Tokens != survivors:
		check = fmt.Sprintf("Check found %d token documents, want %d", rep.Tokens, survivors)
	}
	if check != "" {
		problems = append([]string{check}, problems...)
	}
	return problems
}

// reportSummary is a short form of a Check report: the size of every
// list, with the first few entries.
func reportSummary(rep *casstore.Report) string {
	const shown = 5
	var b strings.Builder
	fmt.Fprintf(&b, "%d token documents", rep.Tokens)
	for _, l := range []struct {
		name string
		list []string
	}{{"unindexed", rep.Unindexed}, {"missing", rep.Missing}, {"missing keys", rep.MissingKeys}, {"duplicates", rep.Duplicates},
		{"corrupt", rep.Corrupt}, {"stale entries", rep.StaleEntries}, {"pending claims", rep.PendingClaims},
		{"unfinished deletes", rep.UnfinishedDeletes}} {
		if len(l.list) == 0 {
			continue
		}
		fmt.Fprintf(&b, "; %d %s %q", len(l.list), l.name, l.list[:min(len(l.list), shown)])
		if len(l.list) > shown {
			b.WriteString(" …")
		}
	}
	if len(rep.MissingBuckets) > 0 {
		fmt.Fprintf(&b, "; missing buckets %v", rep.MissingBuckets)
	}
	return b.String()
}

// lastWrites returns the access tokens that the successful saves of the
// last phase with any successful save of user u wrote: any of them may be
// the final value, nothing else may.
func lastWrites(results []*childResult, u int) []string {
	var out []string
	for phase := 3; phase >= 1 && len(out) == 0; phase -= 2 {
		for _, r := range results {
			if r.AccessPhase[u] == phase {
				out = append(out, r.Access[u])
			}
		}
	}
	return out
}

// verifyLookups checks, with the verification store, that every
// surviving user is found by user name (and, where it has one, by refresh
// token) as the one token Tokens lists for it, and that no lookup finds a
// deleted user. The lookups run lookupWorkers at a time.
func verifyLookups(ctx context.Context, cfg Config, st Store, toks []*tokenstore.Token) []string {
	listed := map[int][]string{}
	for _, tok := range toks {
		if u, ok := userOf(tok.UserName); ok {
			listed[u] = append(listed[u], tok.ID)
		}
	}
	var mu sync.Mutex
	var problems []string
	add := func(format string, args ...any) {
		mu.Lock()
		problems = append(problems, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	users := make(chan int)
	var wg sync.WaitGroup
	for range lookupWorkers {
		wg.Go(func() {
			for u := range users {
				queries := []*tokenstore.Token{{UserName: userName(u)}}
				if cfg.hasRefresh(u) {
					queries = append(queries, &tokenstore.Token{ClientID: clientID, ClientSecret: clientSecret, RefreshToken: refreshTokenOf(u)})
				}
				for _, q := range queries {
					rule, _ := tokenstore.QueryRuleOf(q)
					tok, err := st.FindToken(ctx, q)
					switch {
					case cfg.deleted(u) && err == nil:
						add("user %d was deleted but FindToken by %s finds token %s", u, rule, tok.ID)
					case cfg.deleted(u) && errors.Is(err, tokenstore.ErrNotFound):
					case err != nil:
						add("user %d: FindToken by %s: %v", u, rule, err)
					case len(listed[u]) == 1 && tok.ID != listed[u][0]:
						add("user %d: FindToken by %s finds token %s, Tokens lists %s", u, rule, tok.ID, listed[u][0])
					}
				}
			}
		})
	}
	for u := range cfg.Users {
		users <- u
	}
	close(users)
	wg.Wait()
	slices.Sort(problems)
	return problems
}

// lookupWorkers is the number of lookups verifyLookups makes at once.
const lookupWorkers = 8

// traceIDs returns, for the token IDs that Check names in rep, the lines
// of the children's output (their logs: fences, failed releases) that
// mention them, so that a failed run says which path left the state.
func traceIDs(rep *casstore.Report, outputs []string) string {
	if rep == nil || rep.OK() {
		return ""
	}
	seen := map[string]bool{}
	var ids []string
	for _, l := range [][]string{rep.Unindexed, rep.Missing, rep.MissingKeys, rep.Duplicates, rep.Corrupt, rep.StaleEntries, rep.PendingClaims, rep.UnfinishedDeletes} {
		for _, item := range l {
			for _, f := range strings.FieldsFunc(item, func(r rune) bool { return r == ' ' || r == ',' || r == ':' || r == '(' || r == ')' }) {
				if len(f) == 26 && !seen[f] && len(ids) < maxProblems {
					seen[f] = true
					ids = append(ids, f)
				}
			}
		}
	}
	var b strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&b, "\nworker logs that mention %s:", id)
		found := false
		for w, out := range outputs {
			for line := range strings.Lines(out) {
				if strings.Contains(line, id) {
					fmt.Fprintf(&b, "\n  worker %d: %s", w, strings.TrimSpace(line))
					found = true
				}
			}
		}
		if !found {
			b.WriteString(" none")
		}
	}
	return b.String()
}
