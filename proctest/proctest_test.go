package proctest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

type result struct {
	Worker int
	Env    string
}

// Three children meet at two barriers and hand back results; each sees
// its own number, the shared directory and the parent's extra variable.
func TestChildrenBarrierResults(t *testing.T) {
	if c, ok := Self(t); ok {
		b := Barrier{Dir: c.Dir, Parties: 3, Self: c.Worker}
		for _, phase := range []string{"one", "two"} {
			if err := b.Wait(t.Context(), phase); err != nil {
				t.Fatal(err)
			}
		}
		if err := WriteResult(c.Dir, c.Worker, result{Worker: c.Worker, Env: os.Getenv("PROCTEST_SELFTEST")}); err != nil {
			t.Fatal(err)
		}
		return
	}
	dir := t.TempDir()
	var ps []*Process
	for w := range 3 {
		ps = append(ps, Start(t.Context(), t, Options{Dir: dir, Worker: w, Env: []string{"PROCTEST_SELFTEST=hello"}}))
	}
	for i, err := range WaitAll(ps) {
		if err != nil {
			t.Fatalf("worker %d: %v\n%s", i, err, ps[i].Output())
		}
		if ps[i].Killed() {
			t.Errorf("worker %d reported as killed", i)
		}
	}
	for w := range 3 {
		var r result
		if err := ReadResult(dir, w, &r); err != nil {
			t.Fatal(err)
		}
		if r.Worker != w || r.Env != "hello" {
			t.Errorf("worker %d wrote %+v", w, r)
		}
	}
	if err := ReadResult(dir, 3, &result{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing result: %v", err)
	}
}

type entry struct{ Seq int }

// A child appends to a journal as fast as it can until it is killed; the
// parent finds every record the child finished, in order, and a killed
// exit.
func TestKillKeepsJournal(t *testing.T) {
	if c, ok := Self(t); ok {
		j, err := OpenJournal(filepath.Join(c.Dir, "journal"))
		if err != nil {
			t.Fatal(err)
		}
		for seq := 0; ; seq++ {
			if err := j.Append(entry{seq}); err != nil {
				t.Fatal(err)
			}
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "journal")
	p := Start(t.Context(), t, Options{Dir: dir})
	deadline := time.Now().Add(time.Minute)
	for {
		recs, err := ReadJournal[entry](path)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) >= 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the child wrote %d records in a minute\n%s", len(recs), p.Output())
		}
		time.Sleep(time.Millisecond)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err == nil || !p.Killed() {
		t.Fatalf("killed child: %v, Killed() = %v", err, p.Killed())
	}
	recs, err := ReadJournal[entry](path)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		if r.Seq != i {
			t.Fatalf("record %d has seq %d", i, r.Seq)
		}
	}
	t.Logf("%d records before SIGKILL", len(recs))
	if err := p.Kill(); err != nil {
		t.Errorf("Kill after exit: %v", err)
	}
}

func TestReadJournalTornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	if err := os.WriteFile(path, []byte("{\"Seq\":0}\n{\"Seq\":1}\n{\"Se"), 0o600); err != nil {
		t.Fatal(err)
	}
	recs, err := ReadJournal[entry](path)
	if err != nil || len(recs) != 2 {
		t.Fatalf("ReadJournal = %v, %v; want the two whole records", recs, err)
	}
	if err := os.WriteFile(path, []byte("{\"Seq\":0}\nnot json\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadJournal[entry](path); err == nil {
		t.Error("a corrupt whole line was accepted")
	}
	if recs, err := ReadJournal[entry](filepath.Join(t.TempDir(), "none")); err != nil || recs != nil {
		t.Errorf("missing journal: %v, %v", recs, err)
	}
}

// No party passes a barrier before the last one arrives; an abort ends
// the waits of the others with the first reason; a deadline ends a wait.
func TestBarrier(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	const parties = 3
	errs := make(chan error, parties)
	for w := range parties - 1 {
		go func() {
			errs <- Barrier{Dir: dir, Parties: parties, Self: w, Poll: time.Millisecond}.Wait(ctx, "phase1")
		}()
	}
	time.Sleep(50 * time.Millisecond)
	select {
	case err := <-errs:
		t.Fatalf("a party passed the barrier before the last one arrived: %v", err)
	default:
	}
	if err := (Barrier{Dir: dir, Parties: parties, Self: parties - 1, Poll: time.Millisecond}).Wait(ctx, "phase1"); err != nil {
		t.Fatal(err)
	}
	for range parties - 1 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}

	go func() {
		errs <- Barrier{Dir: dir, Parties: parties, Self: 0, Poll: time.Millisecond}.Wait(ctx, "phase2")
	}()
	time.Sleep(20 * time.Millisecond)
	Abort(dir, "worker 2 stopped")
	Abort(dir, "a later reason")
	if err := <-errs; err == nil || !strings.Contains(err.Error(), "aborted: worker 2 stopped") {
		t.Errorf("wait after abort: %v", err)
	}

	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	err := Barrier{Dir: t.TempDir(), Parties: 2, Poll: time.Millisecond}.Wait(short, "phase1")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "1 of 2 arrived") {
		t.Errorf("wait past the deadline: %v", err)
	}
}

func TestUniqueName(t *testing.T) {
	a, b := UniqueName("run-"), UniqueName("run-")
	if a == b || len(a) != len("run-")+12 || !regexp.MustCompile(`^run-[a-z0-9]{12}$`).MatchString(a) {
		t.Errorf("UniqueName = %q, %q", a, b)
	}
}

func TestEnvironAndRunPattern(t *testing.T) {
	got := Environ([]string{"A=1", "B=2", "CLOUDTOKENS_PROCTEST_TEST=x", "C=3"}, []string{"B=9", "D=4", "bad"})
	if want := []string{"A=1", "C=3", "B=9", "D=4"}; !slices.Equal(got, want) {
		t.Errorf("Environ = %v, want %v", got, want)
	}
	for name, want := range map[string]string{
		"TestStress":         "^TestStress$",
		"TestAWS/stress_(x)": "^TestAWS$/^stress_\\(x\\)$",
		"TestA.B/sub/leaf+1": "^TestA\\.B$/^sub$/^leaf\\+1$",
	} {
		if got := RunPattern(name); got != want {
			t.Errorf("RunPattern(%q) = %q, want %q", name, got, want)
		}
	}
}
