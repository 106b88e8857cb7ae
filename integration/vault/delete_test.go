package vault_test

import (
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"testing"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
	ctvault "github.com/cloudtokens/cloudtokens/vault"
)

// metadata returns the KV v2 metadata of document name, or nil when the
// entry does not exist.
func metadata(t *testing.T, e *env, name string) map[string]any {
	t.Helper()
	s, err := rootClient(t).Logical().ReadWithContext(ctxT(t), e.store.Backend().MetadataPath(name))
	if err != nil {
		t.Fatal(err)
	}
	if s == nil {
		return nil
	}
	return s.Data
}

// version reads version v of document name: its data, or nil when that
// version is deleted, destroyed or gone.
func version(t *testing.T, e *env, name string, v int) map[string]any {
	t.Helper()
	s, err := rootClient(t).Logical().ReadWithDataWithContext(ctxT(t), e.store.Backend().DataPath(name), map[string][]string{"version": {strconv.Itoa(v)}})
	if err != nil {
		t.Fatal(err)
	}
	if s == nil {
		return nil
	}
	d, _ := s.Data["data"].(map[string]any)
	return d
}

func TestDeleteRemovesAllVersions(t *testing.T) {
	e := newEnv(t, "")
	a := alice()
	mustSave(t, e.store, a)
	mustSave(t, e.store, &tokenstore.Token{ID: a.ID, AccessToken: "1000.access-2"})
	name := casstore.TokenName(a.ID)
	if md := metadata(t, e, name); md == nil || md["current_version"] != json.Number("2") {
		t.Fatalf("metadata before delete: %v", md)
	}
	if err := e.store.DeleteToken(ctxT(t), a.ID); err != nil {
		t.Fatal(err)
	}
	if md := metadata(t, e, name); md != nil {
		t.Errorf("metadata after DeleteToken: %v, want none (every version deleted)", md)
	}
	for v := 1; v <= 3; v++ {
		if d := version(t, e, name, v); d != nil {
			t.Errorf("version %d readable after DeleteToken", v)
		}
	}
	if _, err := e.store.FindTokenByID(ctxT(t), a.ID); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Errorf("FindTokenByID after delete: %v", err)
	}
	names, err := e.store.Backend().List(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if n == name {
			t.Errorf("List after DeleteToken still has %s", n)
		}
	}
}

func TestSoftDeleteKeepsHistory(t *testing.T) {
	e := newEnv(t, "", ctvault.WithSoftDelete())
	a := alice()
	mustSave(t, e.store, a)
	mustSave(t, e.store, &tokenstore.Token{ID: a.ID, AccessToken: "1000.access-2"})
	if err := e.store.DeleteToken(ctxT(t), a.ID); err != nil {
		t.Fatal(err)
	}
	name := casstore.TokenName(a.ID)
	md := metadata(t, e, name)
	if md == nil {
		t.Fatal("metadata gone after a soft delete")
	}
	if md["current_version"] != json.Number("3") {
		t.Errorf("current_version %v, want 3 (the deletion marker)", md["current_version"])
	}
	versions, _ := md["versions"].(map[string]any)
	if v3, _ := versions["3"].(map[string]any); v3 == nil || v3["deletion_time"] == "" {
		t.Errorf("the marker version is not soft-deleted: %v", versions["3"])
	}
	// The token's last version is recoverable, as the same document.
	d := version(t, e, name, 2)
	doc, _ := d[ctvault.DocumentField].(string)
	got, err := tokenstore.UnmarshalDocument([]byte(doc))
	if err != nil || got.ID != a.ID || got.AccessToken != "1000.access-2" || got.RefreshToken != a.RefreshToken {
		t.Fatalf("recovering version 2: %v, %v", got, err)
	}
	// For the store it is gone.
	if _, err := e.store.FindTokenByID(ctxT(t), a.ID); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Errorf("FindTokenByID after soft delete: %v", err)
	}
	if err := e.store.DeleteToken(ctxT(t), a.ID); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Errorf("second DeleteToken: %v, want ErrNotFound", err)
	}
	if toks, err := e.store.Tokens(ctxT(t)); err != nil || len(toks) != 0 {
		t.Errorf("Tokens after soft delete: %v, %v", toks, err)
	}
	if r, err := e.store.Check(ctxT(t)); err != nil || !r.OK() {
		t.Errorf("Check after soft delete: %v, %v", r, err)
	}
	// Recovery: save the old version as a new token.
	got.ID = ""
	mustSave(t, e.store, got)
	if f, err := e.store.FindToken(ctxT(t), &tokenstore.Token{UserName: a.UserName}); err != nil || f.ID != got.ID {
		t.Errorf("recovered token: %v, %v", f, err)
	}
}

