package gcp_test

import (
	"testing"

	"github.com/cloudtokens/cloudtokens/gcpsm"
	"github.com/cloudtokens/cloudtokens/gcpsm/gcpsmtest"
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
	runTokenSource(t, gcpsmtest.WithSecretWriteRate(gcpsmtest.DocumentedSecretWriteRate()))
}

func runTokenSource(t *testing.T, emulator ...gcpsmtest.Option) {
	var env []string
	var srv *gcpsmtest.Server
	if !tokensourcetest.IsChild() {
		srv = gcpsmtest.Start(t, emulator...)
		env = append(env, envAddr+"="+srv.Addr())
	}
	res := tokensourcetest.Run(t, tokensourcetest.Config{Processes: 8, Env: env}, func(tb testing.TB, o tokensourcetest.StoreOptions) tokenstore.Store {
		s, err := gcpsm.New(tb.Context(), newClient(tb, o.Getenv(envAddr)), project, o.Prefix)
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
	t.Logf("8 processes: %d refresh, %d token requests, slowest Token() %v; emulator calls %v, %d throttled",
		res.Refreshes, res.TokenRequests, res.Slowest, srv.Calls(), srv.Throttled())
}
