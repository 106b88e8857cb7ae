package stress

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/proctest"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// runChild runs one worker of the workload and writes its result.
func runChild(t *testing.T, c proctest.Child, newStore Factory) {
	t.Helper()
	dir, worker := c.Dir, c.Worker
	cfg, err := decodeChildConfig(os.Getenv(envConfig))
	if err != nil {
		proctest.Abort(dir, err.Error())
		t.Fatal(err)
	}
	res := newChildResult(worker, cfg.Users)
	defer func() {
		if !res.Done {
			proctest.Abort(dir, fmt.Sprintf("worker %d stopped before the end", worker))
		}
		if err := res.write(dir); err != nil {
			t.Errorf("stress: writing the result: %v", err)
		}
	}()

	ctx, cancel := context.WithTimeout(t.Context(), cfg.Timeout)
	defer cancel()
	st := newStore(t, StoreOptions{Prefix: cfg.Prefix, IndexShards: cfg.IndexShards, Worker: worker})
	if st == nil {
		t.Fatal("stress: the factory returned a nil Store")
	}
	w := &runner{cfg: cfg, st: st, res: res, id: worker, expiry: time.Now().Add(time.Hour).Truncate(time.Millisecond)}
	b := proctest.Barrier{Dir: dir, Parties: cfg.Processes, Self: worker}
	for i, phase := range []func(ctx context.Context, u int){w.save, w.find, w.deleteOrRefresh} {
		if err := b.Wait(ctx, fmt.Sprintf("phase%d", i+1)); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		var wg sync.WaitGroup
		for g := range cfg.Goroutines {
			wg.Go(func() {
				for u := g; u < cfg.Users; u += cfg.Goroutines {
					phase(ctx, u)
				}
			})
		}
		wg.Wait()
		res.Phases = append(res.Phases, phaseSpan{Name: phaseNames[i], Start: start.UnixNano(), End: time.Now().UnixNano()})
		t.Logf("worker %d: phase %s took %v", worker, phaseNames[i], time.Since(start).Round(time.Millisecond))
	}
	res.Done = true
	if res.ErrorCount > 0 {
		t.Errorf("worker %d: %d unexpected errors or inconsistencies; the first ones:\n%s", worker, res.ErrorCount, strings.Join(res.Errors, "\n"))
	}
}

// runner holds what the phases of one child share.
type runner struct {
	cfg    Config
	st     Store
	res    *childResult
	id     int
	expiry time.Time
}

// save is phase 1 for user u: save it with this worker's access token.
func (w *runner) save(ctx context.Context, u int) {
	tok := &tokenstore.Token{
		UserName:    userName(u),
		AccessToken: accessTokenOf(1, w.id, u),
		Expiry:      w.expiry,
		APIDomain:   "https://www.zohoapis.com",
	}
	if w.cfg.hasRefresh(u) {
		tok.RefreshToken, tok.ClientID, tok.ClientSecret = refreshTokenOf(u), clientID, clientSecret
	}
	start := time.Now()
	err := w.st.SaveToken(ctx, tok)
	if w.res.record(OpSave, u, time.Since(start), err, false) && err == nil {
		if tok.ID == "" {
			w.res.problem("user %d: SaveToken succeeded without setting the ID", u)
			return
		}
		w.res.SavedID[u] = tok.ID
		w.res.Access[u], w.res.AccessPhase[u] = tok.AccessToken, 1
	}
}

// find is phase 2 for user u: find it by user name and, where it has one,
// by refresh token.
func (w *runner) find(ctx context.Context, u int) {
	start := time.Now()
	got, err := w.st.FindToken(ctx, &tokenstore.Token{UserName: userName(u)})
	if !w.res.record(OpFindUser, u, time.Since(start), err, false) || err != nil {
		return
	}
	if !w.checkFound(u, "by user name", got) {
		return
	}
	w.res.FoundID[u] = got.ID
	if !w.cfg.hasRefresh(u) {
		return
	}
	start = time.Now()
	got2, err := w.st.FindToken(ctx, &tokenstore.Token{ClientID: clientID, ClientSecret: clientSecret, RefreshToken: refreshTokenOf(u)})
	if !w.res.record(OpFindRefresh, u, time.Since(start), err, false) || err != nil {
		return
	}
	if w.checkFound(u, "by refresh token", got2) && got2.ID != got.ID {
		w.res.problem("user %d: found token %s by user name but %s by refresh token", u, got.ID, got2.ID)
	}
}

// checkFound checks a token found for user u in phase 2.
func (w *runner) checkFound(u int, how string, got *tokenstore.Token) bool {
	switch {
	case got.UserName != userName(u):
		w.res.problem("user %d: FindToken %s returned token %s of user %q", u, how, got.ID, got.UserName)
	case got.ID == "":
		w.res.problem("user %d: FindToken %s returned a token without ID", u, how)
	case !strings.HasPrefix(got.AccessToken, "1000.stress-access-p1-w") || !strings.HasSuffix(got.AccessToken, fmt.Sprintf("-u%d", u)):
		w.res.problem("user %d: FindToken %s returned token %s with an access token no phase-1 save wrote", u, how, got.ID)
	case w.cfg.hasRefresh(u) && (got.RefreshToken != refreshTokenOf(u) || got.ClientID != clientID || got.ClientSecret != clientSecret):
		w.res.problem("user %d: FindToken %s returned token %s without its refresh token or client", u, how, got.ID)
	default:
		return true
	}
	return false
}

// deleteOrRefresh is phase 3 for user u: delete it if it is one of the
// deleted users, otherwise save a new access token and expiry.
func (w *runner) deleteOrRefresh(ctx context.Context, u int) {
	if w.cfg.deleted(u) {
		id := w.res.FoundID[u]
		if id == "" {
			return // phase 2 already reported it
		}
		start := time.Now()
		err := w.st.DeleteToken(ctx, id)
		w.res.record(OpDelete, u, time.Since(start), err, true)
		w.res.Deleted[u] = err == nil
		return
	}
	tok := &tokenstore.Token{AccessToken: accessTokenOf(3, w.id, u), Expiry: w.expiry.Add(time.Hour)}
	op := OpRefreshUser
	if w.cfg.hasRefresh(u) {
		op = OpRefreshToken
		tok.RefreshToken, tok.ClientID, tok.ClientSecret = refreshTokenOf(u), clientID, clientSecret
	} else {
		tok.UserName = userName(u)
	}
	start := time.Now()
	err := w.st.SaveToken(ctx, tok)
	if !w.res.record(op, u, time.Since(start), err, false) || err != nil {
		return
	}
	w.res.RefreshedID[u] = tok.ID
	w.res.Access[u], w.res.AccessPhase[u] = tok.AccessToken, 3
	if found := w.res.FoundID[u]; found != "" && tok.ID != found {
		w.res.problem("user %d: the refresh saved token %s, phase 2 found %s", u, tok.ID, found)
	}
}
