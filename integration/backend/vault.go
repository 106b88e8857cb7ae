package backend

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

var vaultCtr struct {
	once  sync.Once
	addr  string
	token string
	err   error
}

// Vault returns the address and a root token of a Vault server whose KV v2
// engine is mounted at secret/: $CLOUDTOKENS_VAULT_ADDR/_TOKEN, else
// $VAULT_ADDR/$VAULT_TOKEN, else a hashicorp/vault dev-mode container (when
// Docker answers), else it skips the test (fails it when CI=true).
func Vault(t testing.TB) (addr, token string) {
	t.Helper()
	if addr, token := os.Getenv(EnvVaultAddr), os.Getenv(EnvVaultToken); addr != "" || token != "" {
		if addr == "" || token == "" {
			t.Fatalf("backend Vault: set both %s and %s", EnvVaultAddr, EnvVaultToken)
		}
		return addr, token
	}
	if addr, token := os.Getenv("VAULT_ADDR"), os.Getenv("VAULT_TOKEN"); addr != "" && token != "" {
		return addr, token
	}
	if err := dockerAvailable(); err != nil {
		unavailable(t, "Vault", EnvVaultAddr+"/"+EnvVaultToken+" and VAULT_ADDR/VAULT_TOKEN are unset and "+err.Error())
	}
	vaultCtr.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		token := randomToken()
		c, err := testcontainers.Run(ctx, envOr(EnvVaultImage, DefaultVaultImage),
			testcontainers.WithExposedPorts("8200/tcp"),
			testcontainers.WithEnv(map[string]string{
				"VAULT_DEV_ROOT_TOKEN_ID":  token,
				"VAULT_DEV_LISTEN_ADDRESS": "0.0.0.0:8200",
				"SKIP_SETCAP":              "true",
				// sys/raw, as scripts/backends.sh's dev server has it.
				"VAULT_LOCAL_CONFIG": `{"raw_storage_endpoint": true}`,
			}),
			testcontainers.WithCmd("server", "-dev"),
			testcontainers.WithWaitStrategy(wait.ForHTTP("/v1/sys/health").
				WithPort("8200/tcp").
				WithStartupTimeout(2*time.Minute)),
		)
		if c != nil {
			keep(c)
		}
		if err != nil {
			vaultCtr.err = err
			return
		}
		vaultCtr.addr, vaultCtr.err = c.PortEndpoint(ctx, "8200/tcp", "http")
		vaultCtr.token = token
		if vaultCtr.err == nil {
			// Child processes (stress tests) reuse this container.
			os.Setenv(EnvVaultAddr, vaultCtr.addr)
			os.Setenv(EnvVaultToken, vaultCtr.token)
		}
	})
	if vaultCtr.err != nil {
		t.Fatalf("backend Vault: start container: %v", vaultCtr.err)
	}
	return vaultCtr.addr, vaultCtr.token
}

// VaultClient returns a Vault API client for Vault(t), token set.
func VaultClient(t testing.TB) *api.Client {
	t.Helper()
	addr, token := Vault(t)
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		t.Fatalf("backend Vault: default config: %v", cfg.Error)
	}
	cfg.Address = addr
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatalf("backend Vault: new client: %v", err)
	}
	c.SetToken(token)
	return c
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "root-" + hex.EncodeToString(b)
}
