package awssm

// Lost responses, throttling and cancellation, injected at the HTTP
// transport between the SDK and moto_server: the server really applies
// (or never sees) each request, only the answer is faked or lost.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"

	"github.com/cloudtokens/cloudtokens/faultinject"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// faultyBackend returns a backend whose requests that match pass through
// a fault injector (scripted faults only), and the injector.
func faultyBackend(t *testing.T, match func(*http.Request) bool, optFns ...func(*secretsmanager.Options)) (*backend, *opCounter, *faultinject.Injector) {
	t.Helper()
	// No random faults; a scripted Delay holds a request for up to a
	// minute (or until its context ends).
	inj := faultinject.New(faultinject.Config{MaxDelay: time.Minute})
	tr := &faultinject.Transport{Base: http.DefaultTransport, Injector: inj, Protocol: faultinject.AWSJSON, Match: match}
	b, cnt := testBackend(t, append([]func(*secretsmanager.Options){func(o *secretsmanager.Options) {
		o.HTTPClient = &http.Client{Transport: tr}
	}}, optFns...)...)
	return b, cnt, inj
}

// versions returns the number of versions secret name has.
func versions(t *testing.T, b *backend, name string) int {
	t.Helper()
	d, err := b.c.DescribeSecret(t.Context(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(b.prefix + name)})
	if err != nil {
		t.Fatal(err)
	}
	return len(d.VersionIdsToStages)
}

// Each write whose first attempt applied but whose answer was lost is
// retried by the SDK and reported as a success, with the version that
// holds the value, and leaves no extra version behind.
func TestLostResponses(t *testing.T) {
	ctx := t.Context()

	t.Run("CreateSecret", func(t *testing.T) {
		b, cnt, inj := faultyBackend(t, faultinject.AWSOperation("CreateSecret"))
		inj.Script(faultinject.LoseResponse)
		v, err := b.Create(ctx, "token-c", []byte("created"))
		if err != nil {
			t.Fatalf("Create with a lost response: %v", err)
		}
		if inj.Pending() != 0 {
			t.Fatal("the fault was not injected")
		}
		if got := cnt.sent()["CreateSecret"]; got != 2 {
			t.Errorf("CreateSecret sent %d times, want 2 (the lost one and the SDK's retry)", got)
		}
		obj, err := b.Read(ctx, "token-c")
		if err != nil || string(obj.Value) != "created" || obj.Version != v {
			t.Fatalf("Read = %q@%s, %v; want created@%s", obj.Value, obj.Version, err, v)
		}
		if n := versions(t, b, "token-c"); n != 1 {
			t.Errorf("%d versions, want 1", n)
		}
		// A genuine second create still finds the secret there.
		if _, err := b.Create(ctx, "token-c", []byte("created")); !errors.Is(err, casstore.ErrExists) {
			t.Errorf("second Create: %v, want ErrExists", err)
		}
	})

	t.Run("PutSecretValue", func(t *testing.T) {
		b, cnt, inj := faultyBackend(t, faultinject.AWSOperation("PutSecretValue"))
		v1, err := b.Create(ctx, "token-p", []byte("one"))
		if err != nil {
			t.Fatal(err)
		}
		inj.Script(faultinject.LoseResponse)
		v2, err := b.Update(ctx, "token-p", []byte("two"), v1)
		if err != nil {
			t.Fatalf("Update with a lost put response: %v", err)
		}
		if got := cnt.sent()["PutSecretValue"]; got != 2 {
			t.Errorf("PutSecretValue sent %d times, want 2", got)
		}
		obj, err := b.Read(ctx, "token-p")
		if err != nil || string(obj.Value) != "two" || obj.Version != v2 {
			t.Fatalf("Read = %q@%s, %v; want two@%s", obj.Value, obj.Version, err, v2)
		}
		if n := versions(t, b, "token-p"); n != 2 {
			t.Errorf("%d versions, want 2: the retried put created a version of its own", n)
		}
	})

	t.Run("UpdateSecretVersionStage", func(t *testing.T) {
		b, cnt, inj := faultyBackend(t, faultinject.AWSOperation("UpdateSecretVersionStage"))
		v1, err := b.Create(ctx, "token-s", []byte("one"))
		if err != nil {
			t.Fatal(err)
		}
		inj.Script(faultinject.LoseResponse)
		v2, err := b.Update(ctx, "token-s", []byte("two"), v1)
		if err != nil {
			t.Fatalf("Update with a lost stage-move response: %v", err)
		}
		calls := cnt.sent()
		if calls["UpdateSecretVersionStage"] != 2 || calls["GetSecretValue"] != 1 {
			t.Errorf("calls %v, want 2 UpdateSecretVersionStage and 1 GetSecretValue (the check)", calls)
		}
		if obj, err := b.Read(ctx, "token-s"); err != nil || string(obj.Value) != "two" || obj.Version != v2 {
			t.Fatalf("Read = %q@%s, %v; want two@%s", obj.Value, obj.Version, err, v2)
		}
		// A stale update is still refused, retried or not.
		inj.Script(faultinject.LoseResponse)
		if _, err := b.Update(ctx, "token-s", []byte("three"), v1); !errors.Is(err, casstore.ErrVersionMismatch) {
			t.Errorf("stale update: %v, want ErrVersionMismatch", err)
		}
	})

	for _, force := range []bool{false, true} {
		t.Run(fmt.Sprintf("DeleteSecret/force=%v", force), func(t *testing.T) {
			b, cnt, inj := faultyBackend(t, faultinject.AWSOperation("DeleteSecret"))
			b.forceDelete = force
			if _, err := b.Create(ctx, "token-d", []byte("x")); err != nil {
				t.Fatal(err)
			}
			inj.Script(faultinject.LoseResponse)
			if err := b.Delete(ctx, "token-d"); err != nil {
				t.Fatalf("Delete with a lost response: %v, want success", err)
			}
			want := 2
			if force {
				want = 3
			}
			if got := cnt.sent()["DeleteSecret"]; got != want {
				t.Errorf("DeleteSecret sent %d times, want %d", got, want)
			}
			if _, err := b.Read(ctx, "token-d"); !errors.Is(err, tokenstore.ErrNotFound) {
				t.Errorf("Read after delete: %v", err)
			}
			// A delete that finds the secret deleted, without a retry of
			// its own, is still ErrNotFound.
			if err := b.Delete(ctx, "token-d"); !errors.Is(err, tokenstore.ErrNotFound) {
				t.Errorf("second Delete: %v, want ErrNotFound", err)
			}
		})
	}
}

