package backend

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/testcontainers/testcontainers-go/modules/localstack"
)

var localStack struct {
	once     sync.Once
	endpoint string
	err      error
}

// AWSEndpoint returns the URL of an AWS Secrets Manager compatible server:
// $CLOUDTOKENS_AWS_ENDPOINT, else a LocalStack container (when Docker
// answers), else it skips the test (fails it when CI=true).
func AWSEndpoint(t testing.TB) string {
	t.Helper()
	if ep := os.Getenv(EnvAWSEndpoint); ep != "" {
		return ep
	}
	if err := dockerAvailable(); err != nil {
		unavailable(t, "AWS Secrets Manager", EnvAWSEndpoint+" is unset and "+err.Error())
	}
	localStack.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		c, err := localstack.Run(ctx, envOr(EnvLocalStackImage, DefaultLocalStackImage))
		if c != nil {
			keep(c)
		}
		if err != nil {
			localStack.err = err
			return
		}
		localStack.endpoint, localStack.err = c.PortEndpoint(ctx, "4566/tcp", "http")
		if localStack.err == nil {
			// Child processes (stress tests) reuse this container.
			os.Setenv(EnvAWSEndpoint, localStack.endpoint)
		}
	})
	if localStack.err != nil {
		// Docker answered, so a failure to start the container is a real error.
		t.Fatalf("backend AWS Secrets Manager: start LocalStack: %v", localStack.err)
	}
	return localStack.endpoint
}

// AWSConfig returns an AWS SDK configuration aimed at the test endpoint
// (see AWSEndpoint). It is built with config.LoadDefaultConfig, so the
// standard AWS_* settings apply; the region defaults to us-east-1 and the
// credentials to the static pair test/test unless AWS_ACCESS_KEY_ID is set.
func AWSConfig(t testing.TB) aws.Config {
	t.Helper()
	endpoint := AWSEndpoint(t)
	opts := []func(*config.LoadOptions) error{}
	if os.Getenv("AWS_REGION") == "" && os.Getenv("AWS_DEFAULT_REGION") == "" {
		opts = append(opts, config.WithRegion("us-east-1"))
	}
	if os.Getenv("AWS_ACCESS_KEY_ID") == "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider("test", "test", "")))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		t.Fatalf("backend AWS: load config: %v", err)
	}
	cfg.BaseEndpoint = aws.String(endpoint)
	return cfg
}

// SecretsManager returns a Secrets Manager client for the test endpoint.
func SecretsManager(t testing.TB, optFns ...func(*secretsmanager.Options)) *secretsmanager.Client {
	t.Helper()
	return secretsmanager.NewFromConfig(AWSConfig(t), optFns...)
}
