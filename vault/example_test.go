package vault_test

import (
	"context"
	"log"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/vault"
	"github.com/hashicorp/vault/api"
)

// The client reads VAULT_ADDR, VAULT_TOKEN (and VAULT_NAMESPACE, TLS
// settings, ...) from the environment.
func ExampleNew() {
	ctx := context.Background()
	client, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		log.Fatal(err)
	}
	store, err := vault.New(ctx, client, "myapp/zoho-tokens",
		vault.WithMount("secret"),
		vault.WithIndexShards(4),
		vault.WithIndexCache(true),
	)
	if err != nil {
		log.Fatal(err)
	}
	tok := &tokenstore.Token{UserName: "alice@example.com", RefreshToken: "1000.r…", ClientID: "1000.ABC", ClientSecret: "s…"}
	if err := store.SaveToken(ctx, tok); err != nil {
		log.Fatal(err)
	}
	found, err := store.FindToken(ctx, &tokenstore.Token{UserName: "alice@example.com"})
	if err != nil {
		log.Fatal(err)
	}
	log.Println("stored as", found.ID)
}

// A Kubernetes pod logs in with its service account token; AppRole and
// AWS IAM work the same way (see the README).
func ExampleNew_namespace() {
	ctx := context.Background()
	client, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		log.Fatal(err)
	}
	client.SetNamespace("team-a") // Vault Enterprise / HCP: X-Vault-Namespace on every request
	store, err := vault.New(ctx, client, "zoho", vault.WithMount("kv"), vault.WithSoftDelete())
	if err != nil {
		log.Fatal(err)
	}
	report, err := store.Check(ctx)
	if err != nil {
		log.Fatal(err)
	}
	log.Println(report)
}

// On Vault Enterprise with performance standbys, a store can read its own
// writes on any node: it requires the X-Vault-Index state of its last
// answers, and a lagging standby forwards the request to the active node
// (allow_forwarding_via_header must be set on the cluster). On a single
// node this changes nothing.
func ExampleWithConsistency() {
	ctx := context.Background()
	client, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		log.Fatal(err)
	}
	store, err := vault.New(ctx, client, "myapp/zoho-tokens", vault.WithConsistency(vault.ReadYourWritesForward))
	if err != nil {
		log.Fatal(err)
	}
	_ = store
}
