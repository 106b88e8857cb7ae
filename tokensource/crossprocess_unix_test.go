//go:build unix

package tokensource_test

import (
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/tokensource/tokensourcetest"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore/casstoretest"
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

// TestCrossProcessRefreshUnderLag is the same run with every process's
// reads of a document it wrote lagging by 300 ms
// (casstoretest.StaleBackend) and Config.VisibilityLag set: the checks
// for eventually consistent stores (see tokensourcetest).
func TestCrossProcessRefreshUnderLag(t *testing.T) {
	if testing.Short() && !tokensourcetest.IsChild() {
		t.Skip("starts 8 processes")
	}
	const lag = 300 * time.Millisecond
	res := tokensourcetest.Run(t, tokensourcetest.Config{Processes: 8, VisibilityLag: lag}, func(tb testing.TB, o tokensourcetest.StoreOptions) tokenstore.Store {
		// Only the Backend methods: StaleBackend always offers List,
		// which the file backend cannot serve.
		stale := struct{ casstore.Backend }{casstoretest.NewStaleBackend(newFileBackend(tb, o.Dir), lag, uint64(o.Worker+2))}
		return casstore.New(stale, casstore.Options{Logger: quietLogger()})
	})
	if res != nil && (res.Refreshes != 1 || res.Reuses != 0) {
		t.Fatalf("refreshes %d, reuses %d", res.Refreshes, res.Reuses)
	}
}
