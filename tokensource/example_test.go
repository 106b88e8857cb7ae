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

// One Pool per process, shared by every request: the first request for a
// user reads the store, later ones neither the store nor the provider
// while the token is valid. In a Lambda function or an HTTP server, build
// the Pool once (a package-level variable, or in main) and call it in the
// handler. The store would be awssm, gcpsm or vault; TokenURL Zoho's.
func ExamplePool() {
	ctx := context.Background()
	provider := oauthtest.NewServer()
	defer provider.Close()
	store := tokenstore.NewMemoryStore()

	pool, err := tokensource.NewPool(store, tokensource.Config{
		TokenURL:     provider.TokenURL,
		ClientID:     provider.ClientID(),
		ClientSecret: provider.ClientSecret(),
		AuthStyle:    oauth2.AuthStyleInParams, // Zoho's style: no detection request
	})
	if err != nil {
		log.Fatal(err)
	}

	// The login request: the grant code the consent page returned.
	login := &tokenstore.Token{UserName: "alice@example.com", GrantToken: provider.IssueGrant("alice@example.com")}
	if _, err := pool.Token(ctx, login); err != nil {
		log.Fatal(err)
	}

	// Every later request names the user (or the record ID).
	for range 3 {
		client, err := pool.Client(ctx, &tokenstore.Token{UserName: "alice@example.com"})
		if err != nil {
			log.Fatal(err) // errors.Is(err, tokensource.ErrNoToken): send the user to the login
		}
		resp, err := client.Get(provider.APIURL)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Println(resp.Status)
	}
	fmt.Println("token requests:", provider.TokenRequests(), "sources:", pool.Len())
	// Output:
	// 200 OK
	// 200 OK
	// 200 OK
	// token requests: 1 sources: 1
}
