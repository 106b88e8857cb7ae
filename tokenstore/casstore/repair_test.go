package casstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

func saveUsers(t *testing.T, s *casstore.Store, n int) []*tokenstore.Token {
	t.Helper()
	var out []*tokenstore.Token
	for i := range n {
		tok := zohoToken(i)
		if err := s.SaveToken(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
		out = append(out, tok)
	}
	return out
}

func deleteIndex(t *testing.T, b *casstore.MemoryBackend) {
	t.Helper()
	names, _ := b.List(t.Context())
	for _, n := range names {
		if strings.HasPrefix(n, "index-") {
			if err := b.Delete(t.Context(), n); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func mustCheck(t *testing.T, s *casstore.Store) *casstore.Report {
	t.Helper()
	rep, err := s.Check(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// A lost index (deleted out of band) is rebuilt from the documents before
// the store lists or inserts anything: every token is listed and found,
// and saving an existing user does not create a second record.
func TestLostIndexIsRebuilt(t *testing.T) {
	for _, buckets := range []int{1, 4} {
		t.Run(fmt.Sprint("buckets=", buckets), func(t *testing.T) {
			ctx := t.Context()
			b := casstore.NewMemoryBackend()
			toks := saveUsers(t, casstore.New(b, casstore.Options{IndexShards: buckets}), 12)
			deleteIndex(t, b)
			s := casstore.New(b, casstore.Options{})
			if err := s.SaveToken(ctx, &tokenstore.Token{UserName: toks[3].UserName, AccessToken: "after-loss"}); err != nil {
				t.Fatal(err)
			}
			all, err := s.Tokens(ctx)
			if err != nil || len(all) != len(toks) {
				t.Fatalf("Tokens after the loss: %d tokens (%v), want %d", len(all), err, len(toks))
			}
			for _, tok := range toks {
				got, err := s.FindToken(ctx, &tokenstore.Token{UserName: tok.UserName})
				if err != nil || got.ID != tok.ID {
					t.Fatalf("FindToken(%s) after the rebuild: %v %v", tok.UserName, got, err)
				}
			}
			if rep := mustCheck(t, s); !rep.OK() {
				t.Fatalf("after the rebuild: %s", rep)
			}
		})
	}
}

// A Store that has the index in memory takes an index that another
// process rebuilt (after a loss out of band) for the newer one, not for a
// stale replica of the one it remembers: the token that the rebuild
// indexed is found, and the next save of a remembered user updates it.
func TestIndexRebuiltByAnotherStoreIsNotStale(t *testing.T) {
	ctx := t.Context()
	b := casstore.NewMemoryBackend()
	long := casstore.New(b, casstore.Options{})
	toks := saveUsers(t, long, 6)
	for _, tok := range toks { // long has every bucket at its latest generation
		if _, err := long.FindToken(ctx, &tokenstore.Token{UserName: tok.UserName}); err != nil {
			t.Fatal(err)
		}
	}
	deleteIndex(t, b)
	late := &tokenstore.Token{UserName: "late@example.com", RefreshToken: "rt-late"}
	if err := casstore.New(b, casstore.Options{}).SaveToken(ctx, late); err != nil {
		t.Fatal(err) // rebuilds the index, then inserts
	}
	got, err := long.FindToken(ctx, &tokenstore.Token{UserName: late.UserName})
	if err != nil || got.ID != late.ID {
		t.Fatalf("FindToken of a token indexed after the rebuild: %v, %v", got, err)
	}
	if err := long.SaveToken(ctx, &tokenstore.Token{UserName: toks[2].UserName, AccessToken: "after-rebuild"}); err != nil {
		t.Fatal(err)
	}
	all, err := long.Tokens(ctx)
	if err != nil || len(all) != len(toks)+1 {
		t.Fatalf("Tokens: %d (%v), want %d", len(all), err, len(toks)+1)
	}
	if rep := mustCheck(t, long); !rep.OK() {
		t.Fatalf("after the rebuild: %s", rep)
	}
}

// Repair recreates a lost bucket, re-indexes an unindexed document, drops
// dead entries, resolves a duplicate by keeping the record saved last,
// removes old tombstones and leaves corrupt documents alone; a second run
// changes nothing.
func TestRepair(t *testing.T) {
	ctx := t.Context()
	b := casstore.NewMemoryBackend()
	now := time.Now()
	clock := func() time.Time { return now }
	s := casstore.New(b, casstore.Options{IndexShards: 4, Clock: clock, TombstoneTTL: time.Hour})
	toks := saveUsers(t, s, 20)

	// A lost bucket.
	if err := b.Delete(ctx, casstore.IndexName(2)); err != nil {
		t.Fatal(err)
	}
	// An unindexed document with the key of nobody else (an orphan an
	// earlier version left).
	orphan := &tokenstore.Token{ID: "orphan1", UserName: "orphan@example.com", AccessToken: "acc-o"}
	doc, _ := tokenstore.MarshalStored(orphan, tokenstore.Meta{Gen: 1, SavedAt: now.UnixMilli()})
	b.Put(casstore.TokenName(orphan.ID), doc)
	// A second record of user 5, saved after the indexed one: it wins.
	dup := toks[5].Clone()
	dup.ID, dup.AccessToken = "dup5", "acc-newer"
	doc, _ = tokenstore.MarshalStored(dup, tokenstore.Meta{Gen: 1, SavedAt: now.Add(time.Minute).UnixMilli()})
	b.Put(casstore.TokenName(dup.ID), doc)
	// An old tombstone nobody points at, and a corrupt document.
	doc, _ = tokenstore.MarshalStored(&tokenstore.Token{ID: "tomb1"}, tokenstore.Meta{Gen: 3, Deleted: now.Add(-2 * time.Hour).UnixMilli()})
	b.Put(casstore.TokenName("tomb1"), doc)
	b.Put(casstore.TokenName("corrupt1"), []byte("{not json"))

	rep := mustCheck(t, s)
	if rep.OK() || len(rep.MissingBuckets) != 1 || len(rep.Unindexed) < 2 || len(rep.Duplicates) == 0 || len(rep.Corrupt) != 1 {
		t.Fatalf("Check before Repair: %s", rep)
	}
	repaired, err := s.Repair(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Repair: %s", repaired)
	if repaired.BucketsRebuilt != 1 || repaired.DuplicatesRemoved != 1 || repaired.TombstonesRemoved != 1 || repaired.EntriesAdded == 0 ||
		len(repaired.Corrupt) != 1 || repaired.Tokens != 21 {
		t.Fatalf("Repair report: %s", repaired)
	}
	after := mustCheck(t, s)
	corrupt := after.Corrupt
	after.Corrupt = nil
	if len(corrupt) != 1 || !after.OK() {
		t.Fatalf("Check after Repair (only the corrupt document may remain): %s", after)
	}
	got, err := s.FindToken(ctx, &tokenstore.Token{UserName: toks[5].UserName})
	if err != nil || got.ID != "dup5" || got.AccessToken != "acc-newer" {
		t.Fatalf("the record saved last must be kept: %v %v", got, err)
	}
	if _, err := s.FindToken(ctx, &tokenstore.Token{UserName: orphan.UserName}); err != nil {
		t.Fatalf("the orphan is findable after Repair: %v", err)
	}
	again, err := s.Repair(ctx)
	if err != nil || again.Changed() {
		t.Fatalf("a second Repair changed %s (%v)", again, err)
	}
}

// A document edited out of band under another ID is reported as
// malformed, not retried into a conflict; another user's JSON pasted
// under the same ID blocks nobody.
func TestOutOfBandEdits(t *testing.T) {
	ctx := t.Context()
	b := casstore.NewMemoryBackend()
	opts := crashOptions(1)
	s := casstore.New(b, opts)
	toks := saveUsers(t, s, 2)
	// token-0 now holds user 1's JSON, ID included.
	obj, _ := b.Read(ctx, casstore.TokenName(toks[1].ID))
	b.Put(casstore.TokenName(toks[0].ID), obj.Value)
	err := s.SaveToken(ctx, &tokenstore.Token{UserName: toks[0].UserName, AccessToken: "x"})
	if !errors.Is(err, tokenstore.ErrMalformed) {
		t.Fatalf("save of a user whose document is corrupt: %v, want ErrMalformed", err)
	}
	// token-0 holds another user's data under its own ID.
	other := toks[1].Clone()
	other.ID, other.UserName = toks[0].ID, "someone-else@example.com"
	doc, _ := tokenstore.MarshalStored(other, tokenstore.Meta{Gen: 1})
	b.Put(casstore.TokenName(toks[0].ID), doc)
	s2 := casstore.New(b, opts)
	if err := s2.SaveToken(ctx, &tokenstore.Token{UserName: toks[0].UserName, AccessToken: "back"}); err != nil {
		t.Fatalf("save of the user whose document was overwritten: %v", err)
	}
}

// DeleteTokens deletes documents the index does not list as well, so no
// secret with live token values stays behind.
func TestDeleteTokensRemovesUnlistedDocuments(t *testing.T) {
	ctx := t.Context()
	b := casstore.NewMemoryBackend()
	s := casstore.New(b, casstore.Options{})
	saveUsers(t, s, 3)
	doc, _ := tokenstore.MarshalStored(&tokenstore.Token{ID: "unlisted", UserName: "ghost", AccessToken: "live"}, tokenstore.Meta{Gen: 1})
	b.Put(casstore.TokenName("unlisted"), doc)
	if err := s.DeleteTokens(ctx); err != nil {
		t.Fatal(err)
	}
	names, _ := b.List(ctx)
	for _, n := range names {
		if strings.HasPrefix(n, "token-") {
			t.Fatalf("%s left after DeleteTokens", n)
		}
	}
}

// A Repair in another process that rebuilds a lost bucket 0 lays the
// index out anew, smaller than the layout a live Store knows: that Store
// learns the new layout from bucket 0 when a bucket it expects is gone,
// and finds every token.
func TestStoreFollowsAnIndexRebuiltSmaller(t *testing.T) {
	ctx := t.Context()
	b := casstore.NewMemoryBackend()
	live := casstore.New(b, casstore.Options{IndexShards: 8, StaleReadWait: time.Millisecond})
	var toks []*tokenstore.Token
	for i := range 20 {
		tok := zohoToken(i)
		if err := live.SaveToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
	}
	if err := b.Delete(ctx, casstore.IndexName(0)); err != nil {
		t.Fatal(err)
	}
	rep, err := casstore.New(b, casstore.Options{}).Repair(ctx)
	if err != nil {
		t.Fatal(err)
	}
	after, err := casstore.New(b, casstore.Options{}).Check(ctx)
	if err != nil || !after.OK() || after.Buckets >= 8 {
		t.Fatalf("after Repair (%v): %v, %v; want a clean index smaller than 8 buckets for the test to mean anything", rep, after, err)
	}
	for _, tok := range toks {
		got, err := live.FindToken(ctx, &tokenstore.Token{UserName: tok.UserName, ClientID: tok.ClientID})
		if err != nil || got.ID != tok.ID {
			t.Fatalf("FindToken(%s) by the Store that knew 8 buckets: %v, %v", tok.UserName, got, err)
		}
	}
}

// halfDeleted is a backend whose delete takes two steps and stopped half
// way for the names in left (Vault: a deletion marker, or a purge cut
// short, holding earlier versions): they read as not found and
// unfinished, are still listed, and Delete finishes them.
type halfDeleted struct {
	*casstore.MemoryBackend
	left map[string]bool
}

func (h *halfDeleted) Read(ctx context.Context, name string) (casstore.Object, error) {
	if h.left[name] {
		return casstore.Object{}, fmt.Errorf("%w: %w: %s", tokenstore.ErrNotFound, casstore.ErrDeleteUnfinished, name)
	}
	return h.MemoryBackend.Read(ctx, name)
}

func (h *halfDeleted) ReadMany(ctx context.Context, names []string) ([]casstore.Result, error) {
	res, err := h.MemoryBackend.ReadMany(ctx, names)
	for i := range res {
		if h.left[names[i]] {
			res[i] = casstore.Result{Name: names[i], Err: fmt.Errorf("%w: %w: %s", tokenstore.ErrNotFound, casstore.ErrDeleteUnfinished, names[i])}
		}
	}
	return res, err
}

func (h *halfDeleted) Create(ctx context.Context, name string, value []byte) (string, error) {
	if h.left[name] { // the create finishes the delete first
		delete(h.left, name)
		_ = h.MemoryBackend.Delete(ctx, name)
	}
	return h.MemoryBackend.Create(ctx, name, value)
}

func (h *halfDeleted) Delete(ctx context.Context, name string) error {
	if h.left[name] {
		delete(h.left, name)
		_ = h.MemoryBackend.Delete(ctx, name)
		return fmt.Errorf("%w: %s", tokenstore.ErrNotFound, name)
	}
	return h.MemoryBackend.Delete(ctx, name)
}

// A token document whose delete stopped half way in the backend is not a
// token (not found, not listed by Tokens, its user can sign in again);
// Check reports it, Repair finishes the delete, and then both are clean.
func TestRepairFinishesUnfinishedDeletes(t *testing.T) {
	ctx := t.Context()
	b := &halfDeleted{MemoryBackend: casstore.NewMemoryBackend(), left: map[string]bool{}}
	s := casstore.New(b, casstore.Options{ClaimWait: time.Millisecond})
	toks := saveUsers(t, s, 5)
	if err := s.DeleteToken(ctx, toks[1].ID); err != nil {
		t.Fatal(err)
	}
	// The delete of toks[1] stopped half way; toks[3]'s too, and before
	// the index entry went (the kill came in the middle of the purge).
	b.left[casstore.TokenName(toks[1].ID)] = true
	b.left[casstore.TokenName(toks[3].ID)] = true
	b.MemoryBackend.Put(casstore.TokenName(toks[1].ID), []byte("{}")) // what the backend still holds
	s = casstore.New(b, casstore.Options{ClaimWait: time.Millisecond})
	if _, err := s.FindToken(ctx, &tokenstore.Token{UserName: toks[3].UserName}); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Fatalf("FindToken of a half-deleted token: %v; want ErrNotFound", err)
	}
	all, err := s.Tokens(ctx)
	if err != nil || len(all) != 3 {
		t.Fatalf("Tokens: %d, %v; want 3", len(all), err)
	}
	rep := mustCheck(t, s)
	if rep.OK() || len(rep.UnfinishedDeletes) != 2 || !strings.Contains(rep.String(), "unfinished deletes") {
		t.Fatalf("Check: %s; want 2 unfinished deletes", rep)
	}
	// toks[1] has no index entry: Repair deletes it. toks[3]'s entries
	// point at it, so Repair fences them first, and the fence's create
	// finishes that delete.
	rr, err := s.Repair(ctx)
	if err != nil || rr.DeletesFinished != 1 || rr.ClaimsExpired != 1 {
		t.Fatalf("Repair: %s, %v; want 1 delete finished and 1 claim expired", rr, err)
	}
	if len(b.left) != 0 {
		t.Fatalf("after Repair %d deletes are unfinished", len(b.left))
	}
	if names, _ := b.List(ctx); strings.Contains(strings.Join(names, " "), toks[1].ID) {
		t.Fatalf("after Repair the backend still lists %v", names)
	}
	if rep := mustCheck(t, s); !rep.OK() || rep.Tokens != 3 {
		t.Fatalf("Check after Repair: %s", rep)
	}
	if rr, err := s.Repair(ctx); err != nil || rr.Changed() {
		t.Fatalf("second Repair: %s, %v", rr, err)
	}
	if err := s.SaveToken(ctx, &tokenstore.Token{UserName: toks[3].UserName, AccessToken: "again"}); err != nil {
		t.Fatal(err)
	}
}
