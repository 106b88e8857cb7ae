// Package tokensourcetest runs package tokensource against any store:
// Run proves the cross-process guarantee (several OS processes that hit
// one expired token cause exactly one refresh at the provider, while the
// provider rotates refresh tokens), and Lifecycle walks a token through
// its whole lifecycle with a narration (the quickstart examples' flow).
//
// A test calls Run with a Factory that opens the store under test:
//
//	func TestTokenSourceCrossProcess(t *testing.T) {
//		tokensourcetest.Run(t, tokensourcetest.Config{}, func(tb testing.TB, o tokensourcetest.StoreOptions) tokenstore.Store {
//			s, err := awssm.New(tb.Context(), newClient(tb), o.Prefix+"/")
//			if err != nil {
//				tb.Fatal(err)
//			}
//			return s
//		})
//	}
//
// Run, in the test process (the parent), starts an oauthtest server with
// rotation and refresh token reuse detection (as ORY Hydra: a rotated-out
// refresh token sent again revokes the whole chain) on 127.0.0.1, opens
// the store, logs a user in (grant code exchange), marks the stored token
// expired, and starts Config.Processes children (default 8) with package
// proctest (the test binary re-executed with -test.run matching only the
// calling test) and CLOUDTOKENS_TOKENSOURCETEST_*
// variables that make Run, in those children, play one process: open the
// store with the same Factory, build a tokensource.Source for the user,
// wait at a proctest.Barrier until every child is ready, call Token once and
// report a fingerprint of the access token (never the token). The parent
// then requires that every child succeeded, that the token endpoint saw
// exactly one refresh request (and no failed one from a process that lost
// the race), that no process sent a rotated-out refresh token, that all
// children got the same access token, which is the stored one, and that
// the stored refresh token is the rotated one.
//
// # Eventual consistency
//
// On a store whose reads lag writes by up to a known time (the clouds
// document eventual consistency; casstoretest.StaleBackend and
// gcpsmtest.WithEventualConsistency serve it in tests), set
// Config.VisibilityLag. A process may then read the token as it was
// before the parent marked it expired: to that process it is a valid
// token, and returning it is right (a Source never returns a token older
// than one it has seen, and this process has seen none). So the check
// that every child got the same access token becomes: every child got an
// access token that the store held at some point (the login's or the
// refreshed one) and that the provider still accepts for the user; the
// one that refreshed got the token stored at the end. If every child read
// the token before the mark, none refreshed: the later Source with which
// Run ends (a new process, after the lag) then makes the refresh. Either
// way every other check holds exactly: one refresh at the provider over
// the run, two token requests in all (no process that lost the race
// called the provider), no rotated-out refresh token sent, the stored
// refresh token the rotated one. The parent waits the lag after the
// login (a token created less than the lag ago may be missing for
// another process, which eventual consistency allows and this test does
// not check), half the lag after the expiry mark (so that some children
// may still read the token from before it while most read it expired and
// race for the lease), and the whole lag after the children, before it
// reads the result.
// Result.StaleReads counts the children that got the older token.
//
// The rest of the parent's environment passes to the children (so
// endpoints such as CLOUDTOKENS_AWS_ENDPOINT reach them), plus Config.Env.
// Because a child runs the same test function, setup that only the
// parent must do has to be skipped there (see IsChild), and a TestMain
// that starts servers must do the same. In a child Run returns nil once
// its process is done; the test must then return.
package tokensourcetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"

	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/oauthtest"
	"github.com/cloudtokens/cloudtokens/proctest"
	"github.com/cloudtokens/cloudtokens/tokensource"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// Factory opens the store under test on the run's shared data. Run calls
// it once in the parent and once in every child. It should fail tb when
// it cannot; it may register cleanups with tb.Cleanup.
type Factory func(tb testing.TB, o StoreOptions) tokenstore.Store

// StoreOptions tell a Factory which store to open.
type StoreOptions struct {
	// Prefix is the run's unique prefix: "tsrc-" and 12 characters of
	// [a-z0-9], valid in an AWS secret name, a GCP secret ID and a Vault
	// path. Add a separator if the adapter wants one.
	Prefix string
	// Dir is an empty directory shared by all processes of the run, for
	// file-backed test stores.
	Dir string
	// Worker is the child's number, 0 to Processes-1, or -1 in the parent.
	Worker int

	env map[string]string
}

// Getenv returns an environment variable as the children see it: the
// value in Config.Env if any, otherwise os.Getenv.
func (o StoreOptions) Getenv(key string) string {
	if v, ok := o.env[key]; ok {
		return v
	}
	return os.Getenv(key)
}

