package awssm_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"os"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"golang.org/x/oauth2"

	"github.com/cloudtokens/cloudtokens/awssm"
	"github.com/cloudtokens/cloudtokens/tokensource"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// Tokens kept in Secrets Manager through a tokensource.Pool: build the
// store and the Pool once per process (in a Lambda function, in main,
// before lambda.Start) and ask the Pool in every invocation. A warm token
// costs no Secrets Manager request; an expiry costs one refresh per
// process (one per fleet, with the store's lease). Needs AWS credentials,
// so it is not run.
func Example_tokensource() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	store, err := awssm.New(ctx, secretsmanager.NewFromConfig(cfg), "myapp/zoho-tokens", awssm.WithIndexCache(true))
	if err != nil {
		log.Fatal(err)
	}
	pool, err := tokensource.NewPool(store, tokensource.Config{
		TokenURL:     "https://accounts.zoho.com/oauth/v2/token",
		RevokeURL:    "https://accounts.zoho.com/oauth/v2/token/revoke",
		ClientID:     os.Getenv("ZOHO_CLIENT_ID"),
		ClientSecret: os.Getenv("ZOHO_CLIENT_SECRET"),
		AuthStyle:    oauth2.AuthStyleInParams,
	})
	if err != nil {
		log.Fatal(err)
	}

	// In the handler:
	client, err := pool.Client(ctx, &tokenstore.Token{UserName: "alice@example.com"})
	if errors.Is(err, tokensource.ErrNoToken) {
		log.Fatal("no token for this user: send them through the consent page")
	}
	if err != nil {
		log.Fatal(err)
	}
	resp, err := client.Get("https://www.zohoapis.com/crm/v8/users?type=CurrentUser")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	log.Println(resp.Status == http.StatusText(http.StatusOK))
}
