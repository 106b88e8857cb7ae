package gcpsmtest

import (
	"fmt"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore/casstore/casstoretest"
)

// WithClock makes now the emulator's time source (default time.Now). It
// stamps create_time and destroy_time, and it is the time that
// [WithEventualConsistency] lags behind and that the rate limits of
// [WithSecretWriteRate] and [WithProjectQuotas] count in. A simulated
// clock such as [ManualClock] lets tests cross a quota window or a
// consistency lag without sleeping. now must be safe for concurrent use.
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return fmt.Errorf("%w: nil clock", ErrInvalidConfig)
		}
		c.now = now
		return nil
	}
}

// ManualClock is a simulated clock for [WithClock]: time stands still
// until Advance or Set moves it. It is safe for concurrent use. It is
// [casstoretest.ManualClock], so one clock can drive the emulator and a
// store's own clock and quotas.
//
//	clock := gcpsmtest.NewManualClock(time.Unix(1_700_000_000, 0))
//	srv := gcpsmtest.Start(t, gcpsmtest.WithClock(clock.Now),
//		gcpsmtest.WithProjectQuotas(gcpsmtest.DocumentedProjectQuotas()))
//	... // 600 writes succeed, the 601st is RESOURCE_EXHAUSTED
//	clock.Advance(time.Minute) // the window has passed
type ManualClock = casstoretest.ManualClock

// NewManualClock returns a ManualClock that reads start.
func NewManualClock(start time.Time) *ManualClock { return casstoretest.NewManualClock(start) }
