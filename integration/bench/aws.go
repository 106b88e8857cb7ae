package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/cloudtokens/cloudtokens/awssm"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// EnvAWSEndpoint is the Secrets Manager endpoint the tests and the
// benchmarks use (moto_server, LocalStack).
const EnvAWSEndpoint = "CLOUDTOKENS_AWS_ENDPOINT"

// Labels the awssm adapter uses (see awssm's backend): the current
// version, and the label a compare-and-swap puts its new version under.
const (
	awsCurrent = "AWSCURRENT"
	awsPending = "CLOUDTOKENS_PENDING"
)

// AWSConfigFromEnv returns the SDK configuration for $CLOUDTOKENS_AWS_ENDPOINT
// the way the integration tests build it (config.LoadDefaultConfig; region
// us-east-1 and the credentials test/test unless AWS_* say otherwise), or
// ok false when the variable is unset.
func AWSConfigFromEnv(ctx context.Context) (cfg aws.Config, ok bool, err error) {
	endpoint := os.Getenv(EnvAWSEndpoint)
	if endpoint == "" {
		return aws.Config{}, false, nil
	}
	var opts []func(*config.LoadOptions) error
	if os.Getenv("AWS_REGION") == "" && os.Getenv("AWS_DEFAULT_REGION") == "" {
		opts = append(opts, config.WithRegion("us-east-1"))
	}
	if os.Getenv("AWS_ACCESS_KEY_ID") == "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")))
	}
	cfg, err = config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, false, fmt.Errorf("aws: load config: %w", err)
	}
	cfg.BaseEndpoint = aws.String(endpoint)
	return cfg, true, nil
}

// NewAWS returns the AWS target on cfg. Its client keeps up to 64 idle
// connections per host (the SDK default is 10) so that 32 goroutines do
// not reconnect, and makes up to 10 attempts of a request (the SDK
// default is 3): moto_server is not thread-safe and answers some requests
// under concurrent load with HTTP 500 ("dictionary changed size during
// iteration"), as the stress tests note. The store and the raw calls
// share it; retries are counted (Usage.SDKRetries).
func NewAWS(ctx context.Context, cfg aws.Config) (*Target, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cfg.HTTPClient = awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConns = 256
		t.MaxIdleConnsPerHost = 64
	})
	t := newTarget()
	client := secretsmanager.NewFromConfig(cfg, t.Calls.AWSOption(), func(o *secretsmanager.Options) {
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) { so.MaxAttempts = 10 })
	})
	server := "AWS Secrets Manager"
	if cfg.BaseEndpoint != nil {
		server += " at " + *cfg.BaseEndpoint
	}
	t.Name, t.Server = "aws", server
	t.Costs = Costs{Read: 1, Create: 1, Update: 2, Delete: 1, ReadMany: func(n int) int {
		return ceilDiv(n, 20)
	}}
	t.Raw = awsRaw{c: client}
	t.open = func(ctx context.Context, prefix string, o StoreOptions, wrap func(casstore.Backend) casstore.Backend) (Store, error) {
		opts := []awssm.Option{awssm.WithIndexCache(o.IndexCache), awssm.WithLogger(logger()), awssm.WithBackendWrapper(wrap)}
		if o.IndexShards > 0 {
			opts = append(opts, awssm.WithIndexShards(o.IndexShards))
		}
		return awssm.New(ctx, client, prefix, opts...)
	}
	return t, nil
}

// awsRaw makes the requests of the awssm backend: secret "<prefix>/<name>".
type awsRaw struct{ c *secretsmanager.Client }

func (r awsRaw) Read(ctx context.Context, prefix, name string) (Doc, error) {
	out, err := r.c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
		SecretId:     aws.String(prefix + "/" + name),
		VersionStage: aws.String(awsCurrent),
	})
	if err != nil {
		return Doc{}, err
	}
	return Doc{Value: []byte(aws.ToString(out.SecretString)), Version: aws.ToString(out.VersionId)}, nil
}

// Write is the compare-and-swap of awssm: PutSecretValue under a pending
// label, then UpdateSecretVersionStage moves AWSCURRENT from version.
func (r awsRaw) Write(ctx context.Context, prefix, name string, value []byte, version string) (string, error) {
	id := aws.String(prefix + "/" + name)
	put, err := r.c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId:      id,
		SecretString:  aws.String(string(value)),
		VersionStages: []string{awsPending},
	})
	if err != nil {
		return "", err
	}
	_, err = r.c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
		SecretId:            id,
		VersionStage:        aws.String(awsCurrent),
		MoveToVersionId:     put.VersionId,
		RemoveFromVersionId: aws.String(version),
	})
	if err != nil {
		return "", err
	}
	return aws.ToString(put.VersionId), nil
}

func (r awsRaw) Create(ctx context.Context, prefix, name string, value []byte) (string, error) {
	out, err := r.c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name:         aws.String(prefix + "/" + name),
		SecretString: aws.String(string(value)),
	})
	if err != nil {
		return "", err
	}
	return aws.ToString(out.VersionId), nil
}

// Delete schedules the deletion with AWS's default recovery window, as
// awssm does by default: one call.
func (r awsRaw) Delete(ctx context.Context, prefix, name string) error {
	_, err := r.c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(prefix + "/" + name)})
	return err
}

// Purge deletes the secret at once, without a recovery window
// (ForceDeleteWithoutRecovery), so that its name can be created again:
// what an operator who removes an index secret by hand does.
func (r awsRaw) Purge(ctx context.Context, prefix, name string) error {
	_, err := r.c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(prefix + "/" + name), ForceDeleteWithoutRecovery: aws.Bool(true)})
	return err
}
