//go:build enginebugs

// Engine bugs found by the staleness harness, as minimal tests on
// casstore.MemoryBackend under casstoretest.StaleBackend. They fail on the
// engine as it is; run them with:
//
//	go test -tags enginebugs -run . ./staleness/
//
// Move them into package casstore with the fix.

package staleness_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore/casstoretest"
)

// An index bucket that a split has just created is not visible for the
// lag: a lookup or save that the layout routes to it must retry the read,
// not fail with "index bucket missing".
func TestNewBucketNotYetVisible(t *testing.T) {
	stale := casstoretest.NewStaleBackend(casstore.NewMemoryBackend(), 2*time.Second, 1)
	s := casstore.New(stale, casstore.Options{Quotas: &casstore.Quotas{VersionsPerDay: 100}})
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			for i := range 30 {
				if err := s.SaveToken(t.Context(), &tokenstore.Token{UserName: fmt.Sprintf("u%d-%d", g, i), AccessToken: "a"}); err != nil {
					t.Errorf("save %d-%d: %v", g, i, err)
				}
			}
		})
	}
	wg.Wait()
}
