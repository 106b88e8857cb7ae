// Command lambda is an AWS Lambda function that loads an OAuth token from
// AWS Secrets Manager through the awssm store and returns its metadata,
// never its secret values.
//
// Environment: CLOUDTOKENS_PREFIX, the store's secret name prefix
// (required), plus the standard AWS_* settings of the Lambda runtime.
// The execution role needs the policy of awssm/README.md (for this
// read-only handler, secretsmanager:GetSecretValue alone suffices).
//
// Event: {"user_name": "alice@example.com", "client_id": "optional"}.
package main

import (
	"context"
	"log"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/cloudtokens/cloudtokens/awssm"
)

func main() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatalf("loading the AWS configuration: %v", err)
	}
	// Built once per execution environment: warm invocations reuse the
	// client's connections and the store's index cache.
	store, err := awssm.New(ctx, secretsmanager.NewFromConfig(cfg), os.Getenv("CLOUDTOKENS_PREFIX"), awssm.WithIndexCache(true))
	if err != nil {
		log.Fatalf("CLOUDTOKENS_PREFIX: %v", err)
	}
	h := &Handler{Store: store}
	lambda.Start(h.Handle)
}
