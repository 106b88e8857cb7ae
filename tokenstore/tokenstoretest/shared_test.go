package tokenstoretest_test

import (
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore/casstoretest"
	"github.com/cloudtokens/cloudtokens/tokenstore/tokenstoretest"
)

// The shared cases on two engine stores over one backend that serves
// stale reads: for lag after every write, a read returns the document as
// it was before the write (casstoretest.StaleBackend, standing for the
// service). The assertions wait for the lag; the stores' own reads do not.
func TestSharedUnderVisibilityLag(t *testing.T) {
	const lag = 300 * time.Millisecond
	for name, cache := range map[string]bool{"plain": false, "cached": true} {
		t.Run(name, func(t *testing.T) {
			staleReads := 0
			tokenstoretest.RunShared(t, func(t *testing.T) (a, b tokenstore.Store) {
				stale := casstoretest.NewStaleBackend(casstore.NewMemoryBackend(), lag, 1)
				t.Cleanup(func() { staleReads += stale.StaleReads() })
				return casstore.New(stale, casstore.Options{}), casstore.New(stale, casstore.Options{CacheIndex: cache})
			}, tokenstoretest.WithVisibilityLag(lag))
			// The cases that write through both instances in a row make
			// the stores read stale documents.
			if staleReads == 0 {
				t.Errorf("the backend served no stale read: the cases ran without staleness")
			}
			t.Logf("%d stale reads served", staleReads)
		})
	}
}
