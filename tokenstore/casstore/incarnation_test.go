package casstore_test

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// rememberAtGen4 saves tok with writer and refreshes it three times, so
// that its document is at generation 4, and has reader read it (reader
// remembers generation 4).
func rememberAtGen4(t *testing.T, writer, reader *casstore.Store, tok *tokenstore.Token) {
	t.Helper()
	ctx := t.Context()
	for i := range 4 {
		tok.AccessToken = "at-" + string(rune('a'+i))
		if err := writer.SaveToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := reader.FindTokenByID(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
}

// TestTombstoneOverDeletedToken: a Store that remembers a token another
// process deleted does not take the tombstone a later fence creates under
// the same ID for a stale replica of the token it remembers: it answers
// not found, lists nothing, and Check (from that Store) is clean once the
// deleting Store has written the index again. Before,
// the tombstone took the claim's generation (1), below the remembered 4,
// and the Store went on returning the deleted token.
func TestTombstoneOverDeletedToken(t *testing.T) {
	ctx := t.Context()
	b := &throttledIndex{MemoryBackend: casstore.NewMemoryBackend()}
	opts := casstore.Options{CleanupTimeout: 200 * time.Millisecond, ClaimWait: 10 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)}
	a, reader, other := casstore.New(b, opts), casstore.New(b, opts), casstore.New(b, opts)
	alice := zohoToken(1)
	rememberAtGen4(t, a, reader, alice)
	// The delete's release runs out of time: alice's entries stay, and
	// point at a missing document.
	b.throttled.Store(true)
	if err := a.DeleteToken(ctx, alice.ID); err != nil {
		t.Fatal(err)
	}
	b.throttled.Store(false)
	// Another process signs alice up again: it finds her user name
	// claimed by a missing document, and fences it with a tombstone.
	again := zohoToken(1)
	again.RefreshToken, again.GrantToken = "rt-again", "gt-again"
	if err := other.SaveToken(ctx, again); err != nil {
		t.Fatal(err)
	}
	if again.ID == alice.ID {
		t.Fatal("the new sign-up kept the deleted ID")
	}
	if got, err := reader.FindTokenByID(ctx, alice.ID); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Errorf("FindTokenByID of the deleted token from a Store that remembers it: %v, %v; want not found", got, err)
	}
	all, err := reader.Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].ID != again.ID {
		t.Errorf("Tokens from that Store: %d tokens, want only the new sign-up %s", len(all), again.ID)
	}
	// The deleting Store's next write drops the rest of alice's entries.
	if err := a.SaveToken(ctx, zohoToken(2)); err != nil {
		t.Fatal(err)
	}
	assertClean(t, reader)
}

// TestImportOverDeletedToken: ImportToken of a deleted token's ID, seen
// from a Store that remembers the deleted token at a later generation than
// the import writes: that Store returns the imported token, not the one
// it remembers. Before, the import's first write (a tombstone at
// generation 1, then the token at 2) was taken for a stale replica.
func TestImportOverDeletedToken(t *testing.T) {
	ctx := t.Context()
	b := casstore.NewMemoryBackend()
	a, reader := casstore.New(b, casstore.Options{}), casstore.New(b, casstore.Options{})
	alice := zohoToken(1)
	rememberAtGen4(t, a, reader, alice)
	if err := a.DeleteToken(ctx, alice.ID); err != nil {
		t.Fatal(err)
	}
	restored := alice.Clone()
	restored.AccessToken = "at-restored"
	if err := a.ImportToken(ctx, restored); err != nil {
		t.Fatal(err)
	}
	got, err := reader.FindTokenByID(ctx, alice.ID)
	if err != nil || got.AccessToken != restored.AccessToken {
		t.Errorf("FindTokenByID after the import, from a Store that remembered generation 4: %v, %v; want the imported token", got, err)
	}
	assertClean(t, reader)
}
