package casstoretest

import (
	"sync"
	"time"
)

// ManualClock is a simulated clock for [casstore.Options.Clock],
// [NewQuotaBackend] and the emulators' clock options: time stands still
// until Advance or Set moves it. It is safe for concurrent use.
//
//	clock := casstoretest.NewManualClock(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
//	q := casstoretest.NewQuotaBackend(casstore.NewMemoryBackend(), clock.Now)
//	s := casstore.New(q, casstore.Options{Clock: clock.Now})
//	... // a day of writes, clock.Advance between them
type ManualClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewManualClock returns a ManualClock that reads start.
func NewManualClock(start time.Time) *ManualClock { return &ManualClock{now: start} }

// Now returns the clock's current time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d (backward if d is negative) and
// returns the new time.
func (c *ManualClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

// Set moves the clock to t.
func (c *ManualClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}