// refuseRepeat emulates a server that refuses a repeated CreateSecret
// with the same ClientRequestToken (moto before 5.1.11; AWS, per its
// API reference, ignores the repeat): the repeat reaches moto, which
// ignores it, and its answer is replaced by a ResourceExistsException.
type refuseRepeat struct {
	seen atomic.Int32
}

func (r *refuseRepeat) RoundTrip(req *http.Request) (*http.Response, error) {
	if !faultinject.AWSOperation("CreateSecret")(req) {
		return http.DefaultTransport.RoundTrip(req)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || r.seen.Add(1) == 1 {
		return resp, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	body := `{"__type":"ResourceExistsException","message":"The operation failed because the secret already exists."}`
	return &http.Response{StatusCode: 400, Status: "400 Bad Request", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/x-amz-json-1.1"}, "X-Amzn-Errortype": {"ResourceExistsException"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)), Request: req}, nil
}

// A server that refuses the repeat of a create whose answer was lost:
// one GetSecretValue of our version shows that the secret is ours.
func TestCreateRetryRefused(t *testing.T) {
	ctx := t.Context()
	inj := faultinject.New(faultinject.Config{})
	inj.Script(faultinject.LoseResponse)
	tr := &faultinject.Transport{Base: &refuseRepeat{}, Injector: inj, Protocol: faultinject.AWSJSON, Match: faultinject.AWSOperation("CreateSecret")}
	b, cnt := testBackend(t, func(o *secretsmanager.Options) { o.HTTPClient = &http.Client{Transport: tr} })
	v, err := b.Create(ctx, "token-r", []byte("mine"))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if calls := cnt.sent(); calls["CreateSecret"] != 2 || calls["GetSecretValue"] != 1 {
		t.Errorf("calls %v, want 2 CreateSecret + 1 GetSecretValue", calls)
	}
	if obj, err := b.Read(ctx, "token-r"); err != nil || obj.Version != v || string(obj.Value) != "mine" {
		t.Fatalf("Read = %q@%s, %v; want mine@%s", obj.Value, obj.Version, err, v)
	}
	// Someone else's secret under the name is not ours: ErrExists.
	if _, err := b.Create(ctx, "token-r", []byte("mine")); !errors.Is(err, casstore.ErrExists) {
		t.Errorf("Create of an existing secret: %v, want ErrExists", err)
	}
}

// ThrottlingException is retried by the client's own retryer, even one
// configured not to retry it, and within that retryer's attempts.
func TestThrottlingRetried(t *testing.T) {
	ctx := t.Context()
	noThrottleRetries := func(o *secretsmanager.Options) {
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = 3
			so.MaxBackoff = 10 * time.Millisecond
			so.Retryables = []retry.IsErrorRetryable{retry.RetryableConnectionError{}} // no error codes
		})
	}
	b, cnt, inj := faultyBackend(t, faultinject.AWSOperation("GetSecretValue"), noThrottleRetries)
	if _, err := b.Create(ctx, "token-t", []byte("x")); err != nil {
		t.Fatal(err)
	}
	inj.Script(faultinject.Throttle, faultinject.Throttle)
	if obj, err := b.Read(ctx, "token-t"); err != nil || string(obj.Value) != "x" {
		t.Fatalf("Read after two throttles: %q, %v", obj.Value, err)
	}
	if got := cnt.sent()["GetSecretValue"]; got != 3 {
		t.Errorf("GetSecretValue sent %d times, want 3", got)
	}
	// The client's limit of 3 attempts stays.
	inj.Script(faultinject.Throttle, faultinject.Throttle, faultinject.Throttle)
	_, err := b.Read(ctx, "token-t")
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "ThrottlingException" {
		t.Fatalf("Read after three throttles: %v, want ThrottlingException", err)
	}
	// LimitExceededException is added the same way.
	o := secretsmanager.Options{}
	noThrottleRetries(&o)
	retryThrottling(&o)
	for _, code := range []string{"ThrottlingException", "LimitExceededException"} {
		if !o.Retryer.IsErrorRetryable(&smithy.GenericAPIError{Code: code}) {
			t.Errorf("%s is not retryable", code)
		}
	}
	if o.Retryer.MaxAttempts() != 3 {
		t.Errorf("MaxAttempts = %d, want the client's 3", o.Retryer.MaxAttempts())
	}
}

// Every operation cut short by the caller's context (canceled before the
// call, or past its deadline during it) returns an error that wraps the
// context's error.
func TestContextErrors(t *testing.T) {
	b, _, inj := faultyBackend(t, nil)
	setup := t.Context()
	v, err := b.Create(setup, "token-x", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]func(ctx context.Context) error{
		"Read":   func(ctx context.Context) error { _, err := b.Read(ctx, "token-x"); return err },
		"Create": func(ctx context.Context) error { _, err := b.Create(ctx, "token-y", []byte("y")); return err },
		"Update": func(ctx context.Context) error { _, err := b.Update(ctx, "token-x", []byte("z"), v); return err },
		"Delete": func(ctx context.Context) error { return b.Delete(ctx, "token-x") },
		"ReadMany": func(ctx context.Context) error {
			_, err := b.ReadMany(ctx, []string{"token-x", "token-y"})
			return err
		},
		"List": func(ctx context.Context) error { _, err := b.List(ctx); return err },
	}
	for name, op := range ops {
		ctx, cancel := context.WithCancel(setup)
		cancel()
		if err := op(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context: %v, want context.Canceled", name, err)
		}
		// Held by a slow network past the deadline.
		inj.Script(faultinject.Delay)
		ctx, cancel = context.WithTimeout(setup, 30*time.Millisecond)
		err := op(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s past its deadline: %v, want context.DeadlineExceeded", name, err)
		}
		for inj.Pending() > 0 {
			inj.Decide() // an op refused before any request leaves its fault unused
		}
	}
}
