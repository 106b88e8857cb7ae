package staleness

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"

	"github.com/cloudtokens/cloudtokens/integration/stress"
	"github.com/cloudtokens/cloudtokens/tokensource/tokensourcetest"
)

// StressConfig returns cfg for a run under the lag: VisibilityLag set to
// Lag, conflicts allowed (tokenstore.ErrConflict after the retry budget
// is the one error a caller may see; the run counts and logs them), and
// 128 users unless cfg sets them or the long variant is selected (500,
// the stress default).
func StressConfig(cfg stress.Config) stress.Config {
	cfg.VisibilityLag = Lag
	cfg.AllowConflicts = true
	if cfg.Users == 0 && !Long() {
		cfg.Users = 128
	}
	cfg.CheckOutputs = requireStaleReads
	return cfg
}

// LogServed logs, in a child (worker >= 0), the n stale reads that one
// source of staleness (the process's Layer, a Vault standby) served it,
// in the form requireStaleReads counts.
func LogServed(tb testing.TB, worker, n int, source string) {
	tb.Logf("staleness: worker %d: %d stale reads served by %s", worker, n, source)
}

// staleCount matches a LogServed line.
var staleCount = regexp.MustCompile(`staleness: worker \d+: (\d+) stale reads served by `)

// requireStaleReads reports a problem when no child of the run was served
// a stale read: the run would have had no staleness. It is checked over
// all the children, not for each: a child's own layer serves stale reads
// only of documents that child reads back within the lag of writing them,
// which a Store that remembers its writes may never do in a short run
// (one child in a CI run was served none while the others were).
func requireStaleReads(outputs []string) []string {
	total := 0
	for _, out := range outputs {
		for _, m := range staleCount.FindAllStringSubmatch(out, -1) {
			n, _ := strconv.Atoi(m[1]) // \d+
			total += n
		}
	}
	if total == 0 {
		return []string{fmt.Sprintf("staleness: no stale read was served in any of the %d processes: the run had no staleness", len(outputs))}
	}
	return nil
}

// ProcessLayer returns a new Layer for the store of a stress process. In
// a child (worker >= 0) it logs, when tb ends, how many stale reads the
// layer served; the parent requires that the children were served some
// between them (StressConfig). The parent's store (worker -1) only
// verifies, after the lag, and logs nothing.
func ProcessLayer(tb testing.TB, worker int) *Layer {
	l := &Layer{}
	if worker >= 0 {
		tb.Cleanup(func() {
			LogServed(tb, worker, l.StaleReads(), "its layer")
		})
	}
	return l
}

// TokenSourceConfig returns cfg for a tokensourcetest run under the lag
// (VisibilityLag set to Lag).
func TokenSourceConfig(cfg tokensourcetest.Config) tokensourcetest.Config {
	cfg.VisibilityLag = Lag
	return cfg
}

// LogTokenSource logs what a tokensourcetest run under the lag did; res
// is nil in a child process, which logs nothing.
func LogTokenSource(t *testing.T, res *tokensourcetest.Result) {
	if res == nil {
		return
	}
	t.Logf("staleness: %d refresh (made by a later process: %v), %d children got the token from before the expiry, slowest Token() %v",
		res.Refreshes, res.LaterRefreshed, res.StaleReads, res.Slowest)
}
