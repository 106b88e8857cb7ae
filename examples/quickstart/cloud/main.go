// Command cloud runs the quickstart's token lifecycle (see
// tokensourcetest.Lifecycle) against a cloud store: AWS Secrets Manager
// (awssm), GCP Secret Manager (gcpsm) or HashiCorp Vault (vault). The
// OAuth provider is still the local one, so no OAuth account is needed.
// It is a module of its own (it needs the cloud SDKs, which the root
// module, home of examples/quickstart, must not depend on):
//
//	cd examples/quickstart/cloud
//	go run . -backend aws          # CLOUDTOKENS_AWS_ENDPOINT=http://127.0.0.1:5000 for moto (scripts/backends.sh)
//	go run . -backend vault        # CLOUDTOKENS_VAULT_ADDR / CLOUDTOKENS_VAULT_TOKEN (or VAULT_*)
//	go run . -backend gcp -gcp-project my-project
//	go run . -backend gcp-emulator # GCP Secret Manager emulator in this process
//
// AWS: the standard AWS_* settings and credential chain; with
// CLOUDTOKENS_AWS_ENDPOINT set (moto_server, LocalStack) the region
// defaults to us-east-1 and the credentials to test/test.
// GCP: Application Default Credentials, or CLOUDTOKENS_GCP_ENDPOINT, the
// address of a gcpsmtest emulator. Vault: KV v2 mounted at secret/.
//
// Every run uses a fresh prefix (-prefix to choose one). The token is
// revoked and deleted at the end (-keep keeps it); the store's index
// document stays under the prefix.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/hashicorp/vault/api"

	"github.com/cloudtokens/cloudtokens/awssm"
	"github.com/cloudtokens/cloudtokens/gcpsm"
	"github.com/cloudtokens/cloudtokens/gcpsm/gcpsmtest"
	"github.com/cloudtokens/cloudtokens/tokensource/tokensourcetest"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/vault"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command with its arguments and output; it returns the exit
// status: 2 for a command line mistake (the only case that prints the
// flag usage), 1 for any other failure.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cloud", flag.ContinueOnError)
	fs.SetOutput(stderr)
	backend := fs.String("backend", "", "aws, gcp, gcp-emulator or vault")
	prefix := fs.String("prefix", "", "store prefix (default quickstart-<random>)")
	project := fs.String("gcp-project", os.Getenv("GOOGLE_CLOUD_PROJECT"), "GCP project ID (-backend gcp)")
	user := fs.String("user", "alice@example.com", "user name to log in")
	keep := fs.Bool("keep", false, "keep the token in the store at the end")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *prefix == "" {
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		*prefix = "quickstart-" + hex.EncodeToString(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	store, name, closeFn, err := open(ctx, *backend, *prefix, *project)
	if err != nil {
		fmt.Fprintln(stderr, "quickstart:", err)
		if errors.As(err, new(usageError)) {
			fs.Usage()
			return 2
		}
		printHint(stderr, err)
		return 1
	}
	defer closeFn()
	err = tokensourcetest.Lifecycle(ctx, stdout, store, tokensourcetest.LifecycleOptions{StoreName: name, User: *user, Keep: *keep})
	if err != nil {
		fmt.Fprintln(stderr, "quickstart:", err)
		printHint(stderr, err)
		return 1
	}
	return 0
}

// usageError is a mistake on the command line.
type usageError string

func (e usageError) Error() string { return string(e) }

// printHint says what to check when a local server refuses the
// connection or the credentials: usually a server started with other
// settings than the command line names.
func printHint(w io.Writer, err error) {
	const servers = "start them with ./scripts/backends.sh and use the addresses and token it prints (README.md, \"Local servers\")"
	switch {
	case errors.Is(err, vault.ErrPermissionDenied):
		fmt.Fprintln(w, "quickstart: hint: CLOUDTOKENS_VAULT_TOKEN (else VAULT_TOKEN) must be a token of the Vault at CLOUDTOKENS_VAULT_ADDR, for a dev server its root token;", servers)
	case errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "connection refused"):
		fmt.Fprintln(w, "quickstart: hint: no server answers at that address;", servers)
	}
}

// open returns the store of backend under prefix, its description and a
// function that releases its client.
func open(ctx context.Context, backend, prefix, project string) (tokenstore.Store, string, func(), error) {
	nop := func() {}
	switch backend {
	case "aws":
		var opts []func(*config.LoadOptions) error
		endpoint := os.Getenv("CLOUDTOKENS_AWS_ENDPOINT")
		if endpoint != "" {
			if os.Getenv("AWS_REGION") == "" && os.Getenv("AWS_DEFAULT_REGION") == "" {
				opts = append(opts, config.WithRegion("us-east-1"))
			}
			if os.Getenv("AWS_ACCESS_KEY_ID") == "" {
				opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")))
			}
		}
		cfg, err := config.LoadDefaultConfig(ctx, opts...)
		if err != nil {
			return nil, "", nop, err
		}
		where := "AWS"
		if endpoint != "" {
			cfg.BaseEndpoint = aws.String(endpoint)
			where = endpoint
		}
		s, err := awssm.New(ctx, secretsmanager.NewFromConfig(cfg), prefix)
		return s, fmt.Sprintf("AWS Secrets Manager (%s), prefix %s", where, prefix), nop, err
	case "gcp", "gcp-emulator":
		var emu *gcpsmtest.Server
		addr := os.Getenv("CLOUDTOKENS_GCP_ENDPOINT")
		if backend == "gcp-emulator" {
			var err error
			if emu, err = gcpsmtest.New(); err != nil {
				return nil, "", nop, err
			}
			addr = emu.Addr()
		}
		var client *secretmanager.Client
		var err error
		where := "GCP"
		if addr != "" {
			client, err = secretmanager.NewClient(ctx, gcpsmtest.ClientOptionsFor(addr)...)
			where = "emulator at " + addr
			if project == "" {
				project = "quickstart"
			}
		} else {
			client, err = secretmanager.NewClient(ctx)
		}
		closeFn := func() {
			if client != nil {
				client.Close()
			}
			if emu != nil {
				emu.Close()
			}
		}
		if err != nil {
			closeFn()
			return nil, "", nop, err
		}
		if project == "" {
			closeFn()
			return nil, "", nop, usageError("-gcp-project (or GOOGLE_CLOUD_PROJECT) is required for -backend gcp")
		}
		s, err := gcpsm.New(ctx, client, project, prefix)
		return s, fmt.Sprintf("GCP Secret Manager (%s), project %s, prefix %s", where, project, prefix), closeFn, err
	case "vault":
		cfg := api.DefaultConfig()
		if cfg.Error != nil {
			return nil, "", nop, cfg.Error
		}
		if addr := os.Getenv("CLOUDTOKENS_VAULT_ADDR"); addr != "" {
			cfg.Address = addr
		}
		client, err := api.NewClient(cfg)
		if err != nil {
			return nil, "", nop, err
		}
		if tok := os.Getenv("CLOUDTOKENS_VAULT_TOKEN"); tok != "" {
			client.SetToken(tok)
		}
		s, err := vault.New(ctx, client, prefix)
		return s, fmt.Sprintf("Vault (%s), prefix %s", cfg.Address, prefix), nop, err
	}
	return nil, "", nop, usageError(fmt.Sprintf("-backend must be aws, gcp, gcp-emulator or vault, not %q", backend))
}
