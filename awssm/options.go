package awssm

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/cloudtokens/cloudtokens/observe"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// Option configures a Store; see New.
type Option func(*settings) error

type settings struct {
	indexShards  int
	cacheIndex   bool
	maxAttempts  int
	logger       *slog.Logger
	kmsKeyID     string
	tags         map[string]string
	recoveryDays int  // 0: AWS's default (30 days)
	forceDelete  bool // ForceDeleteWithoutRecovery
	wrap         func(casstore.Backend) casstore.Backend
	claimWait    time.Duration
	observer     observe.Observer
}

// WithIndexShards makes a new, empty store split its index into n buckets
// on its first write.
//
// Deprecated: the index grows by itself, following both its size and its
// write rate (see package index); a store created with a fixed number of
// shards by an earlier version keeps its layout, read from the index.
func WithIndexShards(n int) Option {
	return func(c *settings) error {
		if n < 1 || n > MaxIndexShards {
			return fmt.Errorf("%w: WithIndexShards(%d): must be 1 to %d", ErrInvalidConfig, n, MaxIndexShards)
		}
		c.indexShards = n
		return nil
	}
}

// WithIndexCache keeps the index in memory and answers lookups by user
// name, grant or refresh token from it: a warm lookup costs one
// GetSecretValue call instead of two. Every cached answer is verified
// against the token secret it names, and a miss or a mismatch re-reads
// the index, so the cache never returns a wrong or stale token.
func WithIndexCache(enabled bool) Option {
	return func(c *settings) error {
		c.cacheIndex = enabled
		return nil
	}
}

// WithMaxAttempts bounds the compare-and-swap retries of one operation
// (default 20) before tokenstore.ErrConflict. Throttling and network
// retries are the SDK retryer's business and do not count here.
func WithMaxAttempts(n int) Option {
	return func(c *settings) error {
		if n < 1 {
			return fmt.Errorf("%w: WithMaxAttempts(%d): must be at least 1", ErrInvalidConfig, n)
		}
		c.maxAttempts = n
		return nil
	}
}

// WithLogger sets the logger for warnings about stale or corrupt
// secrets (default slog.Default()). Log records never hold token values.
func WithLogger(l *slog.Logger) Option {
	return func(c *settings) error {
		if l == nil {
			return fmt.Errorf("%w: WithLogger(nil)", ErrInvalidConfig)
		}
		c.logger = l
		return nil
	}
}

// WithKMSKeyID encrypts the secrets this store creates with the given KMS
// key (key ID, alias or ARN) instead of the account's aws/secretsmanager
// key. The caller then needs kms:GenerateDataKey and kms:Decrypt on it.
func WithKMSKeyID(id string) Option {
	return func(c *settings) error {
		if id == "" {
			return fmt.Errorf("%w: WithKMSKeyID(\"\")", ErrInvalidConfig)
		}
		c.kmsKeyID = id
		return nil
	}
}

// WithTags attaches tags to every secret this store creates. The caller
// then needs secretsmanager:TagResource as well. AWS allows 50 tags per
// secret, keys up to 128 and values up to 256 characters, and reserves
// the "aws:" prefix.
func WithTags(tags map[string]string) Option {
	return func(c *settings) error {
		if len(tags) > 50 {
			return fmt.Errorf("%w: WithTags: %d tags, AWS allows 50", ErrInvalidConfig, len(tags))
		}
		for _, k := range slices.Sorted(maps.Keys(tags)) {
			switch v := tags[k]; {
			case k == "" || len(k) > 128:
				return fmt.Errorf("%w: WithTags: tag key %q must be 1 to 128 characters", ErrInvalidConfig, k)
			case len(v) > 256:
				return fmt.Errorf("%w: WithTags: value of tag %q is longer than 256 characters", ErrInvalidConfig, k)
			case len(k) >= 4 && k[:4] == "aws:":
				return fmt.Errorf("%w: WithTags: tag key %q uses the reserved prefix \"aws:\"", ErrInvalidConfig, k)
			}
		}
		if c.tags == nil {
			c.tags = map[string]string{}
		}
		maps.Copy(c.tags, tags)
		return nil
	}
}

// WithRecoveryWindow deletes token secrets with a recovery window of days
// (7 to 30) during which they can be restored with RestoreSecret. The
// default, when neither this nor WithForceDelete is given, is AWS's
// default window of 30 days. A deleted token's secret name is never
// reused (new tokens get new random IDs), so the window does not block
// saving the same user again.
func WithRecoveryWindow(days int) Option {
	return func(c *settings) error {
		if days < 7 || days > 30 {
			return fmt.Errorf("%w: WithRecoveryWindow(%d): AWS accepts 7 to 30 days", ErrInvalidConfig, days)
		}
		c.recoveryDays = days
		return nil
	}
}

// WithForceDelete deletes token secrets at once, without a recovery
// window (ForceDeleteWithoutRecovery). A delete then costs two
// DeleteSecret calls instead of one: AWS reports no error when it
// force-deletes a missing secret, so the store first schedules the
// deletion (which fails for a missing secret: tokenstore.ErrNotFound, and
// exactly one of two concurrent deletes succeeds) and then forces it.
func WithForceDelete() Option {
	return func(c *settings) error {
		c.forceDelete = true
		return nil
	}
}

// WithBackendWrapper has the engine use w(backend) instead of the
// store's own backend: for tests that make the backend behave as a cloud
// may ([casstoretest.StaleBackend], [casstoretest.QuotaBackend],
// [casstoretest.FaultBackend]) and for instrumentation. The result must
// keep the [casstore.Backend] contract; Check, Repair and DeleteTokens
// need it to implement [casstore.Lister] too (the casstoretest wrappers
// pass it through).
func WithBackendWrapper(w func(casstore.Backend) casstore.Backend) Option {
	return func(c *settings) error {
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
	return func(c *settings) error {
		if d <= 0 {
			return fmt.Errorf("%w: WithClaimWait(%v): must be positive", ErrInvalidConfig, d)
		}
		c.claimWait = d
		return nil
	}
}
