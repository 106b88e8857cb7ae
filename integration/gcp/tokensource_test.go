package gcp_test

import (
	"testing"

	"github.com/cloudtokens/cloudtokens/gcpsm"
	"github.com/cloudtokens/cloudtokens/gcpsm/gcpsmtest"
	"github.com/cloudtokens/cloudtokens/integration/staleness"
	"github.com/cloudtokens/cloudtokens/tokensource/tokensourcetest"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// TestTokenSourceEightProcesses: 8 OS processes ask for one expired token
// stored on the emulator, with a provider that rotates refresh tokens.
// Exactly one refresh reaches the provider; the others use the winner's
// token. The emulator enforces the documented per-secret write rate (2
// AddSecretVersion + UpdateSecret per second), which the lease and the
// save of one refresh exceed: the store retries the throttled requests.
func TestTokenSourceEightProcesses(t *testing.T) {
	runTokenSource(t, tokensourcetest.Config{}, gcpsmtest.WithSecretWriteRate(gcpsmtest.DocumentedSecretWriteRate()))
}

// TestTokenSourceUnderLag: the same on an emulator whose alias reads,
// GetSecret and lists lag by up to 2 s (as Secret Manager documents),
// with a stale layer under every process's store (package staleness). A
// child may read the token as it was before the expiry mark and return
// that access token, which the provider still accepts; see
// tokensourcetest's "Eventual consistency" for what is asserted.
func TestTokenSourceUnderLag(t *testing.T) {
	runTokenSource(t, staleness.TokenSourceConfig(tokensourcetest.Config{}), gcpsmtest.WithSecretWriteRate(gcpsmtest.DocumentedSecretWriteRate()),
		gcpsmtest.WithEventualConsistency(staleness.Lag))
}

func runTokenSource(t *testing.T, cfg tokensourcetest.Config, emulator ...gcpsmtest.Option) {
	var env []string
	var srv *gcpsmtest.Server
	if !tokensourcetest.IsChild() {
		srv = gcpsmtest.Start(t, emulator...)
		env = append(env, envAddr+"="+srv.Addr())
	}
	cfg.Processes, cfg.Env = 8, env
	res := tokensourcetest.Run(t, cfg, func(tb testing.TB, o tokensourcetest.StoreOptions) tokenstore.Store {
		var opts []gcpsm.Option
		if cfg.VisibilityLag > 0 {
			opts = append(opts, gcpsm.WithBackendWrapper((&staleness.Layer{}).Wrap))
		}
		s, err := gcpsm.New(tb.Context(), newClient(tb, o.Getenv(envAddr)), project, o.Prefix, opts...)
		if err != nil {
			tb.Fatal(err)
		}
		return s
	})
	if res == nil {
		return // a child process
	}
	if res.Refreshes != 1 {
		t.Fatalf("%d refreshes at the provider, want exactly 1 (%d token requests)", res.Refreshes, res.TokenRequests)
	}
	t.Logf("8 processes: %d refresh (by a later process: %v), %d token requests, %d children got the token from before the expiry, slowest Token() %v; emulator calls %v, %d throttled",
		res.Refreshes, res.LaterRefreshed, res.TokenRequests, res.StaleReads, res.Slowest, srv.Calls(), srv.Throttled())
}
