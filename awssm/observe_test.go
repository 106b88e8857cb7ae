package awssm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/cloudtokens/cloudtokens/observe/observetest"
)

// TestWithObserver: every store operation and backend request reaches
// the Observer, nested, and each backend request is at least one API call.
func TestWithObserver(t *testing.T) {
	if _, err := New(context.Background(), offlineClient(), "app", WithObserver(nil)); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("WithObserver(nil): %v, want ErrInvalidConfig", err)
	}
	c, cnt := testClient(t)
	var r [6]byte
	_, _ = rand.Read(r[:])
	rec := &observetest.Recorder{}
	s, err := New(t.Context(), c, "awssm-test/"+hex.EncodeToString(r[:]), WithObserver(rec), WithForceDelete())
	if err != nil {
		t.Fatal(err)
	}
	cnt.reset()
	requests := observetest.Run(t, s, rec)
	calls := 0
	for _, n := range cnt.snapshot() {
		calls += n
	}
	if requests == 0 || calls < requests {
		t.Errorf("%d backend requests reported, %d API calls made", requests, calls)
	}
}
