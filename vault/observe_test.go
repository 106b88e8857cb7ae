package vault

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/cloudtokens/cloudtokens/observe/observetest"
)

// TestWithObserver: every store operation and backend request reaches
// the Observer, nested, and each backend request is at least one HTTP
// request.
func TestWithObserver(t *testing.T) {
	if _, err := New(context.Background(), offlineClient(t), "app", WithObserver(nil)); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("WithObserver(nil): %v, want ErrInvalidConfig", err)
	}
	rec := &observetest.Recorder{}
	env := newTestEnv(t, func(*http.Request) bool { return false }, WithObserver(rec))
	total := func() int {
		env.cnt.mu.Lock()
		defer env.cnt.mu.Unlock()
		n := 0
		for _, v := range env.cnt.n {
			n += v
		}
		return n
	}
	before := total()
	requests := observetest.Run(t, env.store, rec)
	if sent := total() - before; requests == 0 || sent < requests {
		t.Errorf("%d backend requests reported, %d HTTP requests sent", requests, sent)
	}
}
