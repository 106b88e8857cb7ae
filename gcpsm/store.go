package gcpsm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// PrefixLabel is the label that marks every secret of a store with its
// prefix, so that the store can list its secrets. Its value is the prefix
// itself when that is a valid label value (at most 63 characters of
// [a-z0-9_-]), and otherwise "h-" followed by the first 128 bits of the
// SHA-256 of the prefix in hex.
const PrefixLabel = "cloudtokens_prefix"

// CurrentAlias is the user-defined version alias that names the current
// version of every secret of a store. Readers access
// projects/P/secrets/S/versions/current; writers move it with UpdateSecret
// under the secret's etag.
const CurrentAlias = "current"

// PreviousAlias is the user-defined version alias that names the version
// that was current before the current one. Every write moves it together
// with CurrentAlias (in the same etag-checked UpdateSecret) and destroys
// the version it named before, so the version a lagging reader may still
// resolve "current" to stays readable until the next write, or the next
// refresh lease, which destroys it (see "The refresh lease" in the
// package documentation).
const PreviousAlias = "previous"

// MaxPrefixLength is the longest prefix New accepts: a secret ID holds at
// most 255 characters, and the longest ID the store derives is the prefix,
// "_token-" and a 64-character token ID.
const MaxPrefixLength = 255 - len("_token-") - tokenstore.MaxIDLength

var (
	// ErrInvalidConfig: New was given a nil client, an empty or malformed
	// project ID or prefix, or an invalid option.
	ErrInvalidConfig = errors.New("gcpsm: invalid configuration")
	// ErrInvalidPrefix: the prefix is empty, longer than MaxPrefixLength or
	// has a character outside [A-Za-z0-9_-]. It wraps ErrInvalidConfig.
	ErrInvalidPrefix = fmt.Errorf("%w: invalid prefix", ErrInvalidConfig)
	// ErrChecksum: the CRC32C checksum Secret Manager returned with a
	// payload does not match the payload. It wraps tokenstore.ErrMalformed.
	ErrChecksum = fmt.Errorf("%w: payload checksum mismatch", tokenstore.ErrMalformed)
	// ErrStaleAlias: a read kept finding the current alias at a version
	// that is DESTROYED or DISABLED (or older than one this Store has seen
	// current, itself destroyed since) for WithStaleReadWait. The alias is eventually consistent,
	// so this is normally a read that lags behind two or more writes made
	// elsewhere in quick succession; a version disabled by hand gives it
	// too. It wraps tokenstore.ErrConflict: the document is changing
	// faster than reads converge, and a later attempt normally succeeds.
	ErrStaleAlias = fmt.Errorf("%w: the current alias names a version that cannot be read", tokenstore.ErrConflict)
	// ErrAliasNotMoved: UpdateSecret succeeded but its answer does not
	// name the new version under CurrentAlias (and the version it replaced
	// under PreviousAlias). The server acknowledged aliases it did not
	// apply (some third-party emulators do); the store reports it rather
	// than lose the write silently. It wraps errors.ErrUnsupported. When
	// only PreviousAlias is missing the document was written; otherwise it
	// was not, and the added version is destroyed.
	ErrAliasNotMoved = fmt.Errorf("gcpsm: the version aliases did not move: %w", errors.ErrUnsupported)
)

// Store is a tokenstore.Store and tokenstore.Leaser on GCP Secret Manager:
// the casstore engine on a Secret Manager backend. Check (from the engine)
// compares the index with the secrets the store lists.
type Store struct {
	engine *casstore.Store
	b      *backend
}

var (
	_ casstore.Backend       = (*backend)(nil)
	_ casstore.Lister        = (*backend)(nil)
	_ casstore.QuotaReporter = (*backend)(nil)
)

