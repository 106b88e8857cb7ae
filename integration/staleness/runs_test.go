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
		{"none", []string{"runs.go:64: staleness: worker 0: 0 stale reads served by its layer", "runs.go:64: staleness: worker 1: 0 stale reads served by its layer"}, false},
		{"no report", []string{"=== RUN   TestStressUnderLag", ""}, false},
		{"one child", []string{"staleness: worker 0: 0 stale reads served by its layer", "staleness: worker 1: 3 stale reads served by its layer"}, true},
		{"standby only", []string{"staleness: worker 0: 0 stale reads served by its layer\nstaleness: worker 0: 708 stale reads served by the Vault standby"}, true},
	} {
		if got := requireStaleReads(c.outputs); (len(got) == 0) != c.ok {
			t.Errorf("%s: problems %q, want ok=%v", c.name, got, c.ok)
		}
	}
}
