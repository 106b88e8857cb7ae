package transfer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
)

var base = time.UnixMilli(1767225600000).UTC()

func tok(id, user string, exp time.Duration) *tokenstore.Token {
	return &tokenstore.Token{
		ID: id, UserName: user, ClientID: "1000.C", ClientSecret: "sec-" + user,
		RefreshToken: "rt-" + user, AccessToken: "at-" + user, Expiry: base.Add(exp),
	}
}

func items(ts ...*tokenstore.Token) []Item {
	var out []Item
	for _, t := range ts {
		out = append(out, Item{Token: t, Pos: "id " + t.ID})
	}
	return out
}

func copyOK(t *testing.T, target tokenstore.Store, in []Item, opts Options) *Result {
	t.Helper()
	res, err := Copy(context.Background(), target, in, opts)
	if err != nil {
		t.Fatalf("Copy: %v", err)
	}
	return res
}

func TestCopyKeepsIDsAndIsIdempotent(t *testing.T) {
	ctx := context.Background()
	src := []*tokenstore.Token{tok("a1", "alice", 0), tok("b2", "bob", time.Hour), tok("c3", "carol", 2*time.Hour)}
	dst := tokenstore.NewMemoryStore()
	res := copyOK(t, dst, items(src...), Options{})
	if res.Inserted != 3 || res.Verified != 3 || len(res.Problems) != 0 {
		t.Fatalf("first copy: %+v", res)
	}
	for _, s := range src {
		got, err := dst.FindTokenByID(ctx, s.ID)
		if err != nil || *got != *s {
			t.Errorf("%s: stored %+v, %v; want %+v", s.ID, got, err, s)
		}
	}
	again := copyOK(t, dst, items(src...), Options{})
	if again.Copied() != 0 || again.Unchanged != 3 || again.Verified != 3 || again.Digest != res.Digest {
		t.Fatalf("rerun: %+v (first digest %s)", again, res.Digest)
	}
}

func TestCopyNewerRule(t *testing.T) {
	ctx := context.Background()
	dst := tokenstore.NewMemoryStore()
	copyOK(t, dst, items(tok("a1", "alice", 0), tok("b2", "bob", 0), tok("c3", "carol", 0)), Options{})

	newer := tok("a1", "alice", time.Hour) // refreshed in the source since
	newer.AccessToken = "at-alice-2"
	older := tok("b2", "bob", -time.Hour) // the target was refreshed since
	older.AccessToken = "at-bob-0"
	same := tok("c3", "carol", 0) // same expiry, other contents
	same.RedirectURL = "https://elsewhere"
	res := copyOK(t, dst, items(newer, older, same), Options{})
	if res.Updated != 1 || res.KeptNewer != 1 || res.Count(KindDiffers) != 1 || res.Verified != 1 {
		t.Fatalf("result %+v", res)
	}
	if got, _ := dst.FindTokenByID(ctx, "a1"); got.AccessToken != "at-alice-2" {
		t.Errorf("a1 not updated: %v", got)
	}
	if got, _ := dst.FindTokenByID(ctx, "b2"); got.AccessToken != "at-bob" {
		t.Errorf("b2 overwritten by an older record: %v", got)
	}
	if got, _ := dst.FindTokenByID(ctx, "c3"); got.RedirectURL != "" {
		t.Errorf("c3 overwritten without --overwrite: %v", got)
	}
	res = copyOK(t, dst, items(older, same), Options{Overwrite: true})
	if res.Updated != 2 || len(res.Problems) != 0 || res.Verified != 2 {
		t.Fatalf("overwrite: %+v", res)
	}
	if got, _ := dst.FindTokenByID(ctx, "c3"); got.RedirectURL != "https://elsewhere" {
		t.Errorf("c3 not overwritten: %v", got)
	}
}

// Two Zoho stores both number their rows from 1: the second import must
// not replace the first one's records.
func TestCopyIDOfAnotherToken(t *testing.T) {
	ctx := context.Background()
	dst := tokenstore.NewMemoryStore()
	copyOK(t, dst, items(tok("1", "alice", 0)), Options{})
	res := copyOK(t, dst, items(tok("1", "zed", time.Hour)), Options{})
	if res.Count(KindConflict) != 1 || res.Copied() != 0 {
		t.Fatalf("result %+v", res)
	}
	if got, _ := dst.FindTokenByID(ctx, "1"); got.UserName != "alice" {
		t.Errorf("record 1 replaced by another user's: %v", got)
	}
	// A record whose keys another record holds is a conflict too.
	res = copyOK(t, dst, items(tok("2", "alice", time.Hour)), Options{})
	if res.Count(KindConflict) != 1 || res.Copied() != 0 {
		t.Fatalf("same user under another ID: %+v", res)
	}
}

func TestCopyBadRecords(t *testing.T) {
	dst := tokenstore.NewMemoryStore()
	noSecret := &tokenstore.Token{ID: "n1", UserName: "nobody"}
	badUTF8 := tok("u1", "bad\xffname", 0)
	badID := tok("x/y", "xavier", 0)
	noID := tok("", "nadia", 0)
	in := append(items(tok("ok1", "olga", 0), noSecret, badUTF8, badID, noID, tok("d1", "dan", 0), tok("d1", "dora", 0)),
		Item{Pos: "line 9", Err: errors.New("expiry_time \"soon\" is not epoch milliseconds")})
	res := copyOK(t, dst, in, Options{})
	if res.Read != 8 || res.Inserted != 1 || res.Count(KindInvalid) != 5 || res.Count(KindDuplicate) != 2 {
		t.Fatalf("result %+v", res)
	}
	for _, p := range res.Problems {
		for _, secret := range []string{"rt-", "at-", "sec-"} {
			if strings.Contains(p.Reason, secret) {
				t.Errorf("problem %+v quotes a secret", p)
			}
		}
	}
}

