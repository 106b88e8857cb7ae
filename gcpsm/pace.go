package gcpsm

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/googleapis/gax-go/v2"
)

// Secret Manager soft-limits a global secret to 2 AddSecretVersion and
// UpdateSecret requests a second (https://cloud.google.com/secret-manager/quotas).
const (
	secretWritesPerSecond = 2
	// paceMargin keeps a paced request this much past the second of the
	// writes it follows, for the time requests take to reach the service.
	paceMargin = 50 * time.Millisecond
	// paceSecrets bounds the secrets a pacer remembers; past it, those
	// whose writes left the window are forgotten.
	paceSecrets = 4096
)

// pacer keeps this process's AddSecretVersion and UpdateSecret requests
// on one secret within the per-secret rate, so that they wait out the
// window instead of being answered RESOURCE_EXHAUSTED and pausing in
// backoff (which overshoots the window, and at best spends a request).
// A store write is one request of each, back to back; a write that
// follows within the second waits until the window allows it, while the
// engine gathers the changes that arrive meanwhile into it (group
// commit). The window is a sliding second, as the rate is documented:
// a token bucket (golang.org/x/time/rate) would space even the two
// requests of one write apart. Other processes' writes are not seen
// here; they still draw RESOURCE_EXHAUSTED, which the throttle handles.
//
// A pacer records every write but holds none back until the service
// first answers one RESOURCE_EXHAUSTED: the rate is soft-enforced, and a
// service that does not enforce it (an emulator without the rate, a test
// server) is not paced for nothing.
type pacer struct {
	on     atomic.Bool
	mu     sync.Mutex
	recent map[string][secretWritesPerSecond]time.Time // the latest slots, oldest first
}

// start turns pacing on.
func (p *pacer) start() { p.on.Store(true) }

func newPacer() *pacer {
	return &pacer{recent: map[string][secretWritesPerSecond]time.Time{}}
}

// wait reserves the next slot for a write of secret and, once the pacer
// has started, sleeps until it.
func (p *pacer) wait(ctx context.Context, secret string) error {
	now := time.Now()
	p.mu.Lock()
	if len(p.recent) >= paceSecrets {
		for name, r := range p.recent {
			if now.Sub(r[secretWritesPerSecond-1]) > time.Second {
				delete(p.recent, name)
			}
		}
	}
	r := p.recent[secret]
	slot := now
	if !r[0].IsZero() && p.on.Load() {
		slot = later(now, r[0].Add(time.Second+paceMargin))
	}
	copy(r[:], r[1:])
	r[secretWritesPerSecond-1] = slot
	p.recent[secret] = r
	p.mu.Unlock()
	if d := slot.Sub(now); d > 0 {
		return gax.Sleep(ctx, d)
	}
	return nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
