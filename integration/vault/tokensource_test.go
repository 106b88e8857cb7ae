package vault_test

import (
	"testing"

	"github.com/cloudtokens/cloudtokens/integration/backend"
	"github.com/cloudtokens/cloudtokens/tokensource/tokensourcetest"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	ctvault "github.com/cloudtokens/cloudtokens/vault"
)

// TestTokenSourceEightProcesses: 8 OS processes ask for one expired token
// stored here, with a provider that rotates refresh tokens. Exactly one
// refresh reaches the provider; the others use the winner's token.
func TestTokenSourceEightProcesses(t *testing.T) {
	res := tokensourcetest.Run(t, tokensourcetest.Config{Processes: 8}, func(tb testing.TB, o tokensourcetest.StoreOptions) tokenstore.Store {
		s, err := ctvault.New(tb.Context(), backend.VaultClient(tb), o.Prefix)
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
	t.Logf("8 processes: %d refresh, %d token requests, slowest Token() %v", res.Refreshes, res.TokenRequests, res.Slowest)
}
