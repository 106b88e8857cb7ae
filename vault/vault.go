package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
	"github.com/hashicorp/vault/api"
)

// Defaults of the options.
const (
	// DefaultMount is the KV v2 mount used without WithMount: the "secret/"
	// mount of a dev server and of many installations.
	DefaultMount = "secret"
	// DefaultMaxVersions is the max_versions set on every entry the store
	// creates. Each version of a token entry holds the token's secrets, so
	// old versions are old access and refresh tokens: keeping five is
	// enough to inspect or roll back a bad write, and bounds how many
	// superseded secrets stay readable (Vault's own default is 10).
	DefaultMaxVersions = 5
	// DefaultReadWorkers bounds the parallel reads of Tokens and Check
	// (Vault has no batch read): 8 requests in flight.
	DefaultReadWorkers = 8
)

// The errors of this package. Test them with errors.Is; messages carry
// paths and HTTP status, never token values.
var (
	// ErrInvalidConfig: New was given a nil client, a nil Option, an
	// option value out of range, or an invalid mount path or prefix.
	ErrInvalidConfig = errors.New("vault: invalid configuration")
	// ErrInvalidPrefix: a mount path or prefix that is empty, too long,
	// starts with "/", has an empty, "." or ".." segment, or a character
	// outside [A-Za-z0-9._-]. It wraps ErrInvalidConfig.
	ErrInvalidPrefix = fmt.Errorf("%w: invalid mount path or prefix", ErrInvalidConfig)
	// ErrInvalidOption is ErrInvalidConfig.
	//
	// Deprecated: use ErrInvalidConfig, the name every cloudtokens
	// adapter uses.
	ErrInvalidOption = ErrInvalidConfig
	// ErrNotKVv2: the mount is not a KV version 2 secrets engine (a KV v1
	// mount has no check-and-set, so it cannot hold a store). New returns
	// it inside a *MountError.
	ErrNotKVv2 = errors.New("vault: mount is not a KV version 2 secrets engine")
	// ErrMountNotFound: nothing is mounted at the mount path. New returns
	// it inside a *MountError.
	ErrMountNotFound = errors.New("vault: no secrets engine at the mount path")
	// ErrPermissionDenied: Vault answered 403: the token is invalid or
	// expired, or its policies do not grant the capability on the path.
	// It is never reported as tokenstore.ErrNotFound.
	ErrPermissionDenied = errors.New("vault: permission denied")
)

// MountError is the error of New for a mount that cannot hold a store. It
// wraps ErrNotKVv2, ErrMountNotFound, or, when Vault denies both ways of
// reading the mount's configuration (a bad token, no access, or no mount:
// Vault does not tell which), ErrPermissionDenied and ErrMountNotFound;
// and the Vault error.
type MountError struct {
	// Mount is the mount path as configured, without a trailing "/".
	Mount string
	// Type is the secrets engine type Vault reported ("kv", "generic",
	// "transit", ...), or "" when unknown.
	Type string
	// Version is the KV version ("1", "2") Vault reported, or "".
	Version string
	// Err is ErrNotKVv2, ErrMountNotFound or ErrPermissionDenied.
	Err error
	// Cause is the underlying Vault error, if any.
	Cause error
	// Detail explains the problem.
	Detail string
}

func (e *MountError) Error() string {
	msg := fmt.Sprintf("%v: mount %q", e.Err, e.Mount)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Unwrap returns Err and Cause.
func (e *MountError) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.Cause}
}

// Store is a tokenstore.Store and tokenstore.Leaser on a Vault KV v2
// mount. It is the casstore engine (embedded: FindToken, SaveToken,
// Check, AcquireLease, ...) on a Backend. It is safe for concurrent use.
type Store struct {
	engine  *casstore.Store
	backend *Backend
}

// Backend returns the store's Backend: the casstore.Backend and
// casstore.Lister on Vault that the engine uses.
func (s *Store) Backend() *Backend { return s.backend }

// Option configures New. An option given a bad value makes New return
// an error wrapping ErrInvalidConfig.
type Option func(*config) error

type config struct {
	mount       string
	softDelete  bool
	maxVersions int
	readWorkers int
	consistency Consistency
	engine      casstore.Options
	wrap        func(casstore.Backend) casstore.Backend
	claimWait   time.Duration
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
}

// WithIndexShards makes a new, empty store split its index into n buckets
// on its first write.
//
// Deprecated: the index grows by itself, following both its size and its
// write rate (see package index); a store created with a fixed number of
// shards by an earlier version keeps its layout, read from the index.
func WithIndexShards(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return invalid("WithIndexShards(%d): need at least 1", n)
		}
		c.engine.IndexShards = n
		return nil
	}
}

// WithIndexCache keeps the index in memory and answers FindToken from it,
// verifying every answer against the token entry it reads: a lookup then
// costs 1 call instead of 2. Default false.
func WithIndexCache(enabled bool) Option {
	return func(c *config) error {
		c.engine.CacheIndex = enabled
		return nil
	}
}