// New returns a Store that keeps its tokens in project projectID (an ID or
// a number) as secrets named prefix + "_" + document name: one secret per
// token (prefix_token-<id>) and one per index shard (prefix_index-<n>).
// The prefix is 1 to MaxPrefixLength characters of [A-Za-z0-9_-]; an
// invalid one gives ErrInvalidPrefix. Stores in several processes that
// share a project and prefix share the tokens.
//
// The caller owns client and closes it after the last use of the Store.
// New makes no API call; ctx is reserved.
func New(ctx context.Context, client *secretmanager.Client, projectID, prefix string, opts ...Option) (*Store, error) {
	_ = ctx
	if client == nil {
		return nil, fmt.Errorf("%w: nil *secretmanager.Client", ErrInvalidConfig)
	}
	if err := validateProject(projectID); err != nil {
		return nil, err
	}
	if err := validatePrefix(prefix); err != nil {
		return nil, err
	}
	cfg := config{readWorkers: DefaultReadWorkers, retries: DefaultTransientRetries, staleReadWait: DefaultStaleReadWait}
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%w: nil Option", ErrInvalidConfig)
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	if cfg.replication == nil {
		cfg.replication = &secretmanagerpb.Replication{
			Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}},
		}
	}
	labels := map[string]string{}
	for k, v := range cfg.labels {
		labels[k] = v
	}
	labels[PrefixLabel] = prefixLabelValue(prefix)
	b := &backend{
		client:        client,
		parent:        "projects/" + projectID,
		prefix:        prefix,
		labels:        labels,
		replication:   cfg.replication,
		readWorkers:   cfg.readWorkers,
		logger:        cfg.logger,
		retries:       cfg.retries,
		staleReadWait: cfg.staleReadWait,
		mem:           newMemory(rememberSecrets),
		pace:          newPacer(),
	}
	var eb casstore.Backend = b
	if cfg.wrap != nil {
		if eb = cfg.wrap(b); eb == nil {
			return nil, fmt.Errorf("%w: the backend wrapper returned nil", ErrInvalidConfig)
		}
	}
	cs := casstore.New(eb, casstore.Options{
		IndexShards: cfg.indexShards,
		CacheIndex:  cfg.indexCache,
		MaxAttempts: cfg.maxAttempts,
		Logger:      cfg.logger,
		ClaimWait:   cfg.claimWait,
		Observer:    cfg.observer,
	})
	return &Store{engine: cs, b: b}, nil
}

// SecretID returns the ID of the secret that holds the token with the
// given ID, for example to grant access to it alone. It does not validate
// the ID.
func (s *Store) SecretID(tokenID string) string {
	return s.b.secretID(casstore.TokenName(tokenID))
}

// IndexSecretID returns the ID of the secret that holds index shard n.
func (s *Store) IndexSecretID(n int) string {
	return s.b.secretID(casstore.IndexName(n))
}

func validateProject(p string) error {
	if p == "" {
		return fmt.Errorf("%w: empty project ID", ErrInvalidConfig)
	}
	if len(p) > 100 {
		return fmt.Errorf("%w: project ID is %d characters", ErrInvalidConfig, len(p))
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == ':') {
			return fmt.Errorf("%w: project ID has character %q at offset %d", ErrInvalidConfig, c, i)
		}
	}
	return nil
}

func validatePrefix(p string) error {
	if p == "" {
		return fmt.Errorf("%w: empty prefix", ErrInvalidPrefix)
	}
	if len(p) > MaxPrefixLength {
		return fmt.Errorf("%w: prefix is %d characters, the limit is %d", ErrInvalidPrefix, len(p), MaxPrefixLength)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("%w: prefix has character %q at offset %d; allowed are A-Z a-z 0-9 _ -", ErrInvalidPrefix, c, i)
		}
	}
	return nil
}

// prefixLabelValue returns the value of PrefixLabel for prefix.
func prefixLabelValue(prefix string) string {
	if validLabelValue(prefix) && !strings.HasPrefix(prefix, "h-") {
		return prefix
	}
	sum := sha256.Sum256([]byte(prefix))
	return "h-" + hex.EncodeToString(sum[:16])
}