// Config describes a run. The zero value is 8 processes.
type Config struct {
	// Processes is the number of child processes (default 8).
	Processes int
	// Timeout bounds the run (default 2 minutes).
	Timeout time.Duration
	// Env holds "KEY=value" pairs added to the children's environment and
	// seen by StoreOptions.Getenv in every process.
	Env []string
	// Prefix overrides the random prefix.
	Prefix string
	// KeepData leaves the run's token in the store.
	KeepData bool
	// VisibilityLag is how long reads may lag writes on the store under
	// test (an eventually consistent service, or a stale layer under the
	// stores); see "Eventual consistency" in the package documentation.
	// Zero means the store reads every write at once.
	VisibilityLag time.Duration
}

// Result is what a run measured.
type Result struct {
	// Refreshes and Exchanges are the provider's counts over the run
	// (the parent's login is the one exchange), the check with a later
	// Source at the end included.
	Refreshes, Exchanges int
	// TokenRequests counts every token endpoint request, failed ones too.
	TokenRequests int
	// Reuses counts refresh requests that sent a rotated-out refresh
	// token (each revoked the token chain); Run requires 0.
	Reuses int
	// Slowest is the longest Token call of a child.
	Slowest time.Duration
	// LaterRefreshed is set when, with Config.VisibilityLag, no child
	// saw the token expired and the later Source made the one refresh.
	LaterRefreshed bool
	// StaleReads counts, with Config.VisibilityLag, the children that
	// got the token as it was before the expiry mark (they read it
	// before the mark was visible to them).
	StaleReads int
}

// Variables the parent hands its children (package proctest adds the test
// name, the worker number and the shared directory).
const (
	envProcs    = "CLOUDTOKENS_TOKENSOURCETEST_PROCESSES"
	envPrefix   = "CLOUDTOKENS_TOKENSOURCETEST_PREFIX"
	envTokenURL = "CLOUDTOKENS_TOKENSOURCETEST_TOKEN_URL"
	envClient   = "CLOUDTOKENS_TOKENSOURCETEST_CLIENT" // id and secret, space separated
	envUser     = "CLOUDTOKENS_TOKENSOURCETEST_USER"
	envTimeout  = "CLOUDTOKENS_TOKENSOURCETEST_TIMEOUT"
	envExtra    = "CLOUDTOKENS_TOKENSOURCETEST_ENV" // Config.Env, JSON
)

// IsChild reports whether this process is a child started by Run (a
// proctest child).
func IsChild() bool { return proctest.IsChild() }

// childReport is what a child writes to result-<worker>.json.
type childReport struct {
	Fingerprint string        `json:"fingerprint"`
	Elapsed     time.Duration `json:"elapsed"`
	Error       string        `json:"error,omitempty"`
}

// Fingerprint returns a short SHA-256 fingerprint of a token value, safe
// to print and compare.
func Fingerprint(v string) string {
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:6])
}

// Run runs the cross-process refresh check described in the package
// documentation on stores opened by newStore. In the parent it returns
// the measurements; in a child it plays one process and returns nil.
func Run(t *testing.T, cfg Config, newStore Factory) *Result {
	t.Helper()
	if c, ok := proctest.Self(t); ok {
		runChild(t, c, newStore)
		return nil
	}
	if cfg.Processes <= 0 {
		cfg.Processes = 8
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	if cfg.Prefix == "" {
		cfg.Prefix = proctest.UniqueName("tsrc-")
	}
	env := map[string]string{}
	for _, kv := range cfg.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.HasPrefix(k, "CLOUDTOKENS_TOKENSOURCETEST_") {
			t.Fatalf("tokensourcetest: bad Config.Env entry for key %q", k)
		}
		env[k] = v
	}
	return runParent(t, cfg, env, newStore)
}