// WithMaxAttempts bounds the check-and-set retries of one operation
// (default 20) before tokenstore.ErrConflict.
func WithMaxAttempts(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return invalid("WithMaxAttempts(%d): need at least 1", n)
		}
		c.engine.MaxAttempts = n
		return nil
	}
}

// WithLogger sets the logger for warnings (corrupt entries, failed
// cleanups): entry paths, which come from token IDs, never user names or
// token values. Default slog.Default(); nil is an error.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return invalid("WithLogger(nil)")
		}
		c.engine.Logger = l
		return nil
	}
}

// WithMount sets the path of the KV v2 mount (default "secret"); a
// trailing "/" is ignored. New checks that it is a KV v2 mount.
func WithMount(path string) Option {
	return func(c *config) error {
		path = strings.TrimSuffix(path, "/")
		if err := validatePath("mount path", path); err != nil {
			return err
		}
		c.mount = path
		return nil
	}
}

// WithSoftDelete makes DeleteToken keep the token's history: it writes a
// deletion marker as a new version and soft-deletes that version, so the
// earlier versions, which hold the token, stay readable with
// "vault kv get -version=N" (up to max_versions of them). Without it,
// DeleteToken deletes the entry's metadata and every version: nothing is
// recoverable. A soft-deleted token is gone for the store (not found, not
// listed, not indexed); recover it by reading an old version and saving
// it as a new token.
func WithSoftDelete() Option {
	return func(c *config) error {
		c.softDelete = true
		return nil
	}
}

// WithMaxVersions sets max_versions on the metadata of every entry the
// store creates (default DefaultMaxVersions, 5); 0 leaves the mount's
// setting (Vault's default is 10) and saves one call per created entry.
// Vault keeps the larger of the entry's and the mount's max_versions.
func WithMaxVersions(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return invalid("WithMaxVersions(%d): need 0 or more", n)
		}
		c.maxVersions = n
		return nil
	}
}

// WithReadWorkers bounds the parallel reads of Tokens, Check and the
// access-token scan of FindToken (default DefaultReadWorkers, 8).
func WithReadWorkers(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return invalid("WithReadWorkers(%d): need at least 1", n)
		}
		c.readWorkers = n
		return nil
	}
}

// New returns a Store that keeps its tokens under prefix in the KV v2
// mount (WithMount, default "secret") of the Vault server client talks
// to. The client carries the address, the token of any auth method and
// the namespace; New does not change it.
//
// New checks the mount with one call to sys/internal/ui/mounts/<mount>
// (any token with access to the mount may read it): a KV v1 or other
// engine gives a *MountError wrapping ErrNotKVv2. When that call is
// denied, which Vault also answers for a mount that does not exist, New
// asks sys/mounts/<mount>: a missing mount gives a *MountError wrapping
// ErrMountNotFound; if that is denied too (a bad or expired token, a
// token without access), the *MountError wraps ErrPermissionDenied and
// ErrMountNotFound.
//
// prefix is one or more "/"-separated segments of [A-Za-z0-9._-] (no
// empty, "." or ".." segment); a bad prefix or mount gives
// ErrInvalidPrefix, a nil client, a nil Option or a bad option value
// ErrInvalidConfig (which ErrInvalidPrefix wraps), before any request.
//
// With WithConsistency, the store talks to Vault through a shallow copy
// of client (api.Client.WithResponseCallbacks and WithRequestCallbacks)
// that carries the consistency headers; client itself is not changed.
func New(ctx context.Context, client *api.Client, prefix string, opts ...Option) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if client == nil {
		return nil, invalid("nil *api.Client")
	}
	c := &config{mount: DefaultMount, maxVersions: DefaultMaxVersions, readWorkers: DefaultReadWorkers}
	for _, o := range opts {
		if o == nil {
			return nil, invalid("nil Option")
		}
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if err := validatePath("prefix", prefix); err != nil {
		return nil, err
	}
	if c.engine.Logger == nil {
		c.engine.Logger = slog.Default()
	}
	if c.consistency != EventualConsistency {
		client = c.consistency.apply(client)
	}
	b := &Backend{
		client:      client,
		mount:       c.mount,
		prefix:      prefix,
		softDelete:  c.softDelete,
		maxVersions: c.maxVersions,
		readWorkers: c.readWorkers,
		maxAttempts: c.engine.MaxAttempts,
		logger:      c.engine.Logger,
	}
	if b.maxAttempts <= 0 {
		b.maxAttempts = 20
	}
	if err := b.checkMount(ctx); err != nil {
		return nil, err
	}
	var eb casstore.Backend = b
	if c.wrap != nil {
		if eb = c.wrap(b); eb == nil {
			return nil, fmt.Errorf("%w: the backend wrapper returned nil", ErrInvalidConfig)
		}
	}
	c.engine.ClaimWait = c.claimWait
	return &Store{engine: casstore.New(eb, c.engine), backend: b}, nil
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
