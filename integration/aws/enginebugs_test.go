//go:build enginebugs

package aws

import (
	"fmt"
	"testing"

	"github.com/cloudtokens/cloudtokens/awssm"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// TestRepairLostIndexRecoveryWindow: the index secret is deleted out of
// band the way AWS deletes by default, with a recovery window, so its
// name stays taken (CreateSecret refuses it: awssm reports
// casstore.ErrDeleted). Repair must still rebuild the index, for example
// by restoring the secret (RestoreSecret) and overwriting it. Today it
// fails. Run with -tags enginebugs.
func TestRepairLostIndexRecoveryWindow(t *testing.T) {
	var raw casstore.Backend
	st := newStore(t, nil, awssm.WithBackendWrapper(func(b casstore.Backend) casstore.Backend { raw = b; return b }))
	for i := range 10 {
		if err := st.SaveToken(t.Context(), &tokenstore.Token{UserName: fmt.Sprintf("u%d", i), AccessToken: "a"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := raw.Delete(t.Context(), casstore.IndexName(0)); err != nil { // 30-day recovery window
		t.Fatal(err)
	}
	if rep, err := st.Repair(t.Context()); err != nil {
		t.Fatalf("Repair of an index deleted with a recovery window: %v (%s)", err, rep)
	}
	if _, err := st.FindToken(t.Context(), &tokenstore.Token{UserName: "u3"}); err != nil {
		t.Fatalf("after Repair: %v", err)
	}
}
