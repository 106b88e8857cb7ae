package gcpsmtest

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The documented rate limits, from https://cloud.google.com/secret-manager/quotas
// ("Secret Manager quotas and limits", read in 2026):
//
//   - "Soft-enforced rate limits for modifying secrets and secret versions":
//     AddSecretVersion and UpdateSecret on a global secret, "2 requests per
//     second (2 qps) per secret, and 120 requests per minute (120 qpm) per
//     secret". "Soft-enforcement allows us to continue serving requests
//     beyond their quota as long as our backend systems can handle the
//     load"; the emulator enforces the limit strictly, the worst case.
//   - "Quotas on the rate of requests": "Access request: 90,000 per minute
//     per project", "Read request: 600 per minute per project", "Write
//     request: 600 per minute per project". "An access request is any call
//     to the access API method. A read request is any non-mutating
//     operation ... except for access requests. ... A write request is any
//     mutating operation". "To request an increase of your Secret Manager
//     quotas, please contact your sales representative or contact Google
//     Cloud Support."
const (
	DocumentedSecretWritesPerSecond = 2
	DocumentedSecretWritesPerMinute = 120
	DocumentedAccessPerMinute       = 90_000
	DocumentedReadPerMinute         = 600
	DocumentedWritePerMinute        = 600
)

// SecretRate limits the AddSecretVersion and UpdateSecret requests on one
// secret. A zero field is not enforced.
type SecretRate struct {
	PerSecond int
	PerMinute int
}

// DocumentedSecretWriteRate returns the documented soft limit for a
// global secret: 2 per second and 120 per minute.
func DocumentedSecretWriteRate() SecretRate {
	return SecretRate{PerSecond: DocumentedSecretWritesPerSecond, PerMinute: DocumentedSecretWritesPerMinute}
}

// ProjectQuotas are per-project request quotas per minute. A zero field is
// not enforced.
type ProjectQuotas struct {
	AccessPerMinute int // AccessSecretVersion
	ReadPerMinute   int // GetSecret, ListSecrets, GetSecretVersion, ListSecretVersions, GetIamPolicy, TestIamPermissions
	WritePerMinute  int // CreateSecret, UpdateSecret, DeleteSecret, AddSecretVersion, Enable/Disable/DestroySecretVersion, SetIamPolicy
}

// DocumentedProjectQuotas returns the documented default quotas: 90,000
// access, 600 read and 600 write requests per minute per project.
func DocumentedProjectQuotas() ProjectQuotas {
	return ProjectQuotas{
		AccessPerMinute: DocumentedAccessPerMinute,
		ReadPerMinute:   DocumentedReadPerMinute,
		WritePerMinute:  DocumentedWritePerMinute,
	}
}

// WithSecretWriteRate enforces r on every secret: an AddSecretVersion or
// UpdateSecret that would exceed r.PerSecond requests in the last second
// or r.PerMinute in the last minute (sliding windows on the emulator's
// clock, see [WithClock]) is answered RESOURCE_EXHAUSTED without being
// applied. Every request that is not rejected counts, failed ones
// included. Use [DocumentedSecretWriteRate] for the documented limit.
func WithSecretWriteRate(r SecretRate) Option {
	return func(c *config) error {
		if r.PerSecond < 0 || r.PerMinute < 0 || r == (SecretRate{}) {
			return fmt.Errorf("%w: secret write rate %+v: need positive limits", ErrInvalidConfig, r)
		}
		c.secretRate = &r
		return nil
	}
}

// WithProjectQuotas enforces per-project request quotas: a request that
// would exceed its kind's quota in the last minute (a sliding window on
// the emulator's clock) is answered RESOURCE_EXHAUSTED without being
// applied. Every request that is not rejected counts, failed ones
// included. Use [DocumentedProjectQuotas] for the documented defaults.
func WithProjectQuotas(q ProjectQuotas) Option {
	return func(c *config) error {
		if q.AccessPerMinute < 0 || q.ReadPerMinute < 0 || q.WritePerMinute < 0 || q == (ProjectQuotas{}) {
			return fmt.Errorf("%w: project quotas %+v: need positive limits", ErrInvalidConfig, q)
		}
		c.projectQuotas = &q
		return nil
	}
}

type requestKind int

const (
	kindAccess requestKind = iota
	kindRead
	kindWrite
)

var kindNames = [...]string{kindAccess: "Access requests", kindRead: "Read requests", kindWrite: "Write requests"}

// methodKinds classifies the RPCs as the quotas page does.
var methodKinds = map[string]requestKind{
	"AccessSecretVersion":  kindAccess,
	"GetSecret":            kindRead,
	"ListSecrets":          kindRead,
	"GetSecretVersion":     kindRead,
	"ListSecretVersions":   kindRead,
	"GetIamPolicy":         kindRead,
	"TestIamPermissions":   kindRead,
	"CreateSecret":         kindWrite,
	"UpdateSecret":         kindWrite,
	"DeleteSecret":         kindWrite,
	"AddSecretVersion":     kindWrite,
	"EnableSecretVersion":  kindWrite,
	"DisableSecretVersion": kindWrite,
	"DestroySecretVersion": kindWrite,
	"SetIamPolicy":         kindWrite,
}