func runParent(t *testing.T, cfg Config, env map[string]string, newStore Factory) *Result {
	ctx, cancel := context.WithTimeout(t.Context(), cfg.Timeout)
	defer cancel()
	dir := t.TempDir()
	storeDir := filepath.Join(dir, "store")
	barrierDir := filepath.Join(dir, "barrier")
	for _, d := range []string{storeDir, barrierDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	srv := oauthtest.Start(t, oauthtest.WithRotation(true), oauthtest.WithReuseDetection(true))
	opts := StoreOptions{Prefix: cfg.Prefix, Dir: storeDir, Worker: -1, env: env}
	store := newStore(t, opts)
	user := cfg.Prefix + "-user"
	tcfg := tokensource.Config{TokenURL: srv.TokenURL, RevokeURL: srv.RevokeURL, ClientID: srv.ClientID(), ClientSecret: srv.ClientSecret()}

	// Log in, then make the stored token expired.
	login, err := tokensource.New(store, &tokenstore.Token{UserName: user, GrantToken: srv.IssueGrant(user)}, tcfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := login.TokenContext(ctx); err != nil {
		t.Fatalf("tokensourcetest: login: %v", err)
	}
	// A record created less than the lag ago may still be missing for
	// another process: let every process see it before the run.
	sleepCtx(ctx, cfg.VisibilityLag)
	st, err := store.FindToken(ctx, &tokenstore.Token{UserName: user})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.KeepData {
		t.Cleanup(func() {
			if err := store.DeleteToken(context.WithoutCancel(ctx), st.ID); err != nil && !errors.Is(err, tokenstore.ErrNotFound) {
				t.Logf("tokensourcetest: cleanup: %v", err)
			}
		})
	}
	oldRefresh := st.RefreshToken
	st.Expiry = time.Now().Add(-time.Minute)
	if err := store.SaveToken(ctx, st); err != nil {
		t.Fatal(err)
	}
	if got, err := store.FindTokenByID(ctx, st.ID); err != nil || got.Expiry.After(time.Now()) {
		t.Fatalf("tokensourcetest: the stored token is not expired: %v %v", got, err)
	}
	// Under a lag, start the children half of it after the mark: some
	// may still read the token from before it, most read it expired.
	sleepCtx(ctx, cfg.VisibilityLag/2)

	extra, _ := json.Marshal(env)
	childEnv := append(mapEnv(env),
		envProcs+"="+strconv.Itoa(cfg.Processes), envPrefix+"="+cfg.Prefix,
		envTokenURL+"="+srv.TokenURL, envClient+"="+srv.ClientID()+" "+srv.ClientSecret(),
		envUser+"="+user, envTimeout+"="+cfg.Timeout.String(), envExtra+"="+string(extra))
	children := make([]*proctest.Process, cfg.Processes)
	for i := range children {
		children[i] = proctest.Start(ctx, t, proctest.Options{Dir: dir, Worker: i, Env: childEnv, Timeout: cfg.Timeout})
	}
	proctest.WaitAll(children)
	sleepCtx(ctx, cfg.VisibilityLag) // the children's writes become visible here

	res := &Result{}
	fingerprints := map[string]int{}
	for i, c := range children {
		if err := c.Wait(); err != nil {
			t.Errorf("tokensourcetest: child %d: %v\n%s", i, err, c.Output())
			continue
		}
		var rep childReport
		if err := proctest.ReadResult(barrierDir, i, &rep); err != nil {
			t.Errorf("tokensourcetest: child %d left no result: %v\n%s", i, err, c.Output())
			continue
		}
		if rep.Error != "" {
			t.Errorf("tokensourcetest: child %d: Token: %s", i, rep.Error)
			continue
		}
		fingerprints[rep.Fingerprint]++
		res.Slowest = max(res.Slowest, rep.Elapsed)
	}
	res.Refreshes, res.Exchanges, res.TokenRequests = srv.Refreshes(), srv.Exchanges(), srv.TokenRequests()
	res.Reuses = srv.RefreshTokenReuses()
	t.Logf("tokensourcetest: %d processes: %d refresh(es), %d token request(s) in all, %d refresh token reuse(s), slowest Token call %v",
		cfg.Processes, res.Refreshes, res.TokenRequests, res.Reuses, res.Slowest)
	if res.Reuses != 0 {
		t.Errorf("tokensourcetest: %d refresh request(s) sent a rotated-out refresh token (a provider like ORY Hydra revokes the whole chain)", res.Reuses)
	}
	if t.Failed() {
		return res
	}
	// Under a lag every child may have read the token before the expiry
	// mark; then none refreshed, and the later Source below must.
	childRefreshed := res.Refreshes == 1
	if cfg.VisibilityLag == 0 || res.Refreshes > 1 {
		if res.Refreshes != 1 || res.Exchanges != 1 {
			t.Errorf("tokensourcetest: the provider saw %d refreshes and %d exchanges; want exactly 1 and 1", res.Refreshes, res.Exchanges)
		}
		// With rotation the provider accepts a refresh token once, so a
		// second successful refresh is impossible anyway: the check that
		// matters is that no other process even tried (and failed).
		if res.TokenRequests != 2 {
			t.Errorf("tokensourcetest: %d token endpoint requests; want 2 (the login and one refresh): processes that lost the race called the provider", res.TokenRequests)
		}
	}
	// A new process then finds the refreshed token and does not refresh,
	// or (under a lag, when no child saw the expiry) makes the one
	// refresh itself.
	again, err := tokensource.New(store, &tokenstore.Token{UserName: user}, tcfg)
	if err != nil {
		t.Fatal(err)
	}
	later, err := again.TokenContext(ctx)
	if err != nil {
		t.Fatalf("tokensourcetest: a later Source: %v", err)
	}
	final, err := store.FindTokenByID(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if later.AccessToken != final.AccessToken {
		t.Errorf("tokensourcetest: a later Source got another access token than the stored one")
	}
	res.LaterRefreshed = !childRefreshed
	res.Refreshes, res.Exchanges, res.TokenRequests = srv.Refreshes(), srv.Exchanges(), srv.TokenRequests()
	if res.Refreshes != 1 || res.Exchanges != 1 || res.TokenRequests != 2 {
		t.Errorf("tokensourcetest: after a later Source the provider saw %d refreshes, %d exchanges, %d token requests; want exactly 1, 1 and 2",
			res.Refreshes, res.Exchanges, res.TokenRequests)
	}
	if _, ok := fingerprints[Fingerprint(final.AccessToken)]; childRefreshed && !ok {
		t.Errorf("tokensourcetest: the stored access token is not the one the children got")
	}
	if cfg.VisibilityLag == 0 {
		if len(fingerprints) != 1 {
			t.Errorf("tokensourcetest: the children got %d different access tokens: %v", len(fingerprints), fingerprints)
		}
	} else {
		// Each child got the login's token (read before the expiry
		// mark became visible to it) or the refreshed one, and both are
		// live at the provider.
		stored := map[string]string{Fingerprint(st.AccessToken): st.AccessToken, Fingerprint(final.AccessToken): final.AccessToken}
		for fp, n := range fingerprints {
			tok, ok := stored[fp]
			if !ok {
				t.Errorf("tokensourcetest: %d children got an access token (%s) that the store never held", n, fp)
				continue
			}
			if u, ok := srv.AccessTokenUser(tok); !ok || u != user {
				t.Errorf("tokensourcetest: %d children got an access token (%s) that the provider does not accept for the user", n, fp)
			}
			if fp == Fingerprint(st.AccessToken) {
				res.StaleReads += n
			}
		}
	}
	if final.RefreshToken == oldRefresh || !srv.RefreshTokenValid(final.RefreshToken) || srv.RefreshTokenValid(oldRefresh) {
		t.Errorf("tokensourcetest: the stored refresh token is not the rotated one")
	}
	if res.Reuses = srv.RefreshTokenReuses(); res.Reuses != 0 {
		t.Errorf("tokensourcetest: the later Source sent a rotated-out refresh token (%d reuses)", res.Reuses)
	}
	return res
}

func runChild(t *testing.T, c proctest.Child, newStore Factory) {
	worker := c.Worker
	procs, err := strconv.Atoi(os.Getenv(envProcs))
	if err != nil {
		t.Fatalf("tokensourcetest: bad %s", envProcs)
	}
	timeout, err := time.ParseDuration(os.Getenv(envTimeout))
	if err != nil {
		t.Fatalf("tokensourcetest: bad %s", envTimeout)
	}
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	env := map[string]string{}
	if err := json.Unmarshal([]byte(os.Getenv(envExtra)), &env); err != nil {
		t.Fatalf("tokensourcetest: bad %s", envExtra)
	}
	barrierDir := filepath.Join(c.Dir, "barrier")
	store := newStore(t, StoreOptions{Prefix: os.Getenv(envPrefix), Dir: filepath.Join(c.Dir, "store"), Worker: worker, env: env})
	id, secret, _ := strings.Cut(os.Getenv(envClient), " ")
	src, err := tokensource.New(store, &tokenstore.Token{UserName: os.Getenv(envUser)},
		tokensource.Config{TokenURL: os.Getenv(envTokenURL), ClientID: id, ClientSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	// Every child is ready (store open, Source built): go together.
	b := proctest.Barrier{Dir: barrierDir, Parties: procs, Self: worker, Poll: 2 * time.Millisecond}
	if err := b.Wait(ctx, "ready"); err != nil {
		t.Fatalf("tokensourcetest: child %d: %v", worker, err)
	}
	start := time.Now()
	tok, err := src.TokenContext(ctx)
	rep := childReport{Elapsed: time.Since(start)}
	if err != nil {
		rep.Error = err.Error()
	} else {
		rep.Fingerprint = Fingerprint(tok.AccessToken)
	}
	if werr := proctest.WriteResult(barrierDir, worker, rep); werr != nil {
		t.Fatal(werr)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// sleepCtx waits d, or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func mapEnv(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}