func TestCopyNewIDs(t *testing.T) {
	ctx := context.Background()
	dst := tokenstore.NewMemoryStore()
	in := items(tok("1", "alice", 0), tok("2", "bob", 0))
	res := copyOK(t, dst, in, Options{Mode: NewIDs})
	if res.Inserted != 2 || res.Verified != 2 {
		t.Fatalf("first: %+v", res)
	}
	all, _ := dst.Tokens(ctx)
	for _, s := range all {
		if s.ID == "1" || s.ID == "2" {
			t.Errorf("kept the source ID %q with NewIDs", s.ID)
		}
	}
	// Rerun: found by user name, identical: nothing written.
	res = copyOK(t, dst, in, Options{Mode: NewIDs})
	if res.Copied() != 0 || res.Unchanged != 2 || res.Verified != 2 {
		t.Fatalf("rerun: %+v", res)
	}
	// A newer record of alice updates hers.
	n := tok("99", "alice", time.Hour)
	n.AccessToken = "at-alice-2"
	res = copyOK(t, dst, items(n), Options{Mode: NewIDs})
	if res.Updated != 1 || res.Verified != 1 {
		t.Fatalf("newer: %+v", res)
	}
	if got, err := dst.FindToken(ctx, &tokenstore.Token{UserName: "alice"}); err != nil || got.AccessToken != "at-alice-2" {
		t.Errorf("alice: %v %v", got, err)
	}
	if all, _ := dst.Tokens(ctx); len(all) != 2 {
		t.Errorf("%d records, want 2", len(all))
	}
}

func TestCopyDryRun(t *testing.T) {
	ctx := context.Background()
	dst := tokenstore.NewMemoryStore()
	res := copyOK(t, dst, items(tok("a", "alice", 0), tok("b", "bob", 0)), Options{DryRun: true})
	if res.Inserted != 2 || res.Verified != 0 || !res.DryRun {
		t.Fatalf("dry run: %+v", res)
	}
	if all, _ := dst.Tokens(ctx); len(all) != 0 {
		t.Fatalf("a dry run wrote %d records", len(all))
	}
}

// storeOnly hides every method but those of tokenstore.Store: a store
// without the Importer extension.
type storeOnly struct{ tokenstore.Store }

func TestCopyNeedsImporter(t *testing.T) {
	_, err := Copy(context.Background(), storeOnly{tokenstore.NewMemoryStore()}, items(tok("a", "alice", 0)), Options{})
	if !errors.Is(err, ErrNoImporter) {
		t.Fatalf("Copy into a store without ImportToken: %v, want ErrNoImporter", err)
	}
	res, err := Copy(context.Background(), storeOnly{tokenstore.NewMemoryStore()}, items(tok("a", "alice", 0)), Options{Mode: NewIDs})
	if err != nil || res.Inserted != 1 || res.Verified != 1 {
		t.Fatalf("NewIDs into a store without ImportToken: %+v %v", res, err)
	}
}

// failing fails every write after the first n. It imports one token at a
// time (it is not a tokenstore.BatchImporter).
type failing struct {
	tokenstore.Store
	mem       *tokenstore.MemoryStore
	n, writes int
}

func newFailing(n int) *failing {
	m := tokenstore.NewMemoryStore()
	return &failing{Store: m, mem: m, n: n}
}

func (f *failing) ImportToken(ctx context.Context, t *tokenstore.Token) error {
	f.writes++
	if f.writes > f.n {
		return errors.New("AccessDeniedException: not authorized")
	}
	return f.mem.ImportToken(ctx, t)
}

func TestCopyStopsAfterConsecutiveFailures(t *testing.T) {
	var in []Item
	for i := range 50 {
		in = append(in, items(tok(fmt.Sprintf("t%02d", i), fmt.Sprintf("user%02d", i), 0))...)
	}
	f := newFailing(5)
	res, err := Copy(context.Background(), f, in, Options{MaxFailures: 3})
	if !errors.Is(err, ErrTooManyFailures) || res.Inserted != 5 || res.Count(KindFailed) != 3 || f.writes != 8 {
		t.Fatalf("err %v, result %+v, %d writes", err, res, f.writes)
	}
}

func TestCopyParallel(t *testing.T) {
	ctx := context.Background()
	var src []*tokenstore.Token
	for i := range 300 {
		src = append(src, tok(fmt.Sprintf("p%03d", i), fmt.Sprintf("user%03d", i), time.Duration(i)*time.Minute))
	}
	dst := tokenstore.NewMemoryStore()
	// One record of the target is newer, one belongs to another user.
	newer := tok("p007", "user007", time.Hour*24)
	other := tok("p008", "mallory", 0)
	for _, x := range []*tokenstore.Token{newer, other} {
		if err := dst.ImportToken(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	res := copyOK(t, dst, items(src...), Options{Workers: 8})
	if res.Inserted != 298 || res.KeptNewer != 1 || res.Count(KindConflict) != 1 || res.Verified != 298 {
		t.Fatalf("parallel copy: %+v", res)
	}
	again := copyOK(t, dst, items(src...), Options{Workers: 8})
	if again.Copied() != 0 || again.Unchanged != 298 || again.Digest != res.Digest {
		t.Fatalf("parallel rerun: %+v", again)
	}
}
