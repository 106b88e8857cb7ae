package awssm_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/cloudtokens/cloudtokens/awssm"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

func ExampleNew() {
	ctx := context.Background()
	// The standard AWS configuration: credentials, region and endpoint
	// from the environment, shared files or the execution role.
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	store, err := awssm.New(ctx, secretsmanager.NewFromConfig(cfg), "myapp/tokens",
		awssm.WithIndexCache(true),
		awssm.WithRecoveryWindow(7),
	)
	if err != nil {
		log.Fatal(err)
	}

	tok := &tokenstore.Token{
		UserName: "alice@example.com", ClientID: "1000.CLIENT", ClientSecret: "…",
		RefreshToken: "…", AccessToken: "…", Expiry: time.Now().Add(time.Hour),
	}
	if err := store.SaveToken(ctx, tok); err != nil {
		log.Fatal(err)
	}
	got, err := store.FindToken(ctx, &tokenstore.Token{UserName: "alice@example.com"})
	switch {
	case errors.Is(err, tokenstore.ErrNotFound):
		fmt.Println("no token yet")
	case err != nil:
		log.Fatal(err) // AccessDeniedException and the like: never ErrNotFound
	default:
		fmt.Println("found", got.ID)
	}
}

// Throttling is retried by the SDK; tune its retryer on the client.
func ExampleNew_retryer() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRetryer(func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 8
			o.MaxBackoff = 5 * time.Second
		})
	}))
	if err != nil {
		log.Fatal(err)
	}
	store, err := awssm.New(ctx, secretsmanager.NewFromConfig(cfg), "myapp/tokens")
	if err != nil {
		log.Fatal(err)
	}
	_ = store
}

// Invalid prefixes are refused before any call.
func ExampleNew_invalidPrefix() {
	client := secretsmanager.New(secretsmanager.Options{Region: "us-east-1"})
	_, err := awssm.New(context.Background(), client, "my app/tokens")
	fmt.Println(errors.Is(err, awssm.ErrInvalidPrefix))
	// Output: true
}

// Check compares the index with the secrets under the prefix, for
// example after a crash; it needs secretsmanager:ListSecrets.
func ExampleStore_Check() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	store, err := awssm.New(ctx, secretsmanager.NewFromConfig(cfg), "myapp/tokens")
	if err != nil {
		log.Fatal(err)
	}
	report, err := store.Check(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if !report.OK() {
		fmt.Println(report) // IDs only, never token values
	}
}

func ExampleStore_SecretName() {
	client := secretsmanager.New(secretsmanager.Options{Region: "us-east-1"})
	store, err := awssm.New(context.Background(), client, "myapp/tokens")
	if err != nil {
		log.Fatal(err)
	}
	name, err := store.SecretName("k4s7h2d3mfq5rj6tvn4w3ycxza")
	fmt.Println(name, err)
	_, err = store.SecretName("abcdef") // would end in "-" and six characters
	fmt.Println(errors.Is(err, tokenstore.ErrInvalidID))
	// Output:
	// myapp/tokens/token-k4s7h2d3mfq5rj6tvn4w3ycxza <nil>
	// true
}
