package main

// The handler against moto_server (or LocalStack) at
// CLOUDTOKENS_AWS_ENDPOINT: skipped without it on a laptop, failed in CI.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go/middleware"

	"github.com/cloudtokens/cloudtokens/awssm"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// counter counts requests per operation.
type counter struct {
	mu  sync.Mutex
	ops map[string]int
}

func (c *counter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.ops
	c.ops = map[string]int{}
	return out
}

func (c *counter) install(s *middleware.Stack) error {
	return s.Finalize.Insert(middleware.FinalizeMiddlewareFunc("test.counter",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			c.mu.Lock()
			if c.ops == nil {
				c.ops = map[string]int{}
			}
			c.ops[awsmiddleware.GetOperationName(ctx)]++
			c.mu.Unlock()
			return next.HandleFinalize(ctx, in)
		}), "Retry", middleware.After)
}

func testClient(t *testing.T, c *counter) *secretsmanager.Client {
	t.Helper()
	ep := os.Getenv("CLOUDTOKENS_AWS_ENDPOINT")
	if ep == "" {
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatal("CI=true: CLOUDTOKENS_AWS_ENDPOINT is not set")
		}
		t.Skip("CLOUDTOKENS_AWS_ENDPOINT is not set (moto_server -H 127.0.0.1 -p PORT)")
	}
	var opts []func(*config.LoadOptions) error
	if os.Getenv("AWS_REGION") == "" {
		opts = append(opts, config.WithRegion("us-east-1"))
	}
	if os.Getenv("AWS_ACCESS_KEY_ID") == "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")))
	}
	cfg, err := config.LoadDefaultConfig(t.Context(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
		o.BaseEndpoint = aws.String(ep)
		if c != nil {
			o.APIOptions = append(o.APIOptions, c.install)
		}
	})
}

func TestHandle(t *testing.T) {
	ctx := t.Context()
	var r [8]byte
	rand.Read(r[:])
	prefix := "cloudtokens-lambda-test/" + hex.EncodeToString(r[:])

	// Seed the store as another process would.
	seed, err := awssm.New(ctx, testClient(t, nil), prefix)
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	alice := &tokenstore.Token{UserName: "alice@example.com", ClientID: "1000.CLIENT", ClientSecret: "cs-SECRET",
		RefreshToken: "rt-SECRET", AccessToken: "at-SECRET", Expiry: exp, APIDomain: "https://www.zohoapis.com"}
	if err := seed.SaveToken(ctx, alice); err != nil {
		t.Fatal(err)
	}

	cnt := &counter{}
	store, err := awssm.New(ctx, testClient(t, cnt), prefix, awssm.WithIndexCache(true))
	if err != nil {
		t.Fatal(err)
	}
	h := &Handler{Store: store, Now: func() time.Time { return exp.Add(-time.Minute) }}

	want := Response{ID: alice.ID, UserName: alice.UserName, ClientID: alice.ClientID, APIDomain: alice.APIDomain,
		Expiry: &exp, HasAccessToken: true, HasRefreshToken: true}
	for i, wantCalls := range []int{2, 1, 1} { // cold: index + token; warm: token only
		cnt.take()
		got, err := h.Handle(ctx, Event{UserName: "alice@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		if got.Expiry == nil || !got.Expiry.Equal(exp) {
			t.Fatalf("expiry %v, want %v", got.Expiry, exp)
		}
		g := *got
		g.Expiry = want.Expiry
		if g != want {
			t.Fatalf("Handle = %+v, want %+v", g, want)
		}
		if calls := cnt.take(); calls["GetSecretValue"] != wantCalls || len(calls) != 1 {
			t.Errorf("invocation %d: calls %v, want %d GetSecretValue", i, calls, wantCalls)
		}
		b, _ := json.Marshal(got)
		if strings.Contains(string(b), "SECRET") {
			t.Fatalf("the response holds a secret value: %s", b)
		}
	}

	h.Now = func() time.Time { return exp }
	if got, err := h.Handle(ctx, Event{UserName: "alice@example.com", ClientID: "1000.CLIENT"}); err != nil || !got.Expired {
		t.Errorf("at expiry: %+v, %v; want expired", got, err)
	}
	if _, err := h.Handle(ctx, Event{UserName: "alice@example.com", ClientID: "1000.OTHER"}); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Errorf("other client: %v, want ErrNotFound", err)
	}
	if _, err := h.Handle(ctx, Event{UserName: "nobody"}); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Errorf("unknown user: %v, want ErrNotFound", err)
	}
	if _, err := h.Handle(ctx, Event{}); !errors.Is(err, ErrBadEvent) {
		t.Errorf("empty event: %v, want ErrBadEvent", err)
	}
	// A token saved later, by another process, is found.
	bob := &tokenstore.Token{UserName: "bob", AccessToken: "at-SECRET"}
	if err := seed.SaveToken(ctx, bob); err != nil {
		t.Fatal(err)
	}
	if got, err := h.Handle(ctx, Event{UserName: "bob"}); err != nil || got.ID != bob.ID || got.HasRefreshToken || got.Expiry != nil {
		t.Errorf("bob: %+v, %v", got, err)
	}
}
