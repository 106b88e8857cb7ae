package casstore_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore/casstoretest"
)

func importTok(i int) *tokenstore.Token {
	t := zohoToken(i)
	t.ID = fmt.Sprintf("imp-%05d", i)
	return t
}

// A bulk import of 2,000 tokens in batches of 500, on a backend that
// enforces AWS's version quota: every token stored exactly under its ID,
// the index written a few times per batch (so it stays small and no
// secret comes near the quota), and a rerun writes nothing.
func TestImportTokensBatches(t *testing.T) {
	ctx := t.Context()
	clock := casstoretest.NewManualClock(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	mem := casstore.NewMemoryBackend()
	q := casstoretest.NewQuotaBackend(mem, clock.Now)
	s := casstore.New(q, casstore.Options{Clock: clock.Now})
	const n, batch = 2000, 500
	var all []*tokenstore.Token
	for i := range n {
		all = append(all, importTok(i))
	}
	for start := 0; start < n; start += batch {
		for i, err := range s.ImportTokens(ctx, all[start:start+batch]) {
			if err != nil {
				t.Fatalf("token %d: %v", start+i, err)
			}
		}
		clock.Advance(time.Second)
	}
	rep, err := s.Check(ctx)
	if err != nil || !rep.OK() || rep.Tokens != n {
		t.Fatalf("Check: %v %v", rep, err)
	}
	for _, i := range []int{0, 777, n - 1} {
		got, err := s.FindToken(ctx, &tokenstore.Token{UserName: all[i].UserName})
		if err != nil || got.ID != all[i].ID || got.RefreshToken != all[i].RefreshToken {
			t.Fatalf("token %d: %v %v", i, got, err)
		}
	}
	most, name := q.MaxVersions()
	t.Logf("%d tokens imported in batches of %d: %d buckets, most versions of one index secret: %d (%s)", n, batch, rep.Buckets, most, name)
	if most > 40 || rep.Buckets > 128 {
		t.Fatalf("the batches wrote the index too often: %d versions of %s, %d buckets", most, name, rep.Buckets)
	}
	mem.ResetCalls()
	for _, err := range s.ImportTokens(ctx, all[:batch]) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if calls := mem.Calls(); calls["Create"]+calls["Update"]+calls["Delete"] != 0 {
		t.Fatalf("importing the same tokens again wrote %v", calls)
	}
}

// One bad token does not stop the batch: a token whose user belongs to
// another record fails with ErrConflict, an invalid one with
// ErrInvalidToken, the others are imported; and a changed token is
// replaced exactly.
func TestImportTokensPartialFailure(t *testing.T) {
	ctx := t.Context()
	s := casstore.New(casstore.NewMemoryBackend(), crashOptions(1))
	existing := zohoToken(1)
	if err := s.SaveToken(ctx, existing); err != nil {
		t.Fatal(err)
	}
	clash := importTok(1) // same user as existing, another ID
	changed := existing.Clone()
	changed.AccessToken, changed.GrantToken = "replaced", ""
	batch := []*tokenstore.Token{importTok(2), clash, {ID: "bad id", UserName: "x", AccessToken: "a"}, importTok(3), changed}
	errs := s.ImportTokens(ctx, batch)
	if errs[0] != nil || errs[3] != nil || errs[4] != nil {
		t.Fatalf("errors %v", errs)
	}
	if !errors.Is(errs[1], tokenstore.ErrConflict) || !errors.Is(errs[2], tokenstore.ErrInvalidID) {
		t.Fatalf("errors %v", errs)
	}
	got, err := s.FindTokenByID(ctx, existing.ID)
	if err != nil || got.AccessToken != "replaced" || got.GrantToken != "" {
		t.Fatalf("replaced token: %v %v", got, err)
	}
	if _, err := s.FindTokenByID(ctx, clash.ID); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Fatalf("the conflicting token was stored: %v", err)
	}
	if rep, _ := s.Check(ctx); !rep.OK() {
		t.Fatalf("Check: %s", rep)
	}
}

// Batch imports under random faults: afterwards every token whose import
// succeeded is stored exactly, none is duplicated, and Check is clean
// after Repair.
func TestImportTokensFaults(t *testing.T) {
	ctx := t.Context()
	mem := casstore.NewMemoryBackend()
	fb := casstoretest.NewFaultBackend(mem).Random(7, 0.15)
	s := casstore.New(fb, crashOptions(1))
	var all []*tokenstore.Token
	for i := range 300 {
		all = append(all, importTok(i))
	}
	ok := map[int]bool{}
	for start := 0; start < len(all); start += 100 {
		for i, err := range s.ImportTokens(ctx, all[start:start+100]) {
			if err == nil {
				ok[start+i] = true
			}
		}
	}
	fb.Off()
	clean := casstore.New(mem, crashOptions(1))
	if _, err := clean.Repair(ctx); err != nil {
		t.Fatal(err)
	}
	if rep, _ := clean.Check(ctx); !rep.OK() {
		t.Fatalf("Check after Repair: %s", rep)
	}
	for i := range ok {
		got, err := clean.FindTokenByID(ctx, all[i].ID)
		if err != nil || got.AccessToken != all[i].AccessToken {
			t.Fatalf("acknowledged import %d lost: %v %v", i, got, err)
		}
	}
	t.Logf("%d of %d imports acknowledged under %v faults", len(ok), len(all), fb.Injected())
}