// quotas enforces WithSecretWriteRate and WithProjectQuotas in a unary
// server interceptor, before the request reaches the service.
type quotas struct {
	svc        *service
	now        func() time.Time
	secretRate *SecretRate
	project    *ProjectQuotas

	mu        sync.Mutex
	perSecret map[string]*slidingLog // canonical secret name
	perKind   map[string]*slidingLog // kind + " " + canonical project
	throttled int
}

// slidingLog holds the times of the accepted requests of the last
// minute, oldest first.
type slidingLog struct{ times []time.Time }

func (l *slidingLog) trim(now time.Time) {
	i := sort.Search(len(l.times), func(i int) bool { return l.times[i].After(now.Add(-time.Minute)) })
	l.times = l.times[i:]
}

// since counts the requests after t.
func (l *slidingLog) since(t time.Time) int {
	return len(l.times) - sort.Search(len(l.times), func(i int) bool { return l.times[i].After(t) })
}

func (q *quotas) enabled() bool { return q.secretRate != nil || q.project != nil }

func (q *quotas) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if !q.enabled() {
		return h(ctx, req)
	}
	if err := q.admit(path.Base(info.FullMethod), req); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

// admit counts the request against its quotas, or rejects it when one is
// used up. Requests whose resource name does not parse are left to the
// service, which rejects them.
func (q *quotas) admit(method string, req any) error {
	kind, ok := methodKinds[method]
	if !ok {
		return nil
	}
	resource := requestResource(req)
	project, ok := q.svc.projectOfResource(resource)
	if !ok {
		return nil
	}
	var secret string
	if q.secretRate != nil && (method == "AddSecretVersion" || method == "UpdateSecret") {
		secret, _ = q.svc.parseSecretName(resource, "name")
	}
	now := q.now()
	q.mu.Lock()
	defer q.mu.Unlock()
	var kindLog, secretLog *slidingLog
	if q.project != nil {
		limit := [...]int{kindAccess: q.project.AccessPerMinute, kindRead: q.project.ReadPerMinute, kindWrite: q.project.WritePerMinute}[kind]
		if limit > 0 {
			kindLog = q.log(&q.perKind, kindNames[kind]+" "+project, now)
			if kindLog.since(now.Add(-time.Minute)) >= limit {
				q.throttled++
				return status.Errorf(codes.ResourceExhausted,
					"Quota exceeded for quota metric '%s' and limit '%s per minute' of service 'secretmanager.googleapis.com' for consumer 'project:%s' (gcpsmtest: %d per minute)",
					kindNames[kind], kindNames[kind], project, limit)
			}
		}
	}
	if secret != "" {
		secretLog = q.log(&q.perSecret, secret, now)
		r := q.secretRate
		if r.PerSecond > 0 && secretLog.since(now.Add(-time.Second)) >= r.PerSecond ||
			r.PerMinute > 0 && secretLog.since(now.Add(-time.Minute)) >= r.PerMinute {
			q.throttled++
			return status.Errorf(codes.ResourceExhausted,
				"Rate limit exceeded for AddSecretVersion and UpdateSecret on Secret [%s] (gcpsmtest: %d per second, %d per minute per secret)",
				secret, r.PerSecond, r.PerMinute)
		}
	}
	if kindLog != nil {
		kindLog.times = append(kindLog.times, now)
	}
	if secretLog != nil {
		secretLog.times = append(secretLog.times, now)
	}
	return nil
}

// log returns the trimmed log of key in *m. Must be called with mu held.
func (q *quotas) log(m *map[string]*slidingLog, key string, now time.Time) *slidingLog {
	if *m == nil {
		*m = map[string]*slidingLog{}
	}
	l := (*m)[key]
	if l == nil {
		l = &slidingLog{}
		(*m)[key] = l
	}
	l.trim(now)
	return l
}

// throttledCount returns how many requests the quotas rejected.
func (q *quotas) throttledCount() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.throttled
}

// requestResource returns the resource name a request addresses.
func requestResource(req any) string {
	switch r := req.(type) {
	case *secretmanagerpb.UpdateSecretRequest:
		return r.GetSecret().GetName()
	case interface{ GetParent() string }:
		return r.GetParent()
	case interface{ GetName() string }:
		return r.GetName()
	case interface{ GetResource() string }: // IAM requests
		return r.GetResource()
	}
	return ""
}

// projectOfResource returns the canonical project of a resource name
// "projects/{project}[/...]".
func (s *service) projectOfResource(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, "projects/")
	if !ok {
		return "", false
	}
	p, _, _ := strings.Cut(rest, "/")
	if p == "" {
		return "", false
	}
	return s.canonicalProject(p), true
}
