package storeurl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/hashicorp/vault/api"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cloudtokens/cloudtokens/awssm"
	"github.com/cloudtokens/cloudtokens/gcpsm"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/vault"
)

// Store is an opened store: the tokenstore.Store of the URL's adapter
// (an *awssm.Store, *gcpsm.Store or *vault.Store, whose other methods,
// such as Check and Repair, are reached by a type assertion on Store).
type Store struct {
	tokenstore.Store
	// URL is the URL the store was opened from.
	URL     *URL
	closeFn func() error
}

// Close releases the store's client (the GCP client's connections).
func (s *Store) Close() error {
	if s.closeFn == nil {
		return nil
	}
	return s.closeFn()
}

// Open opens the store u names. It makes no call to the service except
// for Vault, whose constructor checks that the mount is KV version 2.
func Open(ctx context.Context, u *URL) (*Store, error) {
	var (
		st      tokenstore.Store
		closeFn func() error
		err     error
	)
	switch u.Scheme {
	case AWS:
		st, err = openAWS(ctx, u)
	case GCP:
		st, closeFn, err = openGCP(ctx, u)
	case Vault:
		st, err = openVault(ctx, u)
	default:
		open := registered(u.Scheme)
		if open == nil {
			return nil, invalid("unknown scheme %q", u.Scheme)
		}
		st, err = open(ctx, u)
	}
	if err != nil {
		if closeFn != nil {
			_ = closeFn()
		}
		if isConfigError(err) {
			return nil, fmt.Errorf("%w: %s: %w", ErrInvalidURL, u, err)
		}
		return nil, fmt.Errorf("open %s: %w", u, err)
	}
	return &Store{Store: st, URL: u, closeFn: closeFn}, nil
}

// isConfigError reports whether err is an adapter's verdict on the
// prefix, project, mount or options: the URL's fault, not the service's.
func isConfigError(err error) bool {
	return errors.Is(err, awssm.ErrInvalidConfig) || errors.Is(err, gcpsm.ErrInvalidConfig) ||
		errors.Is(err, vault.ErrInvalidPrefix) || errors.Is(err, vault.ErrInvalidOption)
}

func openAWS(ctx context.Context, u *URL) (tokenstore.Store, error) {
	var lo []func(*config.LoadOptions) error
	if u.Region != "" {
		lo = append(lo, config.WithRegion(u.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, lo...)
	if err != nil {
		return nil, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("no AWS region: set AWS_REGION (or the profile's region) or add ?region= to the URL")
	}
	client := secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
		if u.Endpoint != "" {
			o.BaseEndpoint = aws.String(u.Endpoint)
		}
	})
	var opts []awssm.Option
	if u.Shards != 0 {
		opts = append(opts, awssm.WithIndexShards(u.Shards))
	}
	if u.ForceDelete {
		opts = append(opts, awssm.WithForceDelete())
	}
	return awssm.New(ctx, client, u.Prefix, opts...)
}

func openGCP(ctx context.Context, u *URL) (tokenstore.Store, func() error, error) {
	var copts []option.ClientOption
	if u.Endpoint != "" {
		// An emulator (gcpsm/gcpsmtest, or Google's): plaintext gRPC and
		// no credentials, the options gcpsmtest.ClientOptionsFor gives.
		copts = append(copts,
			option.WithEndpoint(u.Endpoint),
			option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	}
	client, err := secretmanager.NewClient(ctx, copts...)
	if err != nil {
		return nil, nil, fmt.Errorf("creating the Secret Manager client: %w", err)
	}
	var opts []gcpsm.Option
	if u.Shards != 0 {
		opts = append(opts, gcpsm.WithIndexShards(u.Shards))
	}
	st, err := gcpsm.New(ctx, client, u.Project, u.Prefix, opts...)
	return st, client.Close, err
}

func openVault(ctx context.Context, u *URL) (tokenstore.Store, error) {
	cfg := api.DefaultConfig() // reads VAULT_ADDR, VAULT_CACERT, VAULT_SKIP_VERIFY, ...
	if cfg.Error != nil {
		return nil, fmt.Errorf("reading the Vault environment: %w", cfg.Error)
	}
	if u.Addr != "" {
		cfg.Address = u.Addr
	}
	client, err := api.NewClient(cfg) // reads VAULT_TOKEN and VAULT_NAMESPACE
	if err != nil {
		return nil, fmt.Errorf("creating the Vault client: %w", err)
	}
	if client.Token() == "" {
		// The Vault CLI's default token helper keeps the token of
		// `vault login` in ~/.vault-token.
		if tok, err := tokenHelperToken(); err == nil && tok != "" {
			client.SetToken(tok)
		}
	}
	if u.Namespace != "" {
		client.SetNamespace(u.Namespace)
	}
	opts := []vault.Option{vault.WithMount(u.Mount)}
	if u.Shards != 0 {
		opts = append(opts, vault.WithIndexShards(u.Shards))
	}
	return vault.New(ctx, client, u.Prefix, opts...)
}

func tokenHelperToken() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(home, ".vault-token"))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
