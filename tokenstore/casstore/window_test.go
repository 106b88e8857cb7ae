package casstore_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// The race the first version of the engine left open: a save by user name
// and a save by the same refresh token alone, from two processes at once.
// They contend on the refresh token's key: either the first inserts and
// the second updates that record, or the user-named save is refused with
// ErrConflict (the refresh token belongs to a record its rule does not
// update). Never two records with the refresh token, and never an
// acknowledged save lost.
func TestUserAndRefreshTokenInsertsRace(t *testing.T) {
	ctx := t.Context()
	outcomes := map[string]int{}
	for i := range 200 {
		b := casstore.NewMemoryBackend()
		a, c := casstore.New(b, crashOptions(1+i%4)), casstore.New(b, crashOptions(1+i%4))
		byUser := &tokenstore.Token{UserName: "u", ClientID: "cid", ClientSecret: "cs", RefreshToken: "r", AccessToken: "a-user"}
		byRefresh := &tokenstore.Token{ClientID: "cid", ClientSecret: "cs", RefreshToken: "r", AccessToken: "a-refresh"}
		var errUser, errRefresh error
		var wg sync.WaitGroup
		wg.Go(func() { errUser = a.SaveToken(ctx, byUser) })
		wg.Go(func() { errRefresh = c.SaveToken(ctx, byRefresh) })
		wg.Wait()
		if errUser != nil && !errors.Is(errUser, tokenstore.ErrConflict) || errRefresh != nil {
			t.Fatalf("round %d: saves failed: by user %v, by refresh token %v", i, errUser, errRefresh)
		}
		all, err := a.Tokens(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 1 {
			t.Fatalf("round %d: %d records hold the refresh token", i, len(all))
		}
		got := all[0]
		switch {
		case errUser == nil && (got.UserName != "u" || got.AccessToken != "a-refresh"):
			// Both acknowledged: the refresh-token save updated the user's
			// record, after it.
			t.Fatalf("round %d: both saves acknowledged, record %v", i, got)
		case errUser != nil && (got.UserName != "" || got.AccessToken != "a-refresh"):
			t.Fatalf("round %d: the user save was refused, record %v", i, got)
		}
		if rep, _ := a.Check(ctx); !rep.OK() {
			t.Fatalf("round %d: %s", i, rep)
		}
		outcomes[fmt.Sprintf("user save refused: %v", errUser != nil)]++
	}
	t.Logf("outcomes of 200 races: %v", outcomes)
}