// Of several concurrent deletes of one token, through two stores, exactly
// one succeeds; the others get ErrNotFound.
func TestConcurrentDeleteExactlyOnce(t *testing.T) {
	for _, soft := range []bool{false, true} {
		name := "Hard"
		var opts []ctvault.Option
		if soft {
			name, opts = "Soft", []ctvault.Option{ctvault.WithSoftDelete()}
		}
		t.Run(name, func(t *testing.T) {
			prefix := newPrefix(t)
			s1, s2 := newEnv(t, prefix, opts...).store, newEnv(t, prefix, opts...).store
			for round := range 5 {
				a := &tokenstore.Token{UserName: "del", AccessToken: "1000.a"}
				mustSave(t, s1, a)
				var wg sync.WaitGroup
				errs := make([]error, 8)
				for i := range errs {
					s := s1
					if i%2 == 1 {
						s = s2
					}
					wg.Go(func() { errs[i] = s.DeleteToken(ctxT(t), a.ID) })
				}
				wg.Wait()
				ok := 0
				for _, err := range errs {
					switch {
					case err == nil:
						ok++
					case !errors.Is(err, tokenstore.ErrNotFound):
						t.Errorf("round %d: DeleteToken: %v", round, err)
					}
				}
				if ok != 1 {
					t.Errorf("round %d: %d deletes succeeded, want exactly 1", round, ok)
				}
			}
		})
	}
}

// Backend semantics: check-and-set on create, update and delete.
func TestBackendCheckAndSet(t *testing.T) {
	for _, soft := range []bool{false, true} {
		name := "Hard"
		var opts []ctvault.Option
		if soft {
			name, opts = "Soft", []ctvault.Option{ctvault.WithSoftDelete()}
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, "", opts...)
			b := e.store.Backend()
			ctx := ctxT(t)
			const doc = "token-abc"
			if _, err := b.Read(ctx, doc); !errors.Is(err, tokenstore.ErrNotFound) {
				t.Fatalf("Read of a missing entry: %v", err)
			}
			if _, err := b.Update(ctx, doc, []byte(`{}`), "1"); !errors.Is(err, casstore.ErrVersionMismatch) {
				t.Errorf("Update of a missing entry: %v, want ErrVersionMismatch", err)
			}
			if err := b.Delete(ctx, doc); !errors.Is(err, tokenstore.ErrNotFound) {
				t.Errorf("Delete of a missing entry: %v, want ErrNotFound", err)
			}
			v1, err := b.Create(ctx, doc, []byte(`{"n":1}`))
			if err != nil || v1 != "1" {
				t.Fatalf("Create: %q, %v", v1, err)
			}
			if _, err := b.Create(ctx, doc, []byte(`{"n":2}`)); !errors.Is(err, casstore.ErrExists) {
				t.Errorf("Create over an existing entry: %v, want ErrExists", err)
			}
			v2, err := b.Update(ctx, doc, []byte(`{"n":2}`), v1)
			if err != nil || v2 != "2" {
				t.Fatalf("Update: %q, %v", v2, err)
			}
			if _, err := b.Update(ctx, doc, []byte(`{"n":3}`), v1); !errors.Is(err, casstore.ErrVersionMismatch) {
				t.Errorf("Update with a stale version: %v, want ErrVersionMismatch", err)
			}
			if o, err := b.Read(ctx, doc); err != nil || string(o.Value) != `{"n":2}` || o.Version != v2 {
				t.Errorf("Read: %q %q, %v", o.Value, o.Version, err)
			}
			if err := b.Delete(ctx, doc); err != nil {
				t.Fatal(err)
			}
			// An update based on a version read before the delete must not
			// bring the entry back.
			if _, err := b.Update(ctx, doc, []byte(`{"n":4}`), v2); !errors.Is(err, casstore.ErrVersionMismatch) {
				t.Errorf("Update after Delete: %v, want ErrVersionMismatch", err)
			}
			if _, err := b.Read(ctx, doc); !errors.Is(err, tokenstore.ErrNotFound) {
				t.Errorf("Read after Delete: %v, want ErrNotFound", err)
			}
			// A deleted entry can be created again (the index entries are).
			if _, err := b.Create(ctx, doc, []byte(`{"n":5}`)); err != nil {
				t.Errorf("Create after Delete: %v", err)
			}
			if o, err := b.Read(ctx, doc); err != nil || string(o.Value) != `{"n":5}` {
				t.Errorf("Read after re-create: %q, %v", o.Value, err)
			}
		})
	}
}

