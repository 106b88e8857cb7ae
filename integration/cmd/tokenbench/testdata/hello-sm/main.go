// Command hello-sm is the smallest useful Secrets Manager program: it
// loads the default AWS configuration and reads one secret. tokenbench
// builds it to compare binary sizes with the Lambda example.
package main

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

func main() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	client := secretsmanager.NewFromConfig(cfg)
	out, err := client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(os.Getenv("SECRET_ID"))})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(aws.ToString(out.SecretString)))
}
