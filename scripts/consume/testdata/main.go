// Command consumer is the program scripts/consume-check.sh builds in a
// fresh module outside the repository, from the released modules alone
// (go get at the version the go.mod files name, no replace): every
// adapter with tokensource, written the way an application would.
//
// Run, it signs a user in (grant code exchange), lets the stored token
// expire, refreshes it from a second Source that knows only the user
// name, calls the API with it and revokes it, through a
// tokensource.Source on each store it can reach: GCP Secret Manager
// through the gcpsmtest emulator (always), AWS Secrets Manager at
// CLOUDTOKENS_AWS_ENDPOINT and Vault at CLOUDTOKENS_VAULT_ADDR (with
// CLOUDTOKENS_VAULT_TOKEN) when they are set. The OAuth provider is an
// oauthtest server in the process. It exits 1 if any store fails, and
// with -require=aws,vault also if those are not configured.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/hashicorp/vault/api"

	"github.com/cloudtokens/cloudtokens/awssm"
	"github.com/cloudtokens/cloudtokens/gcpsm"
	"github.com/cloudtokens/cloudtokens/gcpsm/gcpsmtest"
	"github.com/cloudtokens/cloudtokens/oauthtest"
	"github.com/cloudtokens/cloudtokens/tokensource"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/vault"
)

func main() {
	require := flag.String("require", "", "comma-separated backends that must be configured (aws, vault)")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	provider := oauthtest.NewServer(oauthtest.WithRotation(true))
	defer provider.Close()
	prefix := "consumer-" + strings.ToLower(rand.Text()[:8])

	failed := false
	for _, b := range []struct {
		name string
		open func(context.Context, string) (tokenstore.Store, func(), error)
		env  string // unset: skipped
	}{
		{"gcp (gcpsmtest)", openGCP, ""},
		{"aws", openAWS, "CLOUDTOKENS_AWS_ENDPOINT"},
		{"vault", openVault, "CLOUDTOKENS_VAULT_ADDR"},
	} {
		if b.env != "" && os.Getenv(b.env) == "" {
			if slices.Contains(strings.Split(*require, ","), b.name) {
				fmt.Fprintf(os.Stderr, "consumer: %s: FAIL: %s is not set\n", b.name, b.env)
				failed = true
			} else {
				fmt.Printf("consumer: %s: skipped (%s unset)\n", b.name, b.env)
			}
			continue
		}
		store, closeStore, err := b.open(ctx, prefix)
		if err == nil {
			err = signInAndRefresh(ctx, store, provider)
			closeStore()
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "consumer: %s: FAIL: %v\n", b.name, err)
			failed = true
			continue
		}
		fmt.Printf("consumer: %s: ok (login, refresh by a second Source, API call, revoke)\n", b.name)
	}
	if failed {
		os.Exit(1)
	}
}

// signInAndRefresh runs a token's life through tokensource on store.
func signInAndRefresh(ctx context.Context, store tokenstore.Store, p *oauthtest.Server) error {
	user := "user-" + strings.ToLower(rand.Text()[:8]) + "@example.com"
	cfg := tokensource.Config{
		TokenURL:     p.TokenURL,
		RevokeURL:    p.RevokeURL,
		ClientID:     p.ClientID(),
		ClientSecret: p.ClientSecret(),
	}
	login, err := tokensource.New(store, &tokenstore.Token{UserName: user, GrantToken: p.IssueGrant(user)}, cfg)
	if err != nil {
		return err
	}
	first, err := login.TokenContext(ctx)
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}

	// An hour later: the stored access token has expired.
	stored, err := store.FindToken(ctx, &tokenstore.Token{UserName: user})
	if err != nil {
		return fmt.Errorf("reading the saved token: %w", err)
	}
	stored.Expiry = time.Now().Add(-time.Minute)
	if err := store.SaveToken(ctx, stored); err != nil {
		return err
	}

	// Another process knows only the user name.
	refreshes := p.Refreshes()
	later, err := tokensource.New(store, &tokenstore.Token{UserName: user}, cfg)
	if err != nil {
		return err
	}
	second, err := later.TokenContext(ctx)
	if err != nil {
		return fmt.Errorf("refresh: %w", err)
	}
	if second.AccessToken == first.AccessToken || p.Refreshes() != refreshes+1 {
		return errors.New("the expired token was not refreshed exactly once")
	}
	saved, err := store.FindToken(ctx, &tokenstore.Token{UserName: user})
	if err != nil {
		return err
	}
	if saved.AccessToken != second.AccessToken {
		return errors.New("the refreshed token was not saved")
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.APIURL, nil)
	if err != nil {
		return err
	}
	resp, err := later.Client(ctx).Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("API call: %s", resp.Status)
	}

	if err := later.Revoke(ctx); err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	if _, err := store.FindToken(ctx, &tokenstore.Token{UserName: user}); !errors.Is(err, tokenstore.ErrNotFound) {
		return fmt.Errorf("after revoke, FindToken returned %v, want tokenstore.ErrNotFound", err)
	}
	return nil
}

func openGCP(ctx context.Context, prefix string) (tokenstore.Store, func(), error) {
	srv, err := gcpsmtest.New()
	if err != nil {
		return nil, nil, err
	}
	client, err := secretmanager.NewClient(ctx, gcpsmtest.ClientOptionsFor(srv.Addr())...)
	if err != nil {
		srv.Close()
		return nil, nil, err
	}
	closeAll := func() { client.Close(); srv.Close() }
	store, err := gcpsm.New(ctx, client, "consumer-project", prefix)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return store, closeAll, nil
}

// openAWS uses the standard AWS settings (AWS_REGION, AWS_ACCESS_KEY_ID,
// ...) with the endpoint of CLOUDTOKENS_AWS_ENDPOINT.
func openAWS(ctx context.Context, prefix string) (tokenstore.Store, func(), error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, nil, err
	}
	client := secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
		o.BaseEndpoint = aws.String(os.Getenv("CLOUDTOKENS_AWS_ENDPOINT"))
	})
	store, err := awssm.New(ctx, client, prefix, awssm.WithForceDelete())
	if err != nil {
		return nil, nil, err
	}
	return store, func() {}, nil
}

func openVault(ctx context.Context, prefix string) (tokenstore.Store, func(), error) {
	cfg := api.DefaultConfig()
	cfg.Address = os.Getenv("CLOUDTOKENS_VAULT_ADDR")
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, nil, err
	}
	client.SetToken(os.Getenv("CLOUDTOKENS_VAULT_TOKEN"))
	store, err := vault.New(ctx, client, prefix)
	if err != nil {
		return nil, nil, err
	}
	return store, func() {}, nil
}
