package stress

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// envDataDir carries the file backend's directory from the parent to the
// children through Config.Env, as a backend suite would pass the address
// of an emulator the parent started.
const envDataDir = "STRESS_SELFTEST_DATA"

// envBroken asks TestStressBrokenBackend to run (see TestRunDetectsLostUpdates).
const envBroken = "STRESS_SELFTEST_BROKEN"

// fileFactory builds casstore stores on a fileBackend in the directory the
// parent passed in envDataDir, one subdirectory per run prefix.
func fileFactory(broken bool) Factory {
	return func(tb testing.TB, o StoreOptions) Store {
		dir := o.Getenv(envDataDir)
		if dir == "" {
			tb.Fatalf("%s is not set", envDataDir)
		}
		b, err := newFileBackend(filepath.Join(dir, o.Prefix))
		if err != nil {
			tb.Fatal(err)
		}
		b.broken = broken
		tb.Cleanup(func() { tb.Logf("worker %d, file backend calls: %s", o.Worker, b) })
		return casstore.New(b, casstore.Options{IndexShards: o.IndexShards, CacheIndex: true})
	}
}

// TestStress runs the full workload (4 processes × 16 goroutines × 500
// users, 16 index shards) through casstore on the file backend.
func TestStress(t *testing.T) {
	var cfg Config
	if !IsChild() {
		cfg.Env = []string{envDataDir + "=" + t.TempDir()}
	}
	sum := Run(t, cfg, fileFactory(false))
	if sum == nil {
		return // a child
	}
	// The harness really did the work: every call was made and the
	// outcomes add up to the workload.
	c := sum.Config
	deleted, withRefresh, survivorsWithRefresh := 0, 0, 0
	for u := range c.Users {
		if c.deleted(u) {
			deleted++
		}
		if c.hasRefresh(u) {
			withRefresh++
			if !c.deleted(u) {
				survivorsWithRefresh++
			}
		}
	}
	want := map[string]OpStat{
		OpSave:         {Calls: c.Processes * c.Users, OK: c.Processes * c.Users},
		OpFindUser:     {Calls: c.Processes * c.Users, OK: c.Processes * c.Users},
		OpFindRefresh:  {Calls: c.Processes * withRefresh, OK: c.Processes * withRefresh},
		OpDelete:       {Calls: c.Processes * deleted, OK: deleted, NotFound: (c.Processes - 1) * deleted},
		OpRefreshUser:  {Calls: c.Processes * (c.Users - deleted - survivorsWithRefresh), OK: c.Processes * (c.Users - deleted - survivorsWithRefresh)},
		OpRefreshToken: {Calls: c.Processes * survivorsWithRefresh, OK: c.Processes * survivorsWithRefresh},
	}
	if len(sum.Ops) != len(want) {
		t.Errorf("summary has %d kinds of operation, want %d", len(sum.Ops), len(want))
	}
	for _, o := range sum.Ops {
		w := want[o.Name]
		if o.Calls != w.Calls || o.OK != w.OK || o.NotFound != w.NotFound || o.Conflict != 0 || o.Failed != 0 {
			t.Errorf("%s: %d calls, %d ok, %d not found, %d conflicts, %d failed; want %d calls, %d ok, %d not found",
				o.Name, o.Calls, o.OK, o.NotFound, o.Conflict, o.Failed, w.Calls, w.OK, w.NotFound)
		}
	}
	if len(sum.Phases) != 3 {
		t.Errorf("summary has %d phases, want 3", len(sum.Phases))
	}
}

// TestStressBrokenBackend is the target of TestRunDetectsLostUpdates: the
// workload on a backend whose Update ignores versions. It runs only when
// that test asks for it.
func TestStressBrokenBackend(t *testing.T) {
	if os.Getenv(envBroken) != "1" {
		t.Skip("run by TestRunDetectsLostUpdates")
	}
	cfg := Config{Processes: 3, Goroutines: 8, Users: 60, IndexShards: 1}
	if !IsChild() {
		cfg.Env = []string{envDataDir + "=" + t.TempDir()}
	}
	Run(t, cfg, fileFactory(true))
}

