//go:build unix

package tokensource_test

import (
	"testing"

	"github.com/cloudtokens/cloudtokens/tokensource/tokensourcetest"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// TestCrossProcessRefresh: 8 OS processes (this test binary, re-executed)
// share a casstore over a directory and hit one expired token while the
// provider rotates refresh tokens: exactly 1 refresh at the provider.
func TestCrossProcessRefresh(t *testing.T) {
	if testing.Short() && !tokensourcetest.IsChild() {
		t.Skip("starts 8 processes")
	}
	res := tokensourcetest.Run(t, tokensourcetest.Config{Processes: 8}, func(tb testing.TB, o tokensourcetest.StoreOptions) tokenstore.Store {
		return casstore.New(newFileBackend(tb, o.Dir), casstore.Options{Logger: quietLogger()})
	})
	if res != nil && res.Refreshes != 1 {
		t.Fatalf("refreshes %d", res.Refreshes)
	}
}
