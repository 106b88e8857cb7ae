package awssm

import (
	"fmt"

	"github.com/cloudtokens/cloudtokens/observe"
)

// WithObserver reports every operation of the store, every backend
// request it makes (a AWS Secrets Manager call), nested in the operation, and the
// engine's retries, fences and index splits to o (see
// [casstore.Options.Observer] and package
// [github.com/cloudtokens/cloudtokens/observe]; the module
// github.com/cloudtokens/cloudtokens/otel implements it with
// OpenTelemetry). Operations carry record IDs and document names, never
// token values or user names. A nil o is an error.
func WithObserver(o observe.Observer) Option {
	return func(c *settings) error {
		if o == nil {
			return fmt.Errorf("%w: WithObserver(nil)", ErrInvalidConfig)
		}
		c.observer = o
		return nil
	}
}