// An entry soft-deleted or destroyed by hand (vault kv delete / destroy)
// is not found, and can be created again.
func TestEntryDeletedByHand(t *testing.T) {
	e := newEnv(t, "")
	b := e.store.Backend()
	root := rootClient(t)
	ctx := ctxT(t)
	for _, how := range []string{"delete", "destroy"} {
		doc := "token-" + how
		if _, err := b.Create(ctx, doc, []byte(`{"n":1}`)); err != nil {
			t.Fatal(err)
		}
		var err error
		if how == "delete" {
			_, err = root.Logical().DeleteWithContext(ctx, b.DataPath(doc))
		} else {
			_, err = root.Logical().WriteWithContext(ctx, e.store.Backend().Mount()+"/destroy/"+b.Prefix()+"/"+doc, map[string]any{"versions": []int{1}})
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Read(ctx, doc); !errors.Is(err, tokenstore.ErrNotFound) {
			t.Errorf("%s: Read: %v, want ErrNotFound", how, err)
		}
		if err := b.Delete(ctx, doc); !errors.Is(err, tokenstore.ErrNotFound) {
			t.Errorf("%s: Delete: %v, want ErrNotFound", how, err)
		}
		if v, err := b.Create(ctx, doc, []byte(`{"n":2}`)); err != nil || v != "2" {
			t.Errorf("%s: Create: %q, %v", how, v, err)
		}
	}
}

func TestMaxVersions(t *testing.T) {
	for _, tc := range []struct {
		opts []ctvault.Option
		want json.Number
	}{
		{nil, json.Number("5")},
		{[]ctvault.Option{ctvault.WithMaxVersions(2)}, "2"},
		{[]ctvault.Option{ctvault.WithMaxVersions(0)}, "0"},
	} {
		e := newEnv(t, "", tc.opts...)
		a := alice()
		mustSave(t, e.store, a)
		for range 6 {
			mustSave(t, e.store, &tokenstore.Token{ID: a.ID, AccessToken: "1000.access-" + randomHex(4)})
		}
		for _, name := range []string{casstore.TokenName(a.ID), casstore.IndexName(0)} {
			md := metadata(t, e, name)
			if md["max_versions"] != tc.want {
				t.Errorf("%s: max_versions %v, want %v", name, md["max_versions"], tc.want)
			}
		}
		md := metadata(t, e, casstore.TokenName(a.ID))
		versions, _ := md["versions"].(map[string]any)
		kept := tc.want
		if kept == "0" {
			kept = "10" // Vault's default
		}
		if n, _ := kept.Int64(); int64(len(versions)) != min(n, 7) {
			t.Errorf("max_versions %v: %d versions kept of 7", tc.want, len(versions))
		}
	}
}

// The document is stored as a string field, byte for byte, readable by
// any Vault client.
func TestDocumentRoundTripAndHumanReadable(t *testing.T) {
	e := newEnv(t, "")
	b := e.store.Backend()
	ctx := ctxT(t)
	value := []byte("{\"a\":\"<&> \\u2028 \u00e9\u4e16\U0001F600 \\\"q\\\" \\\\ \\n\",\"b\":1.50,\"c\" : [ ]}")
	v, err := b.Create(ctx, "token-bytes", value)
	if err != nil {
		t.Fatal(err)
	}
	o, err := b.Read(ctx, "token-bytes")
	if err != nil || string(o.Value) != string(value) || o.Version != v {
		t.Errorf("round trip: %q (version %s), %v; want %q", o.Value, o.Version, err, value)
	}

	a := alice()
	mustSave(t, e.store, a)
	s, err := rootClient(t).KVv2("secret").Get(ctx, e.prefix+"/"+casstore.TokenName(a.ID))
	if err != nil {
		t.Fatal(err)
	}
	doc, ok := s.Data[ctvault.DocumentField].(string)
	if !ok || len(s.Data) != 1 {
		t.Fatalf("entry data %v, want one string field %q", s.Data, ctvault.DocumentField)
	}
	var fields map[string]any
	if err := json.Unmarshal([]byte(doc), &fields); err != nil || fields["user_name"] != a.UserName || fields["format"] != 1.0 {
		t.Errorf("the document is not the token JSON: %v, %v", fields, err)
	}
}
