package aws

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/awssm"
	"github.com/cloudtokens/cloudtokens/integration/backend"
	"github.com/cloudtokens/cloudtokens/oauthtest"
	"github.com/cloudtokens/cloudtokens/tokensource"
	"github.com/cloudtokens/cloudtokens/tokensource/tokensourcetest"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// TestTokenSourceEightProcesses: 8 OS processes ask for one expired token
// stored here, with a provider that rotates refresh tokens. Exactly one
// refresh reaches the provider; the others use the winner's token.
func TestTokenSourceEightProcesses(t *testing.T) {
	res := tokensourcetest.Run(t, tokensourcetest.Config{Processes: 8}, func(tb testing.TB, o tokensourcetest.StoreOptions) tokenstore.Store {
		s, err := awssm.New(tb.Context(), backend.SecretsManager(tb), o.Prefix, awssm.WithForceDelete())
		if err != nil {
			tb.Fatal(err)
		}
		return s
	})
	if res == nil {
		return // a child process
	}
	if res.Refreshes != 1 {
		t.Fatalf("%d refreshes at the provider, want exactly 1 (%d token requests)", res.Refreshes, res.TokenRequests)
	}
	t.Logf("8 processes: %d refresh, %d token requests, slowest Token() %v", res.Refreshes, res.TokenRequests, res.Slowest)
}

// TestTokenSourceRefreshCost measures one refresh through tokensource on
// Secrets Manager, at the transport: requests, and versions created on the
// token's own secret (every PutSecretValue creates one; AWS keeps at most
// 100 created per secret in 24 hours), for a provider that keeps the
// refresh token (Zoho) and one that rotates it (the index entry of the
// refresh token moves too: index versions, not the token's), along the
// three paths a refresh takes:
//
//   - owner: the long-running process that saved the token last refreshes
//     it in its early window, without a lease write;
//   - lease: the same process after idling through its window refreshes
//     at expiry with the lease, then the save;
//   - cold: a new Store and Source after the owner's lease lapsed.
//
// awssm/README.md's table is its log. The Sources' clock runs hours ahead
// while the store judges leases by the real one, so a cold round first
// ends the previous owner's lease with a save of the same token through
// an unrecorded store, in place of its lapse.
func TestTokenSourceRefreshCost(t *testing.T) {
	ctx := t.Context()
	rec := &recorder{}
	var offset atomic.Int64 // the Sources' clock runs ahead by this much
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	var lines []string
	for _, rotate := range []bool{false, true} {
		prov := oauthtest.Start(t, oauthtest.WithRotation(rotate), oauthtest.WithReuseDetection(true))
		cfg := tokensource.Config{TokenURL: prov.TokenURL, ClientID: prov.ClientID(), ClientSecret: prov.ClientSecret()}
		prefix := uniquePrefix(t)
		user := fmt.Sprint("cost-", rotate)
		long, err := tokensource.New(newStoreAt(t, client(t, rec), prefix, awssm.WithForceDelete()),
			&tokenstore.Token{UserName: user, GrantToken: prov.IssueGrant(user)}, cfg, tokensource.WithClock(now))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := long.TokenContext(ctx); err != nil {
			t.Fatal(err)
		}
		quiet := newStoreAt(t, client(t, nil), prefix, awssm.WithForceDelete())
		secret, err := quiet.SecretName(long.ID())
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range []struct {
			name     string
			left     time.Duration // validity left when the refresh is asked for
			versions int           // writes (versions) of the token's secret per refresh
		}{
			{"owner, in its window", 90 * time.Second, 1},
			{"lease: after idling through its window", 4 * time.Second, 2},
			{"cold: new Store and Source, lease lapsed", 4 * time.Second, 2},
		} {
			// Round 0 warms up; the first later round without an index
			// split is measured (with rotation every refresh writes the
			// index twice, and a split, a one-time cost of a bucket
			// created, may fall in any round).
			for round := range 5 {
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
					if src, err = tokensource.New(newStoreAt(t, client(t, rec), prefix), &tokenstore.Token{UserName: user}, cfg, tokensource.WithClock(now)); err != nil {
						t.Fatal(err)
					}
				}
				before := prov.Refreshes()
				rec.reset()
				if _, err := src.TokenContext(ctx); err != nil {
					t.Fatalf("%s, refresh %d: %v", path.name, round, err)
				}
				if prov.Refreshes() != before+1 || prov.RefreshTokenReuses() != 0 {
					t.Fatalf("%s, round %d: %d provider refreshes, %d reuses; want 1 and 0", path.name, round, prov.Refreshes()-before, prov.RefreshTokenReuses())
				}
				if round == 0 {
					continue
				}
				if split := slices.ContainsFunc(rec.all(), func(c call) bool {
					return c.Op == "CreateSecret" && !slices.Contains(c.Secrets, secret)
				}); split && round < 4 {
					continue
				}
				got := rec.byOp()
				versions, other := 0, 0
				for _, c := range rec.all() {
					// A retried attempt carries the first one's
					// ClientRequestToken: it makes no version of its own.
					if !c.Retry && (c.Op == "PutSecretValue" || c.Op == "CreateSecret") {
						if slices.Contains(c.Secrets, secret) {
							versions++
						} else {
							other++
						}
					}
				}
				provider, indexVersions := "keeps the refresh token", 0
				if rotate {
					provider = "rotates the refresh token"
					indexVersions = 2 // claim the new refresh token, release the old one
				}
				total := 0
				for _, n := range got {
					total += n
				}
				lines = append(lines, fmt.Sprintf("| %s | %s | %d: %s | %d | %d |", provider, path.name, total, summary(got), versions, other))
				// Writes and versions are asserted; reads are logged (the
				// engine's read counts are its own business).
				writes := path.versions + indexVersions
				if versions != path.versions || other != indexVersions || got["PutSecretValue"] != writes || got["UpdateSecretVersionStage"] != writes {
					t.Errorf("%s, %s: %s, %d versions of the token's secret and %d of others; want %d CAS writes, %d and %d versions",
						provider, path.name, summary(got), versions, other, writes, path.versions, indexVersions)
				}
				break
			}
		}
	}
	t.Logf("one refresh through tokensource, steady state:\n| Provider | Path | Requests | Versions of the token's secret | Versions of index secrets |\n|---|---|---|---|---|\n%s", strings.Join(lines, "\n"))
}
