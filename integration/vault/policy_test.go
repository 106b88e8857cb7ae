package vault_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/tokenstoretest"
	ctvault "github.com/cloudtokens/cloudtokens/vault"
)

// readmePolicy returns the first ```hcl block of the module README, the
// least-privilege policy, for mount secret and prefix.
func readmePolicy(t *testing.T, prefix string) string {
	t.Helper()
	b, err := os.ReadFile("../../vault/README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "```hcl\n")
	if !ok {
		t.Fatal("README.md has no ```hcl block")
	}
	hcl, _, ok := strings.Cut(rest, "```")
	if !ok || !strings.Contains(hcl, "myapp/zoho-tokens") {
		t.Fatalf("README.md policy block not as expected: %q", hcl)
	}
	return strings.ReplaceAll(hcl, "myapp/zoho-tokens", prefix)
}

// The policy in the README is enough for everything the store does, with
// either delete mode, and New works with it.
func TestReadmePolicy(t *testing.T) {
	parent := newPrefix(t)
	token := policyToken(t, "ct-readme", readmePolicy(t, parent))
	newStore := func(t *testing.T, opts ...ctvault.Option) *ctvault.Store {
		prefix := parent + "/" + randomHex(4)
		client, _ := newClient(t, token)
		s, err := ctvault.New(ctxT(t), client, prefix, opts...)
		if err != nil {
			t.Fatalf("New with the README policy: %v", err)
		}
		return s
	}
	t.Run("Conformance", func(t *testing.T) {
		tokenstoretest.Run(t, func(t *testing.T) tokenstore.Store { return newStore(t, ctvault.WithIndexShards(2)) })
	})
	for _, soft := range []bool{false, true} {
		var opts []ctvault.Option
		if soft {
			opts = append(opts, ctvault.WithSoftDelete())
		}
		s := newStore(t, opts...)
		a := alice()
		mustSave(t, s, a)
		if err := s.DeleteToken(ctxT(t), a.ID); err != nil {
			t.Errorf("DeleteToken (soft %v) with the README policy: %v", soft, err)
		}
		mustSave(t, s, alice())
		if r, err := s.Check(ctxT(t)); err != nil || !r.OK() {
			t.Errorf("Check with the README policy: %v, %v", r, err)
		}
		if err := s.DeleteTokens(ctxT(t)); err != nil {
			t.Errorf("DeleteTokens with the README policy: %v", err)
		}
	}
	// The policy is confined to its prefix.
	client, _ := newClient(t, token)
	other, err := ctvault.New(ctxT(t), client, "cloudtokens-it/outside-"+randomHex(4))
	if err != nil {
		t.Fatalf("New outside the policy's prefix: %v", err)
	}
	if _, err := other.FindTokenByID(ctxT(t), "abc"); !errors.Is(err, ctvault.ErrPermissionDenied) {
		t.Errorf("FindTokenByID outside the policy's prefix: %v, want ErrPermissionDenied", err)
	}
}
