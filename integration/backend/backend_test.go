package backend_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/cloudtokens/cloudtokens/integration/backend"
)

func TestMain(m *testing.M) { os.Exit(backend.Main(m)) }

// TestAWSReachable proves the wiring to the AWS Secrets Manager endpoint.
func TestAWSReachable(t *testing.T) {
	sm := backend.SecretsManager(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := sm.ListSecrets(ctx, &secretsmanager.ListSecretsInput{MaxResults: aws.Int32(1)}); err != nil {
		t.Fatalf("ListSecrets at %s: %v", backend.AWSEndpoint(t), err)
	}
	out, err := sm.GetRandomPassword(ctx, &secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(20)})
	if err != nil {
		t.Fatalf("GetRandomPassword: %v", err)
	}
	if n := len(aws.ToString(out.RandomPassword)); n != 20 {
		t.Fatalf("GetRandomPassword returned %d characters, want 20", n)
	}
}

// TestVaultReachable proves the wiring to Vault: health, token, KV v2 at secret/.
func TestVaultReachable(t *testing.T) {
	vc := backend.VaultClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := vc.Sys().HealthWithContext(ctx)
	if err != nil {
		t.Fatalf("sys/health at %s: %v", vc.Address(), err)
	}
	if !h.Initialized || h.Sealed {
		t.Fatalf("sys/health: initialized=%v sealed=%v", h.Initialized, h.Sealed)
	}
	if _, err := vc.Auth().Token().LookupSelfWithContext(ctx); err != nil {
		t.Fatalf("token lookup-self: %v", err)
	}
	mounts, err := vc.Sys().ListMountsWithContext(ctx)
	if err != nil {
		t.Fatalf("sys/mounts: %v", err)
	}
	m, ok := mounts["secret/"]
	if !ok || m.Type != "kv" || m.Options["version"] != "2" {
		t.Fatalf("secret/ mount = %+v (present %v), want kv version 2", m, ok)
	}
}

func TestEnvDocumentsVariables(t *testing.T) {
	doc := backend.Env()
	for _, v := range []string{"CI", backend.EnvAWSEndpoint, backend.EnvVaultAddr, backend.EnvVaultToken, "VAULT_ADDR", "VAULT_TOKEN"} {
		if !strings.Contains(doc, v) {
			t.Errorf("Env() does not mention %s", v)
		}
	}
}
