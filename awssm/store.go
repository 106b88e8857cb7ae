package awssm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// Limits of AWS Secrets Manager that this package enforces on the client
// side (moto_server enforces none of them).
const (
	// MaxValueSize is the largest secret value AWS accepts: 65,536 bytes.
	// Larger documents fail with tokenstore.ErrTooLarge before any call.
	MaxValueSize = 65536
	// MaxNameLength is the longest secret name AWS accepts.
	MaxNameLength = 512
	// MaxPrefixLength is the longest prefix New accepts: a secret name is
	// prefix + "/" + "token-" + a token ID of up to
	// tokenstore.MaxIDLength characters, and must fit MaxNameLength.
	MaxPrefixLength = MaxNameLength - len("/token-") - tokenstore.MaxIDLength
	// MaxIndexShards is the largest WithIndexShards value.
	MaxIndexShards = 1000
)

var (
	// ErrInvalidConfig: New was given a nil client, an invalid prefix, an
	// invalid option value or conflicting options.
	ErrInvalidConfig = errors.New("awssm: invalid configuration")
	// ErrInvalidPrefix: the prefix cannot name AWS secrets (see New). It
	// wraps ErrInvalidConfig.
	ErrInvalidPrefix = fmt.Errorf("%w: invalid prefix", ErrInvalidConfig)
)

// Store is a tokenstore.Store and tokenstore.Leaser on AWS Secrets
// Manager: one secret per token plus the index secrets, all named under
// one prefix. It is the casstore engine on a Secrets Manager backend, so
// it also has Check (which compares the index with ListSecrets).
// A Store is safe for concurrent use, also by several processes that
// share the prefix.
type Store struct {
	engine *casstore.Store
	b      *backend
}

// New returns a Store that keeps its tokens in client's account and
// region under prefix: the token with ID id is the secret
// "<prefix>/token-<id>" and index shard n is "<prefix>/index-<n>".
//
// Build client from config.LoadDefaultConfig so that every standard
// credential, region, endpoint and retry setting applies. The prefix is
// required: 1 to MaxPrefixLength characters of [A-Za-z0-9/_+=.@-], not
// starting or ending with "/", without "//"; otherwise New returns
// ErrInvalidPrefix. Invalid options give ErrInvalidConfig.
//
// New makes no API call: the first secret is created by the first save.
func New(ctx context.Context, client *secretsmanager.Client, prefix string, opts ...Option) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if client == nil {
		return nil, fmt.Errorf("%w: nil *secretsmanager.Client", ErrInvalidConfig)
	}
	if err := validatePrefix(prefix); err != nil {
		return nil, err
	}
	c := settings{}
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%w: nil Option", ErrInvalidConfig)
		}
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	if c.forceDelete && c.recoveryDays != 0 {
		return nil, fmt.Errorf("%w: WithForceDelete and WithRecoveryWindow exclude each other", ErrInvalidConfig)
	}
	b := &backend{
		c:           client,
		prefix:      prefix + "/",
		forceDelete: c.forceDelete,
	}
	if c.kmsKeyID != "" {
		b.kmsKeyID = aws.String(c.kmsKeyID)
	}
	for _, k := range slices.Sorted(maps.Keys(c.tags)) {
		b.tags = append(b.tags, types.Tag{Key: aws.String(k), Value: aws.String(c.tags[k])})
	}
	if c.recoveryDays != 0 {
		b.recoveryDays = aws.Int64(int64(c.recoveryDays))
	}
	logger := c.logger
	if logger == nil {
		logger = slog.Default()
	}
	b.logger = logger
	var eb casstore.Backend = b
	if c.wrap != nil {
		if eb = c.wrap(b); eb == nil {
			return nil, fmt.Errorf("%w: the backend wrapper returned nil", ErrInvalidConfig)
		}
	}
	return &Store{
		engine: casstore.New(eb, casstore.Options{
			IndexShards: c.indexShards,
			CacheIndex:  c.cacheIndex,
			MaxAttempts: c.maxAttempts,
			Logger:      logger,
			ClaimWait:   c.claimWait,
			Observer:    c.observer,
		}),
		b: b,
	}, nil
}

// Prefix returns the store's prefix, without the trailing "/".
func (s *Store) Prefix() string { return s.b.prefix[:len(s.b.prefix)-1] }

// SecretName returns the name of the secret that holds token id, or an
// error wrapping tokenstore.ErrInvalidID if no token with that ID can
// exist in AWS (see the package documentation on names).
func (s *Store) SecretName(id string) (string, error) {
	if err := tokenstore.ValidateID(id); err != nil {
		return "", err
	}
	name := s.b.prefix + casstore.TokenName(id)
	if err := validateName(name); err != nil {
		return "", fmt.Errorf("%w: %w", tokenstore.ErrInvalidID, err)
	}
	return name, nil
}

func validatePrefix(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("%w: the prefix is required", ErrInvalidPrefix)
	case len(p) > MaxPrefixLength:
		return fmt.Errorf("%w: prefix is %d characters, the limit is %d", ErrInvalidPrefix, len(p), MaxPrefixLength)
	case p[0] == '/' || p[len(p)-1] == '/':
		return fmt.Errorf("%w: prefix %q starts or ends with \"/\"", ErrInvalidPrefix, p)
	}
	for i := 0; i < len(p); i++ {
		if !nameChar(p[i]) {
			return fmt.Errorf("%w: character %q at offset %d; AWS secret names allow A-Z a-z 0-9 and / _ + = . @ -", ErrInvalidPrefix, p[i], i)
		}
		if p[i] == '/' && p[i+1] == '/' {
			return fmt.Errorf("%w: prefix %q has an empty path segment", ErrInvalidPrefix, p)
		}
	}
	return nil
}

func nameChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '/', '_', '+', '=', '.', '@', '-':
		return true
	}
	return false
}

// errReservedName: the name breaks one of AWS's secret naming rules.
var errReservedName = errors.New("not a valid AWS secret name")

// validateName applies AWS's secret name rules to a full name: the
// characters of nameChar, at most MaxNameLength, and not ending in "-"
// followed by six characters, the shape of the random suffix AWS adds to
// ARNs (such a name can be confused with a partial ARN of another secret).
func validateName(name string) error {
	if len(name) == 0 || len(name) > MaxNameLength {
		return fmt.Errorf("%w: %d characters, the limit is %d", errReservedName, len(name), MaxNameLength)
	}
	for i := 0; i < len(name); i++ {
		if !nameChar(name[i]) {
			return fmt.Errorf("%w: character %q at offset %d", errReservedName, name[i], i)
		}
	}
	if len(name) >= 7 && name[len(name)-7] == '-' {
		return fmt.Errorf("%w: %q ends in \"-\" and six characters, the shape of an ARN suffix", errReservedName, name)
	}
	return nil
}
