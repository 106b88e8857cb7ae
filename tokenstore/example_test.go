package tokenstore_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
)

func ExampleMemoryStore() {
	ctx := context.Background()
	store := tokenstore.NewMemoryStore()

	tok := &tokenstore.Token{
		UserName: "alice@example.com", ClientID: "1000.CLIENT", ClientSecret: "client-secret",
		AccessToken: "1000.access", RefreshToken: "1000.refresh", Expiry: time.Now().Add(time.Hour),
	}
	if err := store.SaveToken(ctx, tok); err != nil {
		panic(err)
	}

	found, err := store.FindToken(ctx, &tokenstore.Token{UserName: "alice@example.com"})
	fmt.Println(found.ID == tok.ID, found.RefreshToken, err)

	_, err = store.FindToken(ctx, &tokenstore.Token{})
	fmt.Println(errors.Is(err, tokenstore.ErrInvalidToken))

	_ = store.DeleteToken(ctx, tok.ID)
	_, err = store.FindTokenByID(ctx, tok.ID)
	fmt.Println(errors.Is(err, tokenstore.ErrNotFound))
	// Output:
	// true 1000.refresh <nil>
	// true
	// true
}

func ExampleToken_String() {
	tok := &tokenstore.Token{ID: "abc", UserName: "alice", AccessToken: "1000.secret-access"}
	fmt.Println(tok)
	// Output:
	// Token{ID:"abc" UserName:"alice" ClientID:"" ClientSecret:"" RefreshToken:"" AccessToken:"[redacted]" GrantToken:"" Expiry:"" RedirectURL:"" APIDomain:""}
}

func ExampleMerge() {
	stored := &tokenstore.Token{ID: "abc", UserName: "alice", RefreshToken: "1000.refresh", APIDomain: "https://www.zohoapis.com"}
	partial := &tokenstore.Token{UserName: "alice", APIDomain: "https://www.zohoapis.eu"}
	tokenstore.Merge(partial, stored)
	fmt.Println(partial.ID, partial.RefreshToken, partial.APIDomain)
	// Output: abc 1000.refresh https://www.zohoapis.eu
}

func ExampleMarshalDocument() {
	b, _ := tokenstore.MarshalDocument(&tokenstore.Token{ID: "abc", UserName: "alice", AccessToken: "at",
		Expiry: time.UnixMilli(1767225600000)})
	fmt.Println(string(b))
	// Output: {"format":1,"id":"abc","user_name":"alice","access_token":"at","expiry_time":1767225600000}
}
