package observetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/cloudtokens/cloudtokens/observe"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// Run checks that store, built to report to rec, reports its operations:
// it saves a new token, finds it by user name and by ID and deletes it,
// and fails t unless each of the four calls was reported once as a
// top-level store operation with the token's ID, with at least one backend
// request inside, every backend request inside a store operation, and no
// token value, client secret or user name among the strings rec was
// given. It returns the number of backend requests reported, for a test
// that compares them with the requests the backend served.
func Run(t *testing.T, store tokenstore.Store, rec *Recorder) int {
	t.Helper()
	ctx := context.Background()
	var b [8]byte
	_, _ = rand.Read(b[:])
	suffix := hex.EncodeToString(b[:])
	tok := &tokenstore.Token{
		UserName: "observed-" + suffix + "@example.com", ClientID: "observed-client",
		ClientSecret: "cs-" + suffix, RefreshToken: "rt-" + suffix, AccessToken: "at-" + suffix,
	}
	secrets := []string{tok.UserName, tok.ClientSecret, tok.RefreshToken, tok.AccessToken, suffix}
	before := len(rec.Ops())

	if err := store.SaveToken(ctx, tok); err != nil {
		t.Fatalf("SaveToken: %v", err)
	}
	if _, err := store.FindToken(ctx, &tokenstore.Token{UserName: tok.UserName, ClientID: tok.ClientID}); err != nil {
		t.Fatalf("FindToken: %v", err)
	}
	if _, err := store.FindTokenByID(ctx, tok.ID); err != nil {
		t.Fatalf("FindTokenByID: %v", err)
	}
	if err := store.DeleteToken(ctx, tok.ID); err != nil {
		t.Fatalf("DeleteToken: %v", err)
	}

	for _, p := range rec.Nesting() {
		t.Error(p)
	}
	ops := rec.Ops()[before:]
	top := map[observe.Kind]int{}
	inside := map[observe.Kind]int{}
	requests := 0
	for _, o := range ops {
		switch {
		case o.Parent == nil && o.Op.Kind.Layer() == observe.LayerStore:
			top[o.Op.Kind]++
			if o.Op.TokenID != tok.ID || o.Err != nil {
				t.Errorf("%v reported with token ID %q and error %v; want %q and none", o.Op.Kind, o.Op.TokenID, o.Err, tok.ID)
			}
		case o.Op.Kind.Layer() == observe.LayerBackend:
			requests++
			if o.Parent != nil {
				inside[o.Parent.Kind]++
			}
		}
	}
	for _, k := range []observe.Kind{observe.SaveToken, observe.FindToken, observe.FindTokenByID, observe.DeleteToken} {
		if top[k] != 1 || inside[k] == 0 {
			t.Errorf("%v: reported %d times, with %d backend requests inside; want once, with some", k, top[k], inside[k])
		}
	}
	for _, s := range rec.Strings() {
		for _, secret := range secrets {
			if strings.Contains(s, secret) {
				t.Errorf("the Observer was given %q, which holds a secret or the user name", s)
			}
		}
	}
	return requests
}
