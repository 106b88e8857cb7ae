package tokensourcetest_test

import (
	"strings"
	"testing"

	"github.com/cloudtokens/cloudtokens/tokensource/tokensourcetest"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

func TestLifecycle(t *testing.T) {
	for name, store := range map[string]tokenstore.Store{
		"memory":   tokenstore.NewMemoryStore(),
		"casstore": casstore.New(casstore.NewMemoryBackend(), casstore.Options{}),
	} {
		t.Run(name, func(t *testing.T) {
			var out strings.Builder
			if err := tokensourcetest.Lifecycle(t.Context(), &out, store, tokensourcetest.LifecycleOptions{StoreName: name}); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			s := out.String()
			for _, want := range []string{"1 exchange, 0 refreshes", "1 exchange, 1 refresh.", "Same access token as Token() returned: true",
				"rotated by the provider: true", "no longer works: true", "200 OK", "Tokens() lists 1 token(s)", "Tokens() lists 0 token(s)", "Done"} {
				if !strings.Contains(s, want) {
					t.Errorf("output lacks %q:\n%s", want, s)
				}
			}
			// oauthtest's grant codes, access and refresh tokens all start
			// with "1000.", and its client secret is "oauthtest-secret".
			if strings.Contains(s, "1000.") || strings.Contains(s, "oauthtest-secret") {
				t.Fatalf("a secret value is printed:\n%s", s)
			}
			if all, _ := store.Tokens(t.Context()); len(all) != 0 {
				t.Fatalf("%d tokens left", len(all))
			}
		})
	}
}

func TestLifecycleKeep(t *testing.T) {
	store := tokenstore.NewMemoryStore()
	var out strings.Builder
	if err := tokensourcetest.Lifecycle(t.Context(), &out, store, tokensourcetest.LifecycleOptions{StoreName: "memory", User: "bob", Keep: true}); err != nil {
		t.Fatal(err)
	}
	if all, _ := store.Tokens(t.Context()); len(all) != 1 || all[0].UserName != "bob" {
		t.Fatalf("kept tokens: %v", all)
	}
}
