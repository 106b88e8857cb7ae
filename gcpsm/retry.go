package gcpsm

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/googleapis/gax-go/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Retry settings. The official client retries only AccessSecretVersion
// (on UNAVAILABLE and RESOURCE_EXHAUSTED, backoff from 2 s to 60 s, within
// its 60 s timeout); the store keeps that and gives every other call it
// makes the retry below, through the client's own machinery
// (gax.WithRetry, as a per-call option, so the caller's client is left as
// it is).
const (
	// DefaultTransientRetries is how many times a call answered
	// RESOURCE_EXHAUSTED or UNAVAILABLE is retried (see
	// WithTransientRetries).
	DefaultTransientRetries = 5
	// DefaultStaleReadWait bounds how long a read keeps retrying while the
	// current alias lags (see WithStaleReadWait).
	DefaultStaleReadWait = 5 * time.Second
	// cleanupTimeout bounds the calls a write makes after its caller's
	// context has ended: finding out whether an interrupted alias move
	// happened, and destroying a dead version.
	cleanupTimeout = 30 * time.Second
)

// transientBackoff is the pause between retries of a call: full jitter up
// to 0.5 s, 1 s, 2 s, 4 s, 8 s, 8 s ... (gax.Backoff); with the default 5
// retries a call gives up after at most 15.5 s of pauses (7.75 s on
// average). A per-second limit on one secret clears within the first
// pauses; a per-minute project quota may outlast them, and the call then
// fails with the RESOURCE_EXHAUSTED status.
func transientBackoff() gax.Backoff {
	return gax.Backoff{Initial: 500 * time.Millisecond, Max: 8 * time.Second, Multiplier: 2}
}

// staleReadBackoff is the pause between reads while an alias lags: full
// jitter up to 50 ms, doubling to 1 s.
func staleReadBackoff() gax.Backoff {
	return gax.Backoff{Initial: 50 * time.Millisecond, Max: time.Second, Multiplier: 2}
}

// attempts records what the attempts of one call answered.
type attempts struct {
	// ambiguous: an attempt failed in a way that does not say whether
	// the service applied it (UNAVAILABLE, DEADLINE_EXCEEDED, ...). A
	// later attempt of the same write may then see its own effect.
	ambiguous bool
}

// retryer is a gax.Retryer for UNAVAILABLE and, if exhausted is set,
// RESOURCE_EXHAUSTED, bounded to left retries.
type retryer struct {
	bo        gax.Backoff
	left      int
	exhausted bool
	rec       *attempts
}

func (r *retryer) Retry(err error) (time.Duration, bool) {
	code := status.Code(err)
	if r.rec != nil && ambiguous(code) {
		r.rec.ambiguous = true
	}
	if r.left <= 0 || !(code == codes.Unavailable || code == codes.ResourceExhausted && r.exhausted) {
		return 0, false
	}
	r.left--
	return r.bo.Pause(), true
}

// ambiguous reports whether a failure with code leaves open whether the
// service applied the request. The other codes are answers to a request
// the service refused.
func ambiguous(code codes.Code) bool {
	switch code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Unknown, codes.Internal, codes.DataLoss:
		return true
	}
	return false
}

// retry returns the call option that retries a call on RESOURCE_EXHAUSTED
// and UNAVAILABLE, recording its attempts in rec (which may be nil).
func (b *backend) retry(rec *attempts) gax.CallOption { return b.retryOn(rec, true) }

// retryUnavailable retries UNAVAILABLE only. AddSecretVersion and
// UpdateSecret, which the per-secret write rate limits, handle
// RESOURCE_EXHAUSTED themselves (see throttle): between attempts they
// check that the write can still succeed, so that writers that have lost
// a race stop spending the secret's rate.
func (b *backend) retryUnavailable(rec *attempts) gax.CallOption { return b.retryOn(rec, false) }

func (b *backend) retryOn(rec *attempts, exhausted bool) gax.CallOption {
	n := b.retries
	return gax.WithRetry(func() gax.Retryer {
		return &retryer{bo: transientBackoff(), left: n, exhausted: exhausted, rec: rec}
	})
}

// throttle paces the attempts of a write answered RESOURCE_EXHAUSTED by
// the per-secret write rate, with the bound of the retries of other calls
// but an equal-jitter pause: at least half the cap (0.25–0.5 s, 0.5–1 s,
// 1–2 s, 2–4 s, 4–8 s; 7.75 to 15.5 s in all with the default 5). Full
// jitter can draw five near-zero pauses in a row, and a writer among
// eight that want the same secret (a refresh lease) then fails within
// the one second the rate counts; half the cap spreads the attempts over
// the window the limit clears in.
type throttle struct {
	bo   gax.Backoff // its Initial is the current cap
	left int
	pace *pacer // told of every RESOURCE_EXHAUSTED (nil: none)
}

func (b *backend) newThrottle() *throttle {
	return &throttle{bo: transientBackoff(), left: b.retries, pace: b.pace}
}

// wait reports whether err is RESOURCE_EXHAUSTED with a retry left, and
// then sleeps before it; false when ctx ends.
func (t *throttle) wait(ctx context.Context, err error) bool {
	if status.Code(err) != codes.ResourceExhausted {
		return false
	}
	if t.pace != nil {
		t.pace.start()
	}
	if t.left <= 0 || ctx.Err() != nil {
		return false
	}
	t.left--
	limit := t.bo.Initial
	t.bo.Initial = min(time.Duration(float64(limit)*t.bo.Multiplier), t.bo.Max)
	return gax.Sleep(ctx, limit/2+rand.N(limit/2+1)) == nil
}

// staleWait paces the retries of a read that lags, within a time budget.
type staleWait struct {
	deadline time.Time
	bo       gax.Backoff
}

func (b *backend) newStaleWait() *staleWait {
	return &staleWait{deadline: time.Now().Add(b.staleReadWait), bo: staleReadBackoff()}
}

// next sleeps before another attempt and reports whether to make it: not
// past the budget, nor once ctx has ended.
func (w *staleWait) next(ctx context.Context) bool {
	d := w.bo.Pause()
	if time.Now().Add(d).After(w.deadline) {
		return false
	}
	return gax.Sleep(ctx, d) == nil
}

// cleanupContext returns a context for work that must finish after the
// caller's context has ended (it keeps ctx's values, not its
// cancellation), bounded by cleanupTimeout.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
}
