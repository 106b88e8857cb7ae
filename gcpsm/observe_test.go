package gcpsm_test

import (
	"context"
	"errors"
	"testing"

	"github.com/cloudtokens/cloudtokens/gcpsm"
	"github.com/cloudtokens/cloudtokens/observe/observetest"
)

// TestWithObserver: every store operation and backend request reaches
// the Observer, nested, and each backend request is at least one RPC.
func TestWithObserver(t *testing.T) {
	e := newEnv(t)
	if _, err := gcpsm.New(context.Background(), e.client, testProject, newPrefix(), gcpsm.WithObserver(nil)); !errors.Is(err, gcpsm.ErrInvalidConfig) {
		t.Fatalf("WithObserver(nil): %v, want ErrInvalidConfig", err)
	}
	rec := &observetest.Recorder{}
	s := e.store(t, newPrefix(), gcpsm.WithObserver(rec))
	e.rec.take()
	requests := observetest.Run(t, s, rec)
	if rpcs := len(e.rec.take()); requests == 0 || rpcs < requests {
		t.Errorf("%d backend requests reported, %d RPCs made", requests, rpcs)
	}
}
