package gcpsm_test

import (
	"context"
	"fmt"
	"log"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"

	"github.com/cloudtokens/cloudtokens/gcpsm"
	"github.com/cloudtokens/cloudtokens/gcpsm/gcpsmtest"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// ExampleNew stores a token in Secret Manager and finds it again. The
// example runs against the gcpsmtest emulator; in production the client
// comes from secretmanager.NewClient(ctx) with Application Default
// Credentials, and the project is a real one.
func ExampleNew() {
	ctx := context.Background()
	srv, err := gcpsmtest.New()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	client, err := secretmanager.NewClient(ctx, srv.ClientOptions()...)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	store, err := gcpsm.New(ctx, client, "my-project", "zoho-prod",
		gcpsm.WithIndexCache(true),
		gcpsm.WithLabels(map[string]string{"team": "billing"}))
	if err != nil {
		log.Fatal(err)
	}

	tok := &tokenstore.Token{
		UserName:     "alice@example.com",
		ClientID:     "1000.EXAMPLE",
		ClientSecret: "example-client-secret",
		RefreshToken: "1000.refresh.example",
		AccessToken:  "1000.access.example",
		Expiry:       time.Now().Add(time.Hour),
	}
	if err := store.SaveToken(ctx, tok); err != nil {
		log.Fatal(err)
	}
	fmt.Println("secret ID:", store.SecretID(tok.ID) == "zoho-prod_token-"+tok.ID)

	found, err := store.FindToken(ctx, &tokenstore.Token{UserName: "alice@example.com"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("found:", found.ID == tok.ID, found.ClientID)

	report, err := store.Check(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("index consistent:", report.OK(), report.Tokens)
	// Output:
	// secret ID: true
	// found: true 1000.EXAMPLE
	// index consistent: true 1
}
