package gcpsm_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/oauthtest"
	"github.com/cloudtokens/cloudtokens/tokensource"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// TestTokenSourceRefreshCost measures one refresh through tokensource on
// Secret Manager, by request quota kind (the project quotas count
// access, read and write requests apart), for a provider that keeps the
// refresh token (Zoho) and one that rotates it (ORY Hydra: the index
// entry of the refresh token moves too), along the three paths a refresh
// takes:
//
//   - owner: the long-running process that saved the token last refreshes
//     it in its early window, without a lease write (its save gave it
//     the lease);
//   - lease: the same process after idling through its window refreshes
//     at expiry with the lease, then the save;
//   - cold: a new Store and Source (a function instance that starts per
//     request, or another process) after the owner's lease lapsed: the
//     lease and the save, from a store that knows nothing.
//
// It asserts the write requests, which set the fleet capacity on the
// default write quota (600 per minute per project); README's table is its
// log. The Sources' clock runs hours ahead while the store judges leases
// by the real one, so a cold round first ends the previous owner's lease
// with a save of the same token through another connection, in place of
// its lapse.
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
		prov := oauthtest.Start(t, oauthtest.WithRotation(rotate), oauthtest.WithReuseDetection(true))
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
		quiet := newStore(t, e.raw, prefix) // not recorded
		for _, path := range []struct {
			name string
			left time.Duration // validity left when the refresh is asked for
			// writes per refresh: AddSecretVersion, UpdateSecret and
			// DestroySecretVersion for the save of the token; the
			// lease is the DestroySecretVersion of the token's previous
			// version, which the save then does not destroy (a
			// rotation adds an index claim and release)
			writes int
		}{
			{"owner, in its window", 90 * time.Second, 3},
			{"lease: after idling through its window", 4 * time.Second, 3},
			{"cold: new Store and Source, lease lapsed", 4 * time.Second, 3},
		} {
			// A secret's first writes have no version to destroy yet: the
			// token's first refreshes (rounds 0 and 1 are not measured),
			// and with rotation an index bucket a split created in this
			// path's rounds, whose write then destroys one version less.
			grew := false
			for round := range 3 {
				st, err := quiet.FindTokenByID(ctx, long.ID())
				if err != nil {
					t.Fatal(err)
				}
				offset.Store(int64(time.Until(st.Expiry.Add(-path.left))))
				src := long
				if strings.HasPrefix(path.name, "cold") {
					if err := quiet.SaveToken(ctx, st); err != nil { // ends the lease
						t.Fatal(err)
					}
					if src, err = tokensource.New(e.store(t, prefix), &tokenstore.Token{UserName: user}, cfg, tokensource.WithClock(now)); err != nil {
						t.Fatal(err)
					}
				}
				before := prov.Refreshes()
				e.rec.take()
				if _, err := src.TokenContext(ctx); err != nil {
					t.Fatalf("%s, refresh %d: %v", path.name, round, err)
				}
				calls := e.rec.take()
				if prov.Refreshes() != before+1 || prov.RefreshTokenReuses() != 0 {
					t.Fatalf("%s, round %d: %d provider refreshes, %d reuses; want 1 and 0", path.name, round, prov.Refreshes()-before, prov.RefreshTokenReuses())
				}
				grew = grew || slices.ContainsFunc(calls, func(c call) bool { return c.Method == "CreateSecret" })
				if round < 2 {
					continue
				}
				a, r, w := kinds(calls)
				provider, wantWrites := "keeps the refresh token", path.writes
				if rotate {
					provider = "rotates the refresh token"
					wantWrites += 6 // the index: claim the new refresh token, release the old one
				}
				lines = append(lines, fmt.Sprintf("| %s | %s | %d | %d access, %d read, %d write | %s |", provider, path.name, len(calls), a, r, w, summary(calls)))
				if w != wantWrites && !(rotate && grew && w == wantWrites-1) {
					t.Errorf("%s, %s: %d write requests per refresh, want %d", provider, path.name, w, wantWrites)
				}
			}
		}
	}
	t.Logf("one refresh through tokensource, steady state:\n| Provider | Path | Calls | By quota kind | RPCs |\n|---|---|---|---|---|\n%s", strings.Join(lines, "\n"))
}
