// Command lambda is an AWS Lambda function that calls an OAuth-protected
// API on behalf of a user: it gets the user's token from AWS Secrets
// Manager through a tokensource.Pool on the awssm store (refreshing and
// saving it when it expires, once across all instances), calls the API
// with it, and returns the API's HTTP status and the token's record ID,
// never a secret.
//
// Environment:
//
//	CLOUDTOKENS_PREFIX   the store's secret name prefix (required)
//	OAUTH_TOKEN_URL      the provider's token endpoint (required)
//	API_URL              the API endpoint to call with GET (required)
//	OAUTH_CLIENT_ID      the OAuth client ID (optional: the stored token's)
//	OAUTH_CLIENT_SECRET  the OAuth client secret (optional: the stored token's)
//	OAUTH_AUTH_STYLE     "params" (Zoho), "header", or empty to detect
//
// plus the standard AWS_* settings of the Lambda runtime. The execution
// role needs the policy in README.md.
//
// Event: {"user_name": "alice@example.com", "client_id": "optional"}.
// Response: {"id": "<record ID>", "status": 200}.
package main

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"golang.org/x/oauth2"

	"github.com/cloudtokens/cloudtokens/awssm"
	"github.com/cloudtokens/cloudtokens/tokensource"
)

func main() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatalf("loading the AWS configuration: %v", err)
	}
	h, err := newHandler(ctx, secretsmanager.NewFromConfig(cfg), os.Getenv)
	if err != nil {
		log.Fatal(err)
	}
	lambda.Start(h.Handle)
}

// newHandler builds the store and the Pool once per execution
// environment: warm invocations reuse the client's connections, the
// store's index cache and the Pool's tokens.
func newHandler(ctx context.Context, client *secretsmanager.Client, getenv func(string) string, opts ...tokensource.Option) (*Handler, error) {
	for _, k := range []string{"CLOUDTOKENS_PREFIX", "OAUTH_TOKEN_URL", "API_URL"} {
		if getenv(k) == "" {
			return nil, fmt.Errorf("%s is not set", k)
		}
	}
	store, err := awssm.New(ctx, client, getenv("CLOUDTOKENS_PREFIX"), awssm.WithIndexCache(true))
	if err != nil {
		return nil, fmt.Errorf("CLOUDTOKENS_PREFIX: %w", err)
	}
	var style oauth2.AuthStyle
	switch s := getenv("OAUTH_AUTH_STYLE"); s {
	case "":
	case "params":
		style = oauth2.AuthStyleInParams
	case "header":
		style = oauth2.AuthStyleInHeader
	default:
		return nil, fmt.Errorf("OAUTH_AUTH_STYLE %q: want params, header or empty", s)
	}
	pool, err := tokensource.NewPool(store, tokensource.Config{
		TokenURL:     getenv("OAUTH_TOKEN_URL"),
		ClientID:     getenv("OAUTH_CLIENT_ID"),
		ClientSecret: getenv("OAUTH_CLIENT_SECRET"),
		AuthStyle:    style,
	}, opts...)
	if err != nil {
		return nil, err
	}
	return &Handler{Pool: pool, APIURL: getenv("API_URL")}, nil
}
