package gcpsm

import (
	"fmt"
	"log/slog"
	"maps"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"

	"github.com/cloudtokens/cloudtokens/observe"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// Option configures a Store created by New.
type Option func(*config) error

type config struct {
	indexShards   int
	indexCache    bool
	maxAttempts   int
	logger        *slog.Logger
	labels        map[string]string
	replication   *secretmanagerpb.Replication
	readWorkers   int
	retries       int
	staleReadWait time.Duration
	wrap          func(casstore.Backend) casstore.Backend
	claimWait     time.Duration
	observer      observe.Observer
}

// DefaultReadWorkers is the number of AccessSecretVersion calls that
// Tokens (and Check) keep in flight at once unless WithReadWorkers says
// otherwise. Secret Manager has no batch read, so listing N tokens costs N
// access calls; 16 in flight stays far below the project's access quota
// (90,000 per minute) while hiding most of the round-trip latency.
const DefaultReadWorkers = 16

// WithIndexShards makes a new, empty store split its index into n buckets
// on its first write.
//
// Deprecated: the index grows by itself, following both its size and its
// write rate (see package index); a store created with a fixed number of
// shards by an earlier version keeps its layout, read from the index.
func WithIndexShards(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 10000 {
			return fmt.Errorf("%w: index shards must be 1..10000, got %d", ErrInvalidConfig, n)
		}
		c.indexShards = n
		return nil
	}
}

// WithIndexCache keeps the index shards in memory (default off), so that a
// lookup by user name, grant or refresh token costs one access call instead
// of two while the cached entry is still right; see
// casstore.Options.CacheIndex.
func WithIndexCache(enabled bool) Option {
	return func(c *config) error {
		c.indexCache = enabled
		return nil
	}
}

// WithMaxAttempts bounds the compare-and-swap retries of one operation
// (default 20) before tokenstore.ErrConflict.
func WithMaxAttempts(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: max attempts must be at least 1, got %d", ErrInvalidConfig, n)
		}
		c.maxAttempts = n
		return nil
	}
}

// WithLogger sets the logger for warnings about corrupt documents and
// failed clean-ups (default slog.Default()). Log records never hold token
// values.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidConfig)
		}
		c.logger = l
		return nil
	}
}

// WithLabels adds labels to every secret the store creates, for example
// for cost attribution. Keys must start with a lowercase letter; keys and
// values hold at most 63 characters of [a-z0-9_-] (the Secret Manager label
// rules, restricted to ASCII). The key "cloudtokens_prefix" is reserved,
// and a secret carries at most 64 labels, so at most 63 may be added.
// Several WithLabels options add up.
func WithLabels(labels map[string]string) Option {
	return func(c *config) error {
		for k, v := range labels {
			if k == PrefixLabel {
				return fmt.Errorf("%w: label %q is reserved", ErrInvalidConfig, k)
			}
			if !validLabelKey(k) {
				return fmt.Errorf("%w: label key %q: keys are 1-63 characters of [a-z0-9_-] starting with a letter", ErrInvalidConfig, k)
			}
			if !validLabelValue(v) {
				return fmt.Errorf("%w: value of label %q: values are 0-63 characters of [a-z0-9_-]", ErrInvalidConfig, k)
			}
		}
		if c.labels == nil {
			c.labels = map[string]string{}
		}
		maps.Copy(c.labels, labels)
		if len(c.labels) > 63 {
			return fmt.Errorf("%w: %d labels; a secret holds at most 64 including %q", ErrInvalidConfig, len(c.labels), PrefixLabel)
		}
		return nil
	}
}

// WithReplication sets the replication policy of the secrets the store
// creates (default automatic). Existing secrets keep theirs.
func WithReplication(r *secretmanagerpb.Replication) Option {
	return func(c *config) error {
		if r == nil || r.GetReplication() == nil {
			return fmt.Errorf("%w: empty replication policy", ErrInvalidConfig)
		}
		c.replication = r
		return nil
	}
}

// WithReadWorkers bounds the AccessSecretVersion calls that Tokens and
// Check keep in flight at once (default DefaultReadWorkers).
func WithReadWorkers(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: read workers must be at least 1, got %d", ErrInvalidConfig, n)
		}
		c.readWorkers = n
		return nil
	}
}

// WithTransientRetries sets how many times the store retries a Secret
// Manager call answered RESOURCE_EXHAUSTED (a quota or the per-secret
// write rate) or UNAVAILABLE, with jittered exponential backoff from 0.5 s
// to 8 s (default DefaultTransientRetries; 0 turns the retries off).
// AccessSecretVersion keeps the official client's own retry policy.
func WithTransientRetries(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return fmt.Errorf("%w: transient retries must not be negative, got %d", ErrInvalidConfig, n)
		}
		c.retries = n
		return nil
	}
}

// WithStaleReadWait bounds how long a read retries, with backoff from
// 50 ms to 1 s, while the current alias of a secret lags behind its
// writes: while it resolves to a destroyed or disabled version, or GetSecret
// still shows an older version than the one a write starts from (default
// DefaultStaleReadWait; 0 turns the retries off). A read that gives up
// returns ErrStaleAlias.
func WithStaleReadWait(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("%w: stale read wait must not be negative, got %v", ErrInvalidConfig, d)
		}
		c.staleReadWait = d
		return nil
	}
}

func validLabelKey(k string) bool {
	return len(k) >= 1 && k[0] >= 'a' && k[0] <= 'z' && validLabelValue(k)
}

func validLabelValue(v string) bool {
	if len(v) > 63 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// WithBackendWrapper has the engine use w(backend) instead of the
// store's own backend: for tests that make the backend behave as a cloud
// may ([casstoretest.StaleBackend], [casstoretest.QuotaBackend],
// [casstoretest.FaultBackend]) and for instrumentation. The result must
// keep the [casstore.Backend] contract; Check, Repair and DeleteTokens
// need it to implement [casstore.Lister] too (the casstoretest wrappers
// pass it through).
func WithBackendWrapper(w func(casstore.Backend) casstore.Backend) Option {
	return func(c *config) error {
		if w == nil {
			return fmt.Errorf("%w: WithBackendWrapper(nil)", ErrInvalidConfig)
		}
		c.wrap = w
		return nil
	}
}

// WithClaimWait sets how long a save waits for another process's
// unfinished save of the same key before it fences it and goes on
// (default 2 s; see [casstore.Options.ClaimWait]): the longest a user
// stays blocked after a process died in the middle of saving them.
func WithClaimWait(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: WithClaimWait(%v): must be positive", ErrInvalidConfig, d)
		}
		c.claimWait = d
		return nil
	}
}
