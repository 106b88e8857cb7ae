package stress

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/proctest"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// Store is a token store under test: a tokenstore.Store that can also
// check its index against its documents. Every adapter's Store (which
// embeds *casstore.Store) is one, and so is *casstore.Store itself.
type Store interface {
	tokenstore.Store
	// Check compares the index with the token documents; see
	// casstore.Store.Check.
	Check(ctx context.Context) (*casstore.Report, error)
}

// Factory builds a Store on the shared data of a run. Run calls it once in
// every child process and once more in the parent, for the verification.
// It should fail tb (tb.Fatal) when it cannot build the store; it may
// register cleanups with tb.Cleanup.
type Factory func(tb testing.TB, o StoreOptions) Store

// StoreOptions tell a Factory which store to build.
type StoreOptions struct {
	// Prefix is the unique prefix of this run, "stress-" and 12 random
	// characters of [a-z0-9]: valid as it is in an AWS secret name, a GCP
	// secret ID and a Vault path. Add a separator if the adapter wants one.
	Prefix string
	// IndexShards is the index shard count every store of the run must
	// use (Config.IndexShards), or 0 with Config.GrowingIndex: then the
	// factory must build the store with its default options (no
	// WithIndexShards), so that the index grows by itself.
	IndexShards int
	// Worker is the child's worker number, 0 to Processes-1, or -1 for
	// the parent's verification store.
	Worker int

	env map[string]string
}

// Getenv returns the value of an environment variable as the children see
// it: the value given in Config.Env if any, otherwise os.Getenv. Use it
// for values the parent passes through Config.Env, which the parent's own
// environment does not have.
func (o StoreOptions) Getenv(key string) string {
	if v, ok := o.env[key]; ok {
		return v
	}
	return os.Getenv(key)
}

// Config describes a run. The zero value is the full workload.
type Config struct {
	// Processes is the number of child processes (default 4).
	Processes int
	// Goroutines is the number of goroutines per process (default 16).
	Goroutines int
	// Users is the number of distinct users (default 500).
	Users int
	// IndexShards is passed to the factory (default SuggestedShards(Users);
	// 0 with GrowingIndex).
	IndexShards int
	// GrowingIndex runs every store with its default options: the index
	// starts as one bucket and grows by itself while the processes write.
	// StoreOptions.IndexShards is 0 and IndexShards is ignored.
	GrowingIndex bool
	// MinBuckets fails the run unless Check reports at least this many
	// index buckets at the end: with GrowingIndex, the proof that the
	// index grew under the concurrent writers.
	MinBuckets int
	// DeleteEvery: users u with u % DeleteEvery == 0 are deleted in phase 3
	// (default 5, a fifth of the users).
	DeleteEvery int
	// RefreshTokenEvery: users u with u % RefreshTokenEvery == 1 are saved
	// with a refresh token, client ID and secret, found by refresh token
	// and refreshed by refresh token (default 3, a third of the users).
	RefreshTokenEvery int
	// AllowConflicts, when set, lets operations fail with
	// tokenstore.ErrConflict (they are still counted and logged) instead
	// of failing the test.
	AllowConflicts bool
	// Timeout bounds the whole run: the children and the verification
	// (default 5 minutes).
	Timeout time.Duration
	// Env holds "KEY=value" pairs added to the children's environment and
	// seen by StoreOptions.Getenv in every process.
	Env []string
	// Prefix overrides the random prefix (for reproducing a run).
	Prefix string
	// KeepData skips the final DeleteTokens of the parent, leaving the
	// run's tokens in the store for inspection.
	KeepData bool
	// CheckOutputs, when set, is given every child's output (worker
	// order) after the run and returns problems to report with the
	// verification's (package staleness uses it to require that the
	// run served stale reads at all).
	CheckOutputs func(outputs []string) []string
	// VisibilityLag is how long reads may lag writes on the store under
	// test (an eventually consistent service, or a stale layer under the
	// stores). The parent, a process that did not take part, then waits
	// that long after the children exit before it verifies: until then
	// it could not see their last writes, whatever the store does. The
	// children's own work is not delayed.
	VisibilityLag time.Duration
}

// SuggestedShards returns the default index shard count for users: one
// shard per 32 users, at least 1 (16 for 500). Capacity alone would need
// one per few hundred users (see package index); more shards spread the
// compare-and-swap contention of many concurrent writers.
func SuggestedShards(users int) int {
	return max(1, (users+31)/32)
}

