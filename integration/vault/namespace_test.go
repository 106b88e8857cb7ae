package vault_test

import (
	"testing"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	ctvault "github.com/cloudtokens/cloudtokens/vault"
)

// A namespace set on the client (client.SetNamespace, or VAULT_NAMESPACE
// through api.DefaultConfig) goes out as X-Vault-Namespace on every
// request the store makes. The open-source dev server serves only the
// root namespace, which it also accepts by name, so the test uses "root"
// against the server and asserts the header at the transport.
func TestNamespaceHeaderOnEveryRequest(t *testing.T) {
	prefix := newPrefix(t)
	client, rec := newClient(t, "")
	client.SetNamespace("root")
	s, err := ctvault.New(ctxT(t), client, prefix, ctvault.WithIndexShards(2), ctvault.WithSoftDelete())
	if err != nil {
		t.Fatal(err)
	}
	a := alice()
	mustSave(t, s, a)
	mustSave(t, s, &tokenstore.Token{ID: a.ID, AccessToken: "1000.access-2"})
	if _, err := s.FindToken(ctxT(t), &tokenstore.Token{UserName: a.UserName}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Tokens(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Check(ctxT(t)); err != nil || !r.OK() {
		t.Fatalf("Check: %v, %v", r, err)
	}
	if err := s.DeleteToken(ctxT(t), a.ID); err != nil {
		t.Fatal(err)
	}
	calls := rec.take()
	methods := map[string]bool{}
	for _, c := range calls {
		methods[c.Method] = true
		if c.Namespace != "root" {
			t.Errorf("%s sent without the namespace header (%q)", c, c.Namespace)
		}
	}
	for _, m := range []string{"GET", "PUT", "LIST", "DELETE"} {
		if !methods[m] {
			t.Errorf("no %s request was checked", m)
		}
	}
	t.Logf("%d requests, every one with X-Vault-Namespace: root", len(calls))
}
