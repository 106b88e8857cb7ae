package staleness

import (
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
	return cfg
}

// ProcessLayer returns a new Layer for the store of a stress or
// tokensource process. In a child (worker >= 0) it checks, when tb ends,
// that stale reads were served, and fails tb if none were: the child
// would have run without staleness. The layer's own count is added to
// those of other sources of staleness the process reads through (more,
// e.g. a Vault standby's count, read when tb ends). The parent's store
// (worker -1) only verifies, after the lag, and is not checked.
func ProcessLayer(tb testing.TB, worker int, more ...func() int) *Layer {
	l := &Layer{}
	if worker >= 0 {
		tb.Cleanup(func() {
			n := l.StaleReads()
			tb.Logf("staleness: worker %d: %d stale reads served", worker, n)
			for _, m := range more {
				n += m()
			}
			if n == 0 {
				tb.Errorf("staleness: worker %d: no stale read was served: it ran without staleness", worker)
			}
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