// TestRunDetectsLostUpdates runs the harness, in a separate test process,
// on a backend without compare-and-swap and expects it to fail the test,
// reporting lost index entries.
func TestRunDetectsLostUpdates(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), exe, "-test.run=^TestStressBrokenBackend$", "-test.v=true", "-test.count=1")
	cmd.Env = append(os.Environ(), envBroken+"=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the harness passed a store without compare-and-swap:\n%s", out)
	}
	if _, ok := err.(*exec.ExitError); !ok {
		t.Fatal(err)
	}
	for _, want := range []string{"--- FAIL: TestStressBrokenBackend", "stress: verification found", "Check: the index does not match the documents"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestVerify feeds verify the results and final state of a correct run,
// then breaks them one way at a time.
func TestVerify(t *testing.T) {
	cfg := Config{Processes: 2, Users: 10}.withDefaults()
	type state struct {
		results []*childResult
		toks    []*tokenstore.Token
		rep     *casstore.Report
	}
	// A correct run: users 0 and 5 deleted (by worker 0 and 1), the
	// others refreshed by both workers; worker 1's refresh came last.
	good := func() *state {
		s := &state{results: []*childResult{newChildResult(0, cfg.Users), newChildResult(1, cfg.Users)}}
		for u := range cfg.Users {
			id := fmt.Sprintf("id%d", u)
			for w, r := range s.results {
				r.Done = true
				r.SavedID[u], r.FoundID[u] = id, id
				if cfg.deleted(u) {
					r.Deleted[u] = w == u%2
					continue
				}
				r.RefreshedID[u] = id
				r.Access[u], r.AccessPhase[u] = accessTokenOf(3, w, u), 3
			}
			if !cfg.deleted(u) {
				tok := &tokenstore.Token{ID: id, UserName: userName(u), AccessToken: accessTokenOf(3, 1, u)}
				if cfg.hasRefresh(u) {
					tok.RefreshToken, tok.ClientID, tok.ClientSecret = refreshTokenOf(u), clientID, clientSecret
				}
				s.toks = append(s.toks, tok)
			}
		}
		s.rep = &casstore.Report{Tokens: len(s.toks)}
		return s
	}
	if s := good(); len(verify(cfg, s.results, s.toks, s.rep)) != 0 {
		t.Fatalf("verify of a correct run: %q", verify(cfg, s.results, s.toks, s.rep))
	}
	cases := []struct {
		name   string
		mutate func(s *state)
		want   string
	}{
		{"lost user", func(s *state) { s.toks = s.toks[1:] }, "user 1 lost"},
		{"duplicate user", func(s *state) {
			dup := s.toks[0].Clone()
			dup.ID = "other"
			s.toks = append(s.toks, dup)
		}, "user 1 duplicated"},
		{"deleted user listed", func(s *state) {
			s.toks = append(s.toks, &tokenstore.Token{ID: "id0", UserName: userName(0), AccessToken: "x"})
		}, "user 0 was deleted but Tokens lists [id0]"},
		{"foreign token", func(s *state) {
			s.toks = append(s.toks, &tokenstore.Token{ID: "x", UserName: "someone", AccessToken: "x"})
		}, `token x has user name "someone"`},
		{"stale access token", func(s *state) { s.toks[0].AccessToken = accessTokenOf(1, 0, 1) },
			"user 1: token id1 has an access token that none of the 2 last successful saves wrote"},
		{"processes disagree", func(s *state) { s.results[1].SavedID[2] = "id2b" },
			"user 2: the processes saw 2 different tokens [id2 id2b]"},
		{"listed token differs", func(s *state) { s.toks[1].ID = "id2b" },
			"user 2: Tokens lists token id2b, the processes saw id2"},
		{"double delete", func(s *state) { s.results[0].Deleted[5], s.results[1].Deleted[5] = true, true },
			"user 5: 2 DeleteToken calls succeeded, want exactly 1"},
		{"missing delete", func(s *state) { s.results[0].Deleted[0] = false },
			"1 DeleteToken calls succeeded for 2 deleted users"},
		{"refresh token lost", func(s *state) { s.toks[0].RefreshToken = "" },
			"user 1: token id1 lost its refresh token or client"},
		{"check not ok", func(s *state) { s.rep.Unindexed = []string{"id3"} },
			`Check: the index does not match the documents: 8 token documents; 1 unindexed ["id3"]`},
		{"check counts orphans", func(s *state) { s.rep.Tokens++ },
			"Check found 9 token documents, want 8"},
		{"unfinished worker", func(s *state) { s.results[1].Done = false }, "worker 1 did not finish"},
		{"missing worker", func(s *state) { s.results[1] = nil }, "worker 1 reported no result"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := good()
			c.mutate(s)
			p := verify(cfg, s.results, s.toks, s.rep)
			if !strings.Contains(strings.Join(p, "\n"), c.want) {
				t.Errorf("problems %q lack %q", p, c.want)
			}
		})
	}
}
