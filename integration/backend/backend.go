// Package backend finds the real secret-store servers that the integration
// tests run against, so that every test asks for a backend the same way:
//
//	cfg := backend.AWSConfig(t)        // aws.Config aimed at moto / LocalStack
//	sm := backend.SecretsManager(t)    // *secretsmanager.Client
//	addr, token := backend.Vault(t)    // Vault dev server, KV v2 at secret/
//	vc := backend.VaultClient(t)       // *api.Client with the token set
//
// Each helper looks, in order, for:
//
//  1. an endpoint in the environment (see [Env]); ./scripts/test.sh starts
//     moto_server and a Vault dev server and exports these;
//  2. a container started through testcontainers-go, when a Docker engine
//     answers (LocalStack for AWS, hashicorp/vault in dev mode for Vault);
//  3. otherwise the test is skipped, or fails when CI is true: in CI a
//     missing backend is an error, never a silent skip.
//
// A container is started at most once per test binary and shared by all its
// tests; when started, its endpoint is also exported with os.Setenv so child
// processes (multi-process stress tests) find the same server. Containers
// are removed by testcontainers' reaper when the test binary exits, or
// earlier by [Main] from a TestMain.
package backend

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
)

// Environment variable names read by this package.
const (
	// EnvAWSEndpoint is the URL of an AWS Secrets Manager compatible endpoint
	// (moto_server, LocalStack), e.g. http://127.0.0.1:5000.
	EnvAWSEndpoint = "CLOUDTOKENS_AWS_ENDPOINT"
	// EnvVaultAddr and EnvVaultToken name a Vault server and a token allowed
	// to use its KV v2 mount at secret/. VAULT_ADDR and VAULT_TOKEN are read
	// when these are unset.
	EnvVaultAddr  = "CLOUDTOKENS_VAULT_ADDR"
	EnvVaultToken = "CLOUDTOKENS_VAULT_TOKEN"
	// EnvNoContainers, when true, stops this package from trying Docker.
	EnvNoContainers = "CLOUDTOKENS_NO_CONTAINERS"
	// EnvLocalStackImage and EnvVaultImage override the container images.
	EnvLocalStackImage = "CLOUDTOKENS_LOCALSTACK_IMAGE"
	EnvVaultImage      = "CLOUDTOKENS_VAULT_IMAGE"
)

// Default container images, used only when no endpoint is in the
// environment and a Docker engine is reachable.
const (
	DefaultLocalStackImage = "localstack/localstack:4.4"
	DefaultVaultImage      = "hashicorp/vault:1.21.0"
)

// Env describes the environment variables this package reads.
func Env() string {
	return strings.TrimSpace(`
CI=true                    a backend that cannot be found fails the test (t.Fatal) instead of skipping it
CLOUDTOKENS_AWS_ENDPOINT   AWS Secrets Manager endpoint (moto_server or LocalStack), e.g. http://127.0.0.1:5000;
                           used with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (default test/test) and
                           AWS_REGION (default us-east-1)
CLOUDTOKENS_VAULT_ADDR     Vault address, e.g. http://127.0.0.1:8200 (falls back to VAULT_ADDR)
CLOUDTOKENS_VAULT_TOKEN    Vault token (falls back to VAULT_TOKEN); KV v2 must be mounted at secret/
CLOUDTOKENS_NO_CONTAINERS  true: never try Docker/testcontainers
CLOUDTOKENS_LOCALSTACK_IMAGE, CLOUDTOKENS_VAULT_IMAGE
                           container images used when no endpoint is set and Docker answers
                           (defaults ` + DefaultLocalStackImage + `, ` + DefaultVaultImage + `)
./scripts/test.sh starts moto_server and a Vault dev server and sets all of these.`)
}

// InCI reports whether CI is set to a true value (CI=true, CI=1).
func InCI() bool {
	v, err := strconv.ParseBool(os.Getenv("CI"))
	return err == nil && v
}

// unavailable skips the test, or fails it in CI.
func unavailable(t testing.TB, what, why string) {
	t.Helper()
	msg := fmt.Sprintf("backend %s unavailable: %s (./scripts/test.sh starts the backends; variables: backend.Env())", what, why)
	if InCI() {
		t.Fatal("CI=true: " + msg)
	}
	t.Skip(msg)
}

func envTrue(name string) bool {
	v, err := strconv.ParseBool(os.Getenv(name))
	return err == nil && v
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// How long the Docker probe may take in all. With no engine it normally
// fails at once (no socket); this bounds an engine that does not answer.
const dockerProbeTimeout = 10 * time.Second

var docker struct {
	once sync.Once
	err  error
}

// dockerAvailable reports, once per process, whether testcontainers can
// reach a Docker engine. It never blocks longer than dockerProbeTimeout.
func dockerAvailable() error {
	docker.once.Do(func() {
		if envTrue(EnvNoContainers) {
			docker.err = fmt.Errorf("%s is set", EnvNoContainers)
			return
		}
		done := make(chan error, 1)
		go func() {
			defer func() {
				if r := recover(); r != nil {
					done <- fmt.Errorf("no Docker engine: %v", r)
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), dockerProbeTimeout)
			defer cancel()
			p, err := testcontainers.ProviderDefault.GetProvider()
			if err != nil {
				done <- fmt.Errorf("no Docker engine: %w", err)
				return
			}
			// Health closes the provider.
			if err := p.Health(ctx); err != nil {
				done <- fmt.Errorf("Docker engine not healthy: %w", err)
				return
			}
			done <- nil
		}()
		select {
		case docker.err = <-done:
		case <-time.After(dockerProbeTimeout + 2*time.Second):
			docker.err = fmt.Errorf("no answer from Docker within %s", dockerProbeTimeout)
		}
	})
	return docker.err
}

// shared holds containers started by this package, removed by Main.
var shared struct {
	mu         sync.Mutex
	containers []testcontainers.Container
}

func keep(c testcontainers.Container) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	shared.containers = append(shared.containers, c)
}

// Main runs the tests and then removes the containers and stops the
// server processes (GCPEmulatorProcess) this package started.
// Use it from a TestMain: func TestMain(m *testing.M) { os.Exit(backend.Main(m)) }.
// Without it the containers are removed by testcontainers' reaper when the
// test binary exits.
func Main(m *testing.M) int {
	code := m.Run()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, c := range shared.containers {
		_ = c.Terminate(ctx)
	}
	shared.containers = nil
	stopProcesses(ctx)
	return code
}
