// Command hello-lambda is a bare Lambda function that reads one secret
// from Secrets Manager per invocation. tokenbench builds it to compare
// binary sizes with the Lambda example.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

func main() {
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		panic(err)
	}
	client := secretsmanager.NewFromConfig(cfg)
	lambda.Start(func(ctx context.Context) (int, error) {
		out, err := client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(os.Getenv("SECRET_ID"))})
		if err != nil {
			return 0, err
		}
		return len(aws.ToString(out.SecretString)), nil
	})
}
