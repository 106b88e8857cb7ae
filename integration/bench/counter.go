package bench

import (
	"context"
	"maps"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go/middleware"
	"google.golang.org/grpc"
)

// Counter counts the requests a client sends, by operation, at the
// transport: every attempt of the SDK retryer counts. A request made with
// a context from [Track] also counts in that context's [Tally]. It is safe
// for concurrent use.
type Counter struct {
	mu sync.Mutex
	m  map[string]int
	w  map[string]int // writes by resource name
	r  int            // attempts after the first (AWS only)
}

// NewCounter returns an empty Counter.
func NewCounter() *Counter { return &Counter{m: map[string]int{}, w: map[string]int{}} }

// Retries returns how many of the counted requests were retries by the
// SDK (attempts after the first of one call). Only the AWS middleware can
// tell; elsewhere it stays 0.
func (c *Counter) Retries() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.r
}

// AddWrite records one write (create, update, delete) of the resource
// name: a secret name, a gRPC resource name or a Vault API path, which
// ends in or contains the engine's document name ("token-<id>",
// "index-<n>").
func (c *Counter) AddWrite(name string) {
	c.mu.Lock()
	c.w[name]++
	c.mu.Unlock()
}

// Writes returns the writes so far by resource name.
func (c *Counter) Writes() Calls {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.w)
}

// Add counts one request of operation op, made with ctx.
func (c *Counter) Add(ctx context.Context, op string) {
	c.count(op)
	if t := tallyOf(ctx); t != nil {
		t.request(op)
	}
}

// count counts op without a context (no Tally).
func (c *Counter) count(op string) {
	c.mu.Lock()
	c.m[op]++
	c.mu.Unlock()
}

// Snapshot returns the counts so far.
func (c *Counter) Snapshot() Calls {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.m)
}

// Calls is a number of requests per operation name.
type Calls map[string]int

// Total is the number of requests of every operation.
func (c Calls) Total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// Sub returns c - before, leaving out operations that did not change.
func (c Calls) Sub(before Calls) Calls {
	out := Calls{}
	for k, v := range c {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// String lists the operations, "GetSecretValue×1 PutSecretValue×2", in
// name order.
func (c Calls) String() string {
	if len(c) == 0 {
		return "-"
	}
	var b strings.Builder
	for i, k := range slices.Sorted(maps.Keys(c)) {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k)
		b.WriteString("×")
		b.WriteString(strconv.Itoa(c[k]))
	}
	return b.String()
}

// AWSOption installs c on a Secrets Manager client as a middleware in the
// Finalize step after the retryer, so that each HTTP attempt counts once,
// under its operation name (GetSecretValue, PutSecretValue, ...), and
// one in the Initialize step that records the secret each write names.
func (c *Counter) AWSOption() func(*secretsmanager.Options) {
	return func(o *secretsmanager.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
			err := s.Initialize.Add(middleware.InitializeMiddlewareFunc("tokenbench.writes",
				func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
					if name := awsWritten(in.Parameters); name != "" {
						c.AddWrite(name)
					}
					return next.HandleInitialize(context.WithValue(ctx, attemptsKey{}, new(int)), in)
				}), middleware.Before)
			if err != nil {
				return err
			}
			return s.Finalize.Insert(middleware.FinalizeMiddlewareFunc("tokenbench.count",
				func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
					c.Add(ctx, awsmiddleware.GetOperationName(ctx))
					if n, ok := ctx.Value(attemptsKey{}).(*int); ok {
						if *n++; *n > 1 {
							c.mu.Lock()
							c.r++
							c.mu.Unlock()
							if t := tallyOf(ctx); t != nil {
								t.sdkRetry()
							}
						}
					}
					return next.HandleFinalize(ctx, in)
				}), "Retry", middleware.After)
		})
	}
}

// attemptsKey keys the attempt count of one SDK call in its context.
type attemptsKey struct{}

func awsWritten(params any) string {
	switch in := params.(type) {
	case *secretsmanager.CreateSecretInput:
		return aws.ToString(in.Name)
	case *secretsmanager.PutSecretValueInput:
		return aws.ToString(in.SecretId)
	case *secretsmanager.UpdateSecretVersionStageInput:
		return aws.ToString(in.SecretId)
	case *secretsmanager.DeleteSecretInput:
		return aws.ToString(in.SecretId)
	}
	return ""
}

func grpcWritten(req any) string {
	switch r := req.(type) {
	case *secretmanagerpb.CreateSecretRequest:
		return r.GetParent() + "/secrets/" + r.GetSecretId()
	case *secretmanagerpb.AddSecretVersionRequest:
		return r.GetParent()
	case *secretmanagerpb.UpdateSecretRequest:
		return r.GetSecret().GetName()
	case *secretmanagerpb.DestroySecretVersionRequest:
		return r.GetName()
	case *secretmanagerpb.DeleteSecretRequest:
		return r.GetName()
	}
	return ""
}

// GRPCInterceptor counts every unary call (each attempt: gax retries call
// the interceptor again) under its short method name
// (AccessSecretVersion, AddSecretVersion, ...).
func (c *Counter) GRPCInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		c.Add(ctx, path.Base(method))
		if name := grpcWritten(req); name != "" {
			c.AddWrite(name)
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// RoundTripper wraps next (http.DefaultTransport when nil) and counts each
// request as "<METHOD> <kind>", where kind is the second segment of a
// Vault API path below the mount ("data", "metadata") or "sys", and LIST
// requests (GET ?list=true) count as LIST.
func (c *Counter) RoundTripper(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		c.Add(r.Context(), vaultOp(r))
		switch r.Method {
		case http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodPatch:
			c.AddWrite(r.URL.Path)
		}
		return next.RoundTrip(r)
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func vaultOp(r *http.Request) string {
	method := r.Method
	if method == http.MethodGet && r.URL.Query().Get("list") == "true" {
		method = "LIST"
	}
	p := strings.TrimPrefix(r.URL.Path, "/v1/")
	segs := strings.SplitN(p, "/", 3)
	kind := "other"
	switch {
	case len(segs) > 0 && segs[0] == "sys":
		kind = "sys"
	case len(segs) > 1:
		kind = segs[1]
	}
	return method + " " + kind
}
