package casstore_test

import (
	"context"
	"fmt"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// Two Stores over one backend behave like two processes sharing a secrets
// manager.
func ExampleNew() {
	ctx := context.Background()
	backend := casstore.NewMemoryBackend()
	a := casstore.New(backend, casstore.Options{})
	b := casstore.New(backend, casstore.Options{CacheIndex: true})

	_ = a.SaveToken(ctx, &tokenstore.Token{UserName: "alice", ClientID: "cid", ClientSecret: "cs", RefreshToken: "rt"})
	backend.ResetCalls()
	tok, err := b.FindToken(ctx, &tokenstore.Token{UserName: "alice"})
	fmt.Println(tok.UserName, err, backend.Calls()["Read"], "reads")

	report, _ := a.Check(ctx)
	fmt.Println(report.OK(), report.Tokens)
	// Output:
	// alice <nil> 2 reads
	// true 1
}