func (c Config) withDefaults() Config {
	if c.Processes <= 0 {
		c.Processes = 4
	}
	if c.Goroutines <= 0 {
		c.Goroutines = 16
	}
	if c.Users <= 0 {
		c.Users = 500
	}
	switch {
	case c.GrowingIndex:
		c.IndexShards = 0
	case c.IndexShards <= 0:
		c.IndexShards = SuggestedShards(c.Users)
	}
	if c.DeleteEvery <= 0 {
		c.DeleteEvery = 5
	}
	if c.RefreshTokenEvery <= 0 {
		c.RefreshTokenEvery = 3
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Minute
	}
	return c
}

// deleted reports whether user u is deleted in phase 3.
func (c Config) deleted(u int) bool { return u%c.DeleteEvery == 0 }

// hasRefresh reports whether user u carries a refresh token.
func (c Config) hasRefresh(u int) bool { return u%c.RefreshTokenEvery == 1%c.RefreshTokenEvery }

// Environment variables that the parent hands its children (package
// proctest adds the test name, the worker number and the directory).
const (
	envConfig = "CLOUDTOKENS_STRESS_CONFIG" // the parent's Config, JSON
	envPrefix = "CLOUDTOKENS_STRESS_PREFIX" // the run's prefix
)

// IsChild reports whether this process is a child started by Run (a
// proctest child). Setup that only the parent must do (starting a
// server, creating shared resources) should be skipped when it is.
func IsChild() bool { return proctest.IsChild() }

// Run runs the workload described in the package documentation on stores
// built by newStore and fails t if the store loses, duplicates or
// mis-indexes a token, or if an operation fails unexpectedly.
//
// In the parent it returns the measurements (also logged); in a child it
// runs one worker and returns nil, and the calling test must then return.
func Run(t *testing.T, cfg Config, newStore Factory) *Summary {
	t.Helper()
	if c, ok := proctest.Self(t); ok {
		runChild(t, c, newStore)
		return nil
	}
	cfg = cfg.withDefaults()
	if cfg.Prefix == "" {
		cfg.Prefix = proctest.UniqueName("stress-")
	}
	env, err := parseEnv(cfg.Env)
	if err != nil {
		t.Fatal(err)
	}
	return runParent(t, cfg, env, newStore)
}

// childConfig is what the parent hands a child in envConfig: the Config
// without the environment, which the child has in its own.
type childConfig struct {
	Processes, Goroutines, Users, IndexShards, DeleteEvery, RefreshTokenEvery int
	GrowingIndex                                                              bool
	Timeout                                                                   time.Duration
	Prefix                                                                    string
}

func (c Config) child() childConfig {
	return childConfig{c.Processes, c.Goroutines, c.Users, c.IndexShards, c.DeleteEvery, c.RefreshTokenEvery, c.GrowingIndex, c.Timeout, c.Prefix}
}

func (cc childConfig) config() Config {
	return Config{
		Processes: cc.Processes, Goroutines: cc.Goroutines, Users: cc.Users, IndexShards: cc.IndexShards,
		DeleteEvery: cc.DeleteEvery, RefreshTokenEvery: cc.RefreshTokenEvery, GrowingIndex: cc.GrowingIndex, Timeout: cc.Timeout, Prefix: cc.Prefix,
	}
}

func encodeChildConfig(c Config) string {
	b, err := json.Marshal(c.child())
	if err != nil {
		panic(err) // plain struct: cannot fail
	}
	return string(b)
}

func decodeChildConfig(s string) (Config, error) {
	var cc childConfig
	if err := json.Unmarshal([]byte(s), &cc); err != nil {
		return Config{}, fmt.Errorf("stress: bad %s: %w", envConfig, err)
	}
	return cc.config(), nil
}

func parseEnv(kvs []string) (map[string]string, error) {
	env := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("stress: Config.Env entry %q is not KEY=value", k)
		}
		if strings.HasPrefix(k, "CLOUDTOKENS_STRESS_") {
			return nil, fmt.Errorf("stress: Config.Env must not set %s", k)
		}
		env[k] = v
	}
	return env, nil
}

// userName is the user name of user u.
func userName(u int) string { return "stress-user-" + strconv.Itoa(u) }

// userOf parses a user name back to its number.
func userOf(name string) (int, bool) {
	s, ok := strings.CutPrefix(name, "stress-user-")
	if !ok {
		return 0, false
	}
	u, err := strconv.Atoi(s)
	return u, err == nil && u >= 0
}

// Token values of the workload. They are test values, but the harness
// still never logs them.
const (
	clientID     = "1000.STRESSCLIENT"
	clientSecret = "stress-client-secret"
)

func refreshTokenOf(u int) string { return "1000.stress-refresh-" + strconv.Itoa(u) }

func accessTokenOf(phase, worker, u int) string {
	return fmt.Sprintf("1000.stress-access-p%d-w%d-u%d", phase, worker, u)
}
