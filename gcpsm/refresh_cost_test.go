package gcpsm_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/oauthtest"
	"github.com/cloudtokens/cloudtokens/tokensource"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// TestTokenSourceRefreshCost measures one refresh through tokensource
// (lease, provider call, save) on Secret Manager, by request quota kind
// (the project quotas count access, read and write requests apart), for a
// provider that keeps the refresh token (Zoho) and one that rotates it
// (ORY Hydra: the index entry of the refresh token moves too), and for a
// long-running process and a cold one (a new Store and Source per
// refresh, as a function instance that starts per request). It asserts
// the write requests, which set the fleet capacity on the default write
// quota (600 per minute per project); README's table is its log.
func TestTokenSourceRefreshCost(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var offset atomic.Int64 // the Sources' clock runs ahead by this much
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	kinds := func(calls []call) (accesses, reads, writes int) {
		for _, c := range calls {
			switch c.Method {
			case access:
				accesses++
			case get, list, "ListSecretVersions", "GetSecretVersion":
				reads++
			default:
				writes++
			}
		}
		return
	}
	var lines []string
	for _, rotate := range []bool{false, true} {
		prov := oauthtest.Start(t, oauthtest.WithRotation(rotate))
		cfg := tokensource.Config{TokenURL: prov.TokenURL, ClientID: prov.ClientID(), ClientSecret: prov.ClientSecret()}
		prefix := newPrefix()
		user := "cost-" + fmt.Sprint(rotate)
		long, err := tokensource.New(e.store(t, prefix), &tokenstore.Token{UserName: user, GrantToken: prov.IssueGrant(user)}, cfg, tokensource.WithClock(now))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := long.TokenContext(ctx); err != nil {
			t.Fatal(err)
		}
		for _, process := range []string{"long-running", "cold"} {
			for round := range 3 { // a token's first refreshes have no version to destroy yet
				offset.Add(int64(2 * time.Hour))
				src := long
				if process == "cold" {
					if src, err = tokensource.New(e.store(t, prefix), &tokenstore.Token{UserName: user}, cfg, tokensource.WithClock(now)); err != nil {
						t.Fatal(err)
					}
				}
				before := prov.Refreshes()
				e.rec.take()
				if _, err := src.TokenContext(ctx); err != nil {
					t.Fatalf("%s, refresh %d: %v", process, round, err)
				}
				calls := e.rec.take()
				if prov.Refreshes() != before+1 {
					t.Fatalf("%s, round %d: %d provider refreshes, want 1", process, round, prov.Refreshes()-before)
				}
				if round < 2 {
					continue
				}
				a, r, w := kinds(calls)
				provider := "keeps the refresh token"
				wantWrites := 6 // lease and save: AddSecretVersion, UpdateSecret, DestroySecretVersion each
				if rotate {
					provider = "rotates the refresh token"
					wantWrites += 6 // the index: claim the new refresh token, release the old one
				}
				lines = append(lines, fmt.Sprintf("| %s | %s | %d | %d access, %d read, %d write | %s |", provider, process, len(calls), a, r, w, summary(calls)))
				if w != wantWrites {
					t.Errorf("%s, %s: %d write requests per refresh, want %d", provider, process, w, wantWrites)
				}
			}
		}
	}
	t.Logf("one refresh through tokensource (lease, provider call, save), steady state:\n| Provider | Process | Calls | By quota | RPCs |\n|---|---|---|---|---|\n%s", strings.Join(lines, "\n"))
}
