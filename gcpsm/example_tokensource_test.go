package gcpsm_test

import (
	"context"
	"fmt"
	"log"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"

	"github.com/cloudtokens/cloudtokens/gcpsm"
	"github.com/cloudtokens/cloudtokens/gcpsm/gcpsmtest"
	"github.com/cloudtokens/cloudtokens/oauthtest"
	"github.com/cloudtokens/cloudtokens/tokensource"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// Tokens kept in Secret Manager through a tokensource.Pool: one Pool per
// process (a Cloud Run service builds it in main), and a warm token costs
// no Secret Manager call. The example runs against the gcpsmtest emulator
// and a local OAuth server; in production the client comes from
// secretmanager.NewClient(ctx) with Application Default Credentials and
// TokenURL is the provider's.
func Example_tokensource() {
	ctx := context.Background()
	emulator, err := gcpsmtest.New()
	if err != nil {
		log.Fatal(err)
	}
	defer emulator.Close()
	client, err := secretmanager.NewClient(ctx, emulator.ClientOptions()...)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	store, err := gcpsm.New(ctx, client, "my-project", "oauth-tokens", gcpsm.WithIndexCache(true))
	if err != nil {
		log.Fatal(err)
	}

	provider := oauthtest.NewServer()
	defer provider.Close()
	pool, err := tokensource.NewPool(store, tokensource.Config{
		TokenURL:     provider.TokenURL,
		ClientID:     provider.ClientID(),
		ClientSecret: provider.ClientSecret(),
	})
	if err != nil {
		log.Fatal(err)
	}

	// The login saves the token in Secret Manager.
	user := "alice@example.com"
	if _, err := pool.Token(ctx, &tokenstore.Token{UserName: user, GrantToken: provider.IssueGrant(user)}); err != nil {
		log.Fatal(err)
	}
	emulator.ResetCalls()
	for range 10 {
		if _, err := pool.Token(ctx, &tokenstore.Token{UserName: user}); err != nil {
			log.Fatal(err)
		}
	}
	calls := 0
	for _, n := range emulator.Calls() {
		calls += n
	}
	fmt.Println("Secret Manager calls for 10 warm tokens:", calls)
	// Output: Secret Manager calls for 10 warm tokens: 0
}
