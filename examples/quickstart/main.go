// Command quickstart shows the whole OAuth token lifecycle of cloudtokens
// with no account and no setup: the in-memory store and a local OAuth
// server that behaves like Zoho's accounts server, both in this process.
//
//	go run ./examples/quickstart [-user alice@example.com]
//
// It logs a user in with a grant token, saves the token, simulates its
// expiry, refreshes it from a new process-like Source, reads the refreshed
// token back, calls an API with it, lists the tokens and logs out (revoke
// and delete), printing each step with the secret values redacted.
//
// The same flow against AWS Secrets Manager, GCP Secret Manager or Vault:
// see examples/quickstart/cloud.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/cloudtokens/cloudtokens/tokensource/tokensourcetest"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

func main() {
	user := flag.String("user", "alice@example.com", "user name to log in")
	flag.Parse()
	err := tokensourcetest.Lifecycle(context.Background(), os.Stdout, tokenstore.NewMemoryStore(),
		tokensourcetest.LifecycleOptions{StoreName: "memory (tokenstore.NewMemoryStore, in this process)", User: *user})
	if err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}
