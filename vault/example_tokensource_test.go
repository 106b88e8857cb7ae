package vault_test

import (
	"context"
	"log"
	"os"

	"github.com/hashicorp/vault/api"

	"github.com/cloudtokens/cloudtokens/tokensource"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/vault"
)

// Tokens kept in Vault KV v2 through a tokensource.Pool: one Pool per
// process; a warm token costs no Vault request, and processes sharing the
// store refresh an expired token once between them (the store's lease is
// a check-and-set write). Needs a Vault server, so it is not run.
func Example_tokensource() {
	ctx := context.Background()
	client, err := api.NewClient(api.DefaultConfig()) // VAULT_ADDR, VAULT_TOKEN, ...
	if err != nil {
		log.Fatal(err)
	}
	store, err := vault.New(ctx, client, "myapp/zoho-tokens", vault.WithIndexCache(true))
	if err != nil {
		log.Fatal(err)
	}
	pool, err := tokensource.NewPool(store, tokensource.Config{
		TokenURL:     os.Getenv("OAUTH_TOKEN_URL"),
		ClientID:     os.Getenv("OAUTH_CLIENT_ID"),
		ClientSecret: os.Getenv("OAUTH_CLIENT_SECRET"),
	})
	if err != nil {
		log.Fatal(err)
	}
	tok, err := pool.Token(ctx, &tokenstore.Token{UserName: "alice@example.com"})
	if err != nil {
		log.Fatal(err)
	}
	log.Println("token of record", tok.Extra(tokensource.ExtraTokenID), "valid until", tok.Expiry)
}
