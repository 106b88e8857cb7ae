package casstoretest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// ErrVersionQuota is QuotaBackend's LimitExceededException: the document
// already has VersionsPerDay versions created in the last 24 hours.
var ErrVersionQuota = errors.New("casstoretest: LimitExceededException: too many versions created in the last 24 hours")

// AWSVersionsPerDay is AWS Secrets Manager's quota of versions created
// per secret in any 24 hours; it cannot be raised.
const AWSVersionsPerDay = 100

// QuotaBackend enforces AWS Secrets Manager's version quota on a backend
// that does not (moto, an emulator, MemoryBackend): every Create and every
// Update creates a version — an Update even when its compare-and-swap
// then fails, because the AWS adapter puts the new version before it
// moves the AWSCURRENT label — and a write that would be a document's
// VersionsPerDay+1-th version in the last 24 hours fails with
// ErrVersionQuota without being applied. Time comes from Clock, so a test
// can run a simulated day in seconds. It reports its quota through
// casstore.QuotaReporter, as the AWS adapter does.
type QuotaBackend struct {
	casstore.Backend
	// VersionsPerDay is the quota (default AWSVersionsPerDay).
	VersionsPerDay int
	// Clock tells the time (default time.Now).
	Clock func() time.Time

	mu       sync.Mutex
	versions map[string][]time.Time
	max      int
	maxName  string
	refused  int
}

// NewQuotaBackend returns b under AWS's version quota on clock.
func NewQuotaBackend(b casstore.Backend, clock func() time.Time) *QuotaBackend {
	return &QuotaBackend{Backend: b, VersionsPerDay: AWSVersionsPerDay, Clock: clock, versions: map[string][]time.Time{}}
}

func (q *QuotaBackend) now() time.Time {
	if q.Clock != nil {
		return q.Clock()
	}
	return time.Now()
}

func (q *QuotaBackend) limit() int {
	if q.VersionsPerDay > 0 {
		return q.VersionsPerDay
	}
	return AWSVersionsPerDay
}

// take counts a new version of name, or refuses it.
func (q *QuotaBackend) take(name string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	cut := now.Add(-24 * time.Hour)
	vs := q.versions[name]
	i := 0
	for i < len(vs) && !vs[i].After(cut) {
		i++
	}
	vs = vs[i:]
	if len(vs) >= q.limit() {
		q.versions[name] = vs
		q.refused++
		return fmt.Errorf("%w: %s has %d", ErrVersionQuota, name, len(vs))
	}
	vs = append(vs, now)
	q.versions[name] = vs
	if len(vs) > q.max {
		q.max, q.maxName = len(vs), name
	}
	return nil
}

// MaxVersions returns the most versions any document had created within
// one 24-hour window, and which document.
func (q *QuotaBackend) MaxVersions() (int, string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.max, q.maxName
}

// Refused returns how many writes the quota refused.
func (q *QuotaBackend) Refused() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.refused
}

// Create implements casstore.Backend.
func (q *QuotaBackend) Create(ctx context.Context, name string, value []byte) (string, error) {
	if err := q.take(name); err != nil {
		return "", err
	}
	return q.Backend.Create(ctx, name, value)
}

// Update implements casstore.Backend.
func (q *QuotaBackend) Update(ctx context.Context, name string, value []byte, version string) (string, error) {
	if err := q.take(name); err != nil {
		return "", err
	}
	return q.Backend.Update(ctx, name, value, version)
}

// List implements casstore.Lister when the wrapped backend does.
func (q *QuotaBackend) List(ctx context.Context) ([]string, error) {
	l, ok := q.Backend.(casstore.Lister)
	if !ok {
		return nil, errors.New("casstoretest: the wrapped backend cannot list")
	}
	return l.List(ctx)
}

// Quotas implements casstore.QuotaReporter.
func (q *QuotaBackend) Quotas() casstore.Quotas {
	return casstore.Quotas{VersionsPerDay: q.limit()}
}

// BatchSize implements casstore.BatchReader: the wrapped backend's, or 1.
func (q *QuotaBackend) BatchSize() int {
	if br, ok := q.Backend.(casstore.BatchReader); ok {
		return br.BatchSize()
	}
	return 1
}
