package staleness

import "testing"

// TestRequireStaleReads: a run passes when any child was served a stale
// read (by its own layer or by a Vault standby) and fails when none was.
func TestRequireStaleReads(t *testing.T) {
	for _, c := range []struct {
		name    string
		outputs []string
		ok      bool
	}{
		{"none", []string{"runs.go:64: staleness: worker 0: 0 stale reads served", "runs.go:64: staleness: worker 1: 0 stale reads served"}, false},
		{"no report", []string{"=== RUN   TestStressUnderLag", ""}, false},
		{"one child", []string{"staleness: worker 0: 0 stale reads served", "staleness: worker 1: 3 stale reads served"}, true},
		{"standby only", []string{"staleness: worker 0: 0 stale reads served\nstaleness: worker 0: the standby answered 708 reads stale"}, true},
	} {
		if got := requireStaleReads(c.outputs); (len(got) == 0) != c.ok {
			t.Errorf("%s: problems %q, want ok=%v", c.name, got, c.ok)
		}
	}
}
