module github.com/cloudtokens/cloudtokens/integration

go 1.26.0

require github.com/cloudtokens/cloudtokens v0.0.0-00010101000000-000000000000

require (
	github.com/aws/aws-sdk-go-v2 v1.47.7
	github.com/aws/aws-sdk-go-v2/config v1.33.15
	github.com/aws/aws-sdk-go-v2/credentials v1.20.15
	github.com/aws/aws-sdk-go-v2/service/secretsmanager v1.50.10
	github.com/hashicorp/vault/api v1.23.0
	github.com/testcontainers/testcontainers-go v0.45.0
	github.com/testcontainers/testcontainers-go/modules/localstack v0.45.0
)

replace github.com/cloudtokens/cloudtokens => ../
