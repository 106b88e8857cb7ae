// Package aws holds the real-server tests of the awssm adapter: moto_server
// (or LocalStack) found through package backend, CLOUDTOKENS_AWS_ENDPOINT.
package aws

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go/middleware"

	"github.com/cloudtokens/cloudtokens/awssm"
	"github.com/cloudtokens/cloudtokens/integration/backend"
)

func TestMain(m *testing.M) { os.Exit(backend.Main(m)) }

// call is one HTTP request to Secrets Manager: the operation and the
// secrets it names. Retry marks an attempt the SDK retryer made after a
// failed one (moto_server drops keep-alive connections now and then):
// the library asked for one request, the SDK sent it twice. It also marks
// the one GetSecretValue by VersionId with which awssm checks whether a
// retried UpdateSecretVersionStage had applied (awssm only reads by
// VersionId then).
type call struct {
	Op      string
	Secrets []string
	Retry   bool
}

func (c call) String() string { return c.Op + "(" + strings.Join(c.Secrets, ",") + ")" }

// recorder counts the requests a client sends, at the transport: its
// middleware sits after the SDK retryer, so every attempt counts.
type recorder struct {
	mu    sync.Mutex
	calls []call
}

type secretsKey struct{}

type attemptsKey struct{}

// apply installs the recorder on a client (a secretsmanager.Options
// function).
func (r *recorder) apply(o *secretsmanager.Options) {
	o.APIOptions = append(o.APIOptions, r.install)
}

func (r *recorder) install(s *middleware.Stack) error {
	err := s.Initialize.Add(middleware.InitializeMiddlewareFunc("test.recorder.params",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			attempts := new(int)
			if in, ok := in.Parameters.(*secretsmanager.GetSecretValueInput); ok && in.VersionId != nil {
				*attempts = 1 // a check after a retry: count it as one
			}
			ctx = context.WithValue(ctx, attemptsKey{}, attempts)
			return next.HandleInitialize(context.WithValue(ctx, secretsKey{}, secretIDs(in.Parameters)), in)
		}), middleware.Before)
	if err != nil {
		return err
	}
	return s.Finalize.Insert(middleware.FinalizeMiddlewareFunc("test.recorder.count",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			ids, _ := ctx.Value(secretsKey{}).([]string)
			retry := false
			if n, ok := ctx.Value(attemptsKey{}).(*int); ok { // attempts of one call run one after another
				*n++
				retry = *n > 1
			}
			r.mu.Lock()
			r.calls = append(r.calls, call{Op: awsmiddleware.GetOperationName(ctx), Secrets: ids, Retry: retry})
			r.mu.Unlock()
			return next.HandleFinalize(ctx, in)
		}), "Retry", middleware.After)
}

func secretIDs(params any) []string {
	switch in := params.(type) {
	case *secretsmanager.GetSecretValueInput:
		return []string{*in.SecretId}
	case *secretsmanager.BatchGetSecretValueInput:
		return slices.Clone(in.SecretIdList)
	case *secretsmanager.CreateSecretInput:
		return []string{*in.Name}
	case *secretsmanager.PutSecretValueInput:
		return []string{*in.SecretId}
	case *secretsmanager.UpdateSecretVersionStageInput:
		return []string{*in.SecretId}
	case *secretsmanager.DeleteSecretInput:
		return []string{*in.SecretId}
	case *secretsmanager.DescribeSecretInput:
		return []string{*in.SecretId}
	}
	return nil
}

func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = nil
}

func (r *recorder) all() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// byOp counts the calls per operation that the library made, not
// counting SDK retries (see retries).
func (r *recorder) byOp() map[string]int {
	out := map[string]int{}
	for _, c := range r.all() {
		if !c.Retry {
			out[c.Op]++
		}
	}
	return out
}

// sent counts every request per operation, retries included.
func (r *recorder) sent() map[string]int {
	out := map[string]int{}
	for _, c := range r.all() {
		out[c.Op]++
	}
	return out
}

// retries counts the SDK's retried attempts.
func (r *recorder) retries() int {
	n := 0
	for _, c := range r.all() {
		if c.Retry {
			n++
		}
	}
	return n
}

// summary is a stable one-line form of byOp: "2 GetSecretValue + 1 PutSecretValue".
func summary(ops map[string]int) string {
	if len(ops) == 0 {
		return "0 calls"
	}
	keys := make([]string, 0, len(ops))
	for k := range ops {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", ops[k], k)
	}
	return strings.Join(parts, " + ")
}

// touching returns the calls that name a secret for which match is true.
func (r *recorder) touching(match func(secret string) bool) []call {
	var out []call
	for _, c := range r.all() {
		if slices.ContainsFunc(c.Secrets, match) {
			out = append(out, c)
		}
	}
	return out
}

// uniquePrefix returns a prefix no other test uses.
func uniquePrefix(t testing.TB) string {
	t.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "cloudtokens-it/" + hex.EncodeToString(b[:])
}

// client returns a Secrets Manager client for the test server with r (if
// not nil) recording its calls.
func client(t testing.TB, r *recorder, optFns ...func(*secretsmanager.Options)) *secretsmanager.Client {
	t.Helper()
	if r != nil {
		optFns = append(optFns, r.apply)
	}
	return backend.SecretsManager(t, optFns...)
}

// newStore returns an empty store under a fresh prefix whose calls r
// records (r may be nil).
func newStore(t testing.TB, r *recorder, opts ...awssm.Option) *awssm.Store {
	t.Helper()
	return newStoreAt(t, client(t, r), uniquePrefix(t), opts...)
}

func newStoreAt(t testing.TB, c *secretsmanager.Client, prefix string, opts ...awssm.Option) *awssm.Store {
	t.Helper()
	s, err := awssm.New(t.Context(), c, prefix, opts...)
	if err != nil {
		t.Fatalf("awssm.New: %v", err)
	}
	return s
}
