package reliability

import (
	"strings"
	"testing"
)

// The replay of a journal gives each user the states the store may hold;
// judge flags anything else, by the right kind.
func TestLegalStatesAndJudge(t *testing.T) {
	seeded := state{Present: true, Access: "seed", Refresh: "seed-rt"}
	initial := map[int]state{0: seeded, 1: {}, 2: seeded, 3: {}}
	recs := []record{
		// user 0: an acknowledged update keeps the refresh token; then a
		// rotate cut short by the kill.
		{Seq: 1, User: 0, Op: opUpdate, Stage: stageBegin, Access: "at-1"},
		{Seq: 1, User: 0, Op: opUpdate, Stage: stageAck},
		{Seq: 5, User: 0, Op: opRotate, Stage: stageBegin, Access: "at-5", Refresh: "rt-5"},
		// user 1: inserted, then a find that saw it, then deleted.
		{Seq: 2, User: 1, Op: opUpdate, Stage: stageBegin, Access: "at-2"},
		{Seq: 2, User: 1, Op: opUpdate, Stage: stageAck},
		{Seq: 3, User: 1, Op: opFind, Stage: stageBegin},
		{Seq: 3, User: 1, Op: opFind, Stage: stageAck, Read: true, Found: true, RAccess: "at-2"},
		{Seq: 4, User: 1, Op: opDelete, Stage: stageBegin},
		{Seq: 4, User: 1, Op: opDelete, Stage: stageAck, Read: true, Found: true, RAccess: "at-2"},
		// user 2: a delete that failed: either state.
		{Seq: 6, User: 2, Op: opDelete, Stage: stageBegin},
		{Seq: 6, User: 2, Op: opDelete, Stage: stageFail, Class: "other"},
		// user 3: a find that saw a value nobody wrote.
		{Seq: 7, User: 3, Op: opFind, Stage: stageBegin},
		{Seq: 7, User: 3, Op: opFind, Stage: stageAck, Read: true, Found: true, RAccess: "bogus"},
	}
	legal, bad := legalStates(initial, recs)
	want := map[int][]string{
		0: {"{at-1 seed-rt}", "{at-5 rt-5}"},
		1: {"absent"},
		2: {"absent", "{seed seed-rt}"},
		3: {"{bogus}"},
	}
	for u, w := range want {
		if got := keys(legal[u]); strings.Join(got, " ") != strings.Join(w, " ") {
			t.Errorf("user %d: legal %v, want %v", u, got, w)
		}
	}
	if len(bad) != 1 || !strings.Contains(bad[0], "user 3") {
		t.Errorf("read violations %q, want one for user 3", bad)
	}

	attempted := attemptedValues(initial, recs)
	last := lastAcked(recs)
	cases := []struct {
		name string
		seen map[int]state
		want string
	}{
		{"legal", map[int]state{0: {Present: true, Access: "at-5", Refresh: "rt-5"}, 1: {}, 2: {}}, ""},
		{"lost save", map[int]state{0: {}}, vLostSave},
		{"resurrected", map[int]state{1: {Present: true, Access: "at-2"}}, vResurrected},
		{"wrong value", map[int]state{0: {Present: true, Access: "never"}}, vWrongValue},
		{"older value", map[int]state{0: {Present: true, Access: "seed", Refresh: "seed-rt"}}, vIllegalState},
	}
	for _, c := range cases {
		f := &findings{}
		judge(f, c.name, &observed{find: c.seen}, legal, attempted, last, "")
		got := f.counts()
		switch {
		case c.want == "" && f.total() != 0:
			t.Errorf("%s: violations %v", c.name, got)
		case c.want != "" && (got[c.want] != 1 || f.total() != 1):
			t.Errorf("%s: violations %v, want one %q", c.name, got, c.want)
		}
		f = &findings{}
		judge(f, c.name, &observed{find: c.seen}, legal, attempted, last, vAfterRepair)
		if c.want != "" && f.counts()[vAfterRepair] != 1 {
			t.Errorf("%s after Repair: %v", c.name, f.counts())
		}
	}
}

func TestLogSink(t *testing.T) {
	l := &logSink{}
	log := l.logger()
	log.Warn("cloudtokens: could not release index entries", "id", "k4s7h2d3mfq5rj6tvn4w3ycxza", "shard", 2)
	log.Warn("cloudtokens: stale entry", "user_name", "user-12")
	log.Info("a token value", "v", "at-s1-r2-u3")
	f := &findings{}
	if n := l.check(f, "test"); n != 3 {
		t.Errorf("%d records, want 3", n)
	}
	if got := f.counts()[vLogLeak]; got != 2 {
		t.Errorf("%d leaks, want 2:\n%s", got, f)
	}
	if strings.Contains(f.String(), "user-12") || strings.Contains(f.String(), "at-s1") {
		t.Errorf("the report repeats the leaked values:\n%s", f)
	}
}
