package tokensource_test

import (
	"context"
	"fmt"
	"io"
	"log"

	"golang.org/x/oauth2"

	"github.com/cloudtokens/cloudtokens/oauthtest"
	"github.com/cloudtokens/cloudtokens/tokensource"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// An http.Client whose requests carry the stored token. The local
// oauthtest server stands in for Zoho's accounts server and API; with
// Zoho, TokenURL is https://accounts.zoho.com/oauth/v2/token (or your data
// center's) and the store one of the cloud adapters.
func ExampleNew() {
	ctx := context.Background()
	provider := oauthtest.NewServer()
	defer provider.Close()
	store := tokenstore.NewMemoryStore()

	cfg := tokensource.Config{
		TokenURL:     provider.TokenURL,
		RevokeURL:    provider.RevokeURL,
		ClientID:     provider.ClientID(),
		ClientSecret: provider.ClientSecret(),
	}
	// The first login: the grant code the consent page returned.
	grant := provider.IssueGrant("alice@example.com")
	src, err := tokensource.New(store, &tokenstore.Token{UserName: "alice@example.com", GrantToken: grant}, cfg)
	if err != nil {
		log.Fatal(err)
	}

	client := oauth2.NewClient(ctx, src)
	resp, err := client.Get(provider.APIURL)
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.Status, string(body))

	saved, _ := store.FindToken(ctx, &tokenstore.Token{UserName: "alice@example.com"})
	fmt.Println("saved:", saved.RefreshToken != "", "exchanges:", provider.Exchanges())
	// Output:
	// 200 OK {"user":"alice@example.com"}
	//
	// saved: true exchanges: 1
}

// Source.Client also refreshes once and retries when the API rejects the
// token with Zoho's INVALID_OAUTHTOKEN before its expiry.
func ExampleSource_Client() {
	ctx := context.Background()
	provider := oauthtest.NewServer()
	defer provider.Close()
	cfg := tokensource.Config{TokenURL: provider.TokenURL, ClientID: provider.ClientID(), ClientSecret: provider.ClientSecret()}
	src, err := tokensource.New(tokenstore.NewMemoryStore(),
		&tokenstore.Token{UserName: "bob", GrantToken: provider.IssueGrant("bob")}, cfg)
	if err != nil {
		log.Fatal(err)
	}
	client := src.Client(ctx)
	if _, err := src.TokenContext(ctx); err != nil {
		log.Fatal(err)
	}
	provider.InvalidateAccessTokens() // the API now answers 401 INVALID_OAUTHTOKEN

	resp, err := client.Get(provider.APIURL)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status, "after", provider.Refreshes(), "refresh")
	// Output: 200 OK after 1 refresh
}
