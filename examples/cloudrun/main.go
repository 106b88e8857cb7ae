// Command cloudrun is an HTTP service for Cloud Run (or Cloud Run
// functions) that calls an OAuth-protected API on behalf of a user: it
// gets the user's token from GCP Secret Manager through a
// tokensource.Pool on the gcpsm store (refreshing and saving it when it
// expires, once across all instances), calls the API with it, and answers
// the API's HTTP status and the token's record ID, never a secret.
//
// Request: POST / with {"user_name": "alice@example.com", "client_id": "optional"}.
// Answer: {"id": "<record ID>", "status": 200}, or an error status (see
// Service).
//
// Environment:
//
//	GOOGLE_CLOUD_PROJECT  the project that holds the secrets (required)
//	CLOUDTOKENS_PREFIX    the store's secret ID prefix (required)
//	OAUTH_TOKEN_URL       the provider's token endpoint (required)
//	API_URL               the API endpoint to call with GET (required)
//	OAUTH_CLIENT_ID       the OAuth client ID (optional: the stored token's)
//	OAUTH_CLIENT_SECRET   the OAuth client secret (optional: the stored token's)
//	OAUTH_AUTH_STYLE      "params" (Zoho), "header", or empty to detect
//	PORT                  the port to listen on (Cloud Run sets it; default 8080)
//	CLOUDTOKENS_GCP_ENDPOINT  local testing only: host:port of a Secret
//	                      Manager emulator (gcpsmtest), plaintext, no auth
//
// Credentials are Application Default Credentials (on Cloud Run, the
// service's identity); README.md lists the IAM permissions.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"golang.org/x/oauth2"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cloudtokens/cloudtokens/gcpsm"
	"github.com/cloudtokens/cloudtokens/tokensource"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var copts []option.ClientOption
	if ep := os.Getenv("CLOUDTOKENS_GCP_ENDPOINT"); ep != "" {
		copts = append(copts, option.WithEndpoint(ep), option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	}
	client, err := secretmanager.NewClient(ctx, copts...)
	if err != nil {
		log.Fatalf("Secret Manager client: %v", err)
	}
	defer client.Close()
	svc, err := newService(ctx, client, os.Getenv)
	if err != nil {
		log.Fatal(err)
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	srv := &http.Server{Addr: ":" + port, Handler: svc, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done() // Cloud Run sends SIGTERM before stopping an instance
		sctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// newService builds the store and the Pool once per instance: every
// request reuses the client's connection, the store's index cache and the
// Pool's tokens.
func newService(ctx context.Context, client *secretmanager.Client, getenv func(string) string, opts ...tokensource.Option) (*Service, error) {
	for _, k := range []string{"GOOGLE_CLOUD_PROJECT", "CLOUDTOKENS_PREFIX", "OAUTH_TOKEN_URL", "API_URL"} {
		if getenv(k) == "" {
			return nil, fmt.Errorf("%s is not set", k)
		}
	}
	store, err := gcpsm.New(ctx, client, getenv("GOOGLE_CLOUD_PROJECT"), getenv("CLOUDTOKENS_PREFIX"), gcpsm.WithIndexCache(true))
	if err != nil {
		return nil, err
	}
	var style oauth2.AuthStyle
	switch s := getenv("OAUTH_AUTH_STYLE"); s {
	case "":
	case "params":
		style = oauth2.AuthStyleInParams
	case "header":
		style = oauth2.AuthStyleInHeader
	default:
		return nil, fmt.Errorf("OAUTH_AUTH_STYLE %q: want params, header or empty", s)
	}
	pool, err := tokensource.NewPool(store, tokensource.Config{
		TokenURL:     getenv("OAUTH_TOKEN_URL"),
		ClientID:     getenv("OAUTH_CLIENT_ID"),
		ClientSecret: getenv("OAUTH_CLIENT_SECRET"),
		AuthStyle:    style,
	}, opts...)
	if err != nil {
		return nil, err
	}
	return &Service{Pool: pool, APIURL: getenv("API_URL")}, nil
}
