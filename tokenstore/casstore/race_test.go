package casstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// TestInstancesRace runs four Store instances (each with its own locks and
// cache, like four processes) over one backend: 8 goroutines each save,
// find and delete the same 60 users. Afterwards every surviving user has
// exactly one record and the index matches the documents exactly.
func TestInstancesRace(t *testing.T) {
	ctx := context.Background()
	b := casstore.NewMemoryBackend()
	const instances, workers, users = 4, 8, 60
	stores := make([]*casstore.Store, instances)
	for i := range stores {
		stores[i] = casstore.New(b, casstore.Options{IndexShards: 4, CacheIndex: i%2 == 0})
	}
	user := func(u int) string { return fmt.Sprintf("user-%03d", u) }
	run := func(phase func(s *casstore.Store, w, u int) error) {
		t.Helper()
		var wg sync.WaitGroup
		var failed atomic.Int32
		for i, s := range stores {
			for w := range workers {
				wg.Go(func() {
					for u := w; u < users; u += workers {
						if err := phase(s, i*workers+w, u); err != nil {
							if failed.Add(1) < 5 {
								t.Errorf("user %d: %v", u, err)
							}
						}
					}
				})
			}
		}
		wg.Wait()
	}
	run(func(s *casstore.Store, w, u int) error {
		return s.SaveToken(ctx, &tokenstore.Token{UserName: user(u), ClientID: "cid", ClientSecret: "cs",
			AccessToken: fmt.Sprintf("acc-%d-%d", w, u), RefreshToken: fmt.Sprintf("ref-%d", u)})
	})
	run(func(s *casstore.Store, w, u int) error {
		_, err := s.FindToken(ctx, &tokenstore.Token{UserName: user(u)})
		if err == nil {
			_, err = s.FindToken(ctx, &tokenstore.Token{ClientID: "cid", ClientSecret: "cs", RefreshToken: fmt.Sprintf("ref-%d", u)})
		}
		return err
	})
	var deleted atomic.Int32
	run(func(s *casstore.Store, w, u int) error {
		if u%5 != 0 {
			return s.SaveToken(ctx, &tokenstore.Token{UserName: user(u), AccessToken: fmt.Sprintf("refreshed-%d", w)})
		}
		tok, err := s.FindToken(ctx, &tokenstore.Token{UserName: user(u)})
		if errors.Is(err, tokenstore.ErrNotFound) {
			return nil // another instance deleted it
		}
		if err != nil {
			return err
		}
		err = s.DeleteToken(ctx, tok.ID)
		if err == nil {
			deleted.Add(1)
			return nil
		}
		if errors.Is(err, tokenstore.ErrNotFound) {
			return nil
		}
		return err
	})
	if got := deleted.Load(); got != users/5 {
		t.Errorf("%d successful deletes, want exactly %d", got, users/5)
	}
	all, err := stores[1].Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, tok := range all {
		seen[tok.UserName]++
	}
	for u := range users {
		want := 1
		if u%5 == 0 {
			want = 0
		}
		if seen[user(u)] != want {
			t.Errorf("%s has %d records, want %d", user(u), seen[user(u)], want)
		}
	}
	report, err := stores[0].Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !report.OK() {
		t.Fatalf("index and documents disagree: %v", report)
	}
}
