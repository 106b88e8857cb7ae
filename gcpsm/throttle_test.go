package gcpsm

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A write throttled by the per-secret rate pauses at least half of each
// cap before its next attempt (0.25 s, then 0.5 s, ...), so that its
// retries cannot all fall within the second the limit counts; it stops
// at once on any other error, when its retries are spent, or when the
// context ends.
func TestThrottlePausesAtLeastHalfItsCap(t *testing.T) {
	exhausted := status.Error(codes.ResourceExhausted, "Rate limit exceeded for AddSecretVersion and UpdateSecret on Secret")
	th := &throttle{bo: transientBackoff(), left: 2}
	start := time.Now()
	for i := range 2 {
		if !th.wait(t.Context(), exhausted) {
			t.Fatalf("retry %d refused", i+1)
		}
	}
	if took := time.Since(start); took < 750*time.Millisecond {
		t.Errorf("two retries paused %v in all; want at least 0.25 s + 0.5 s", took)
	}
	if th.wait(t.Context(), exhausted) {
		t.Error("a third retry allowed; want 2")
	}
	th = &throttle{bo: transientBackoff(), left: 5}
	if th.wait(t.Context(), status.Error(codes.FailedPrecondition, "etag mismatch")) || th.wait(t.Context(), errors.New("other")) {
		t.Error("retried an error that is not RESOURCE_EXHAUSTED")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if th.wait(ctx, exhausted) {
		t.Error("retried after the context ended")
	}
}
