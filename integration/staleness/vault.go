package staleness

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/cloudtokens/cloudtokens/integration/backend"
)

// VaultStandby is an http.RoundTripper that makes a Vault server answer
// KV v2 reads the way a performance standby that trails the active node
// by Lag may: a GET of <mount>/data/<path> that asks for no version,
// whose current version was created less than Lag ago, is answered, with
// probability P, with the version before it, or not found when there is
// none. Everything else (writes, lists, reads of a given version, which
// the adapter makes only to check its own writes) goes through unchanged.
//
// The creation time comes from the server (<mount>/metadata/<path>, one
// more request per read), so every process that uses a VaultStandby sees
// the same history: another process's write is stale for everyone for
// Lag, as on a real standby, unlike a Layer, which knows only its own
// process's writes. The server and the processes must share a clock (one
// machine).
type VaultStandby struct {
	Base http.RoundTripper
	// P is the probability that a read within the lag is stale.
	P float64

	mu    sync.Mutex
	rng   *rand.Rand
	stale atomic.Int64
}

// NewVaultStandby returns a VaultStandby over base with probability p,
// its draws seeded with seed.
func NewVaultStandby(base http.RoundTripper, p float64, seed uint64) *VaultStandby {
	return &VaultStandby{Base: base, P: p, rng: rand.New(rand.NewPCG(seed, seed^0x7661756c74))}
}

// StaleReads returns how many reads it answered from an older version.
func (v *VaultStandby) StaleReads() int { return int(v.stale.Load()) }

// RoundTrip implements http.RoundTripper.
func (v *VaultStandby) RoundTrip(req *http.Request) (*http.Response, error) {
	mount, path, ok := kvDataRead(req)
	if !ok {
		return v.Base.RoundTrip(req)
	}
	prev, absent, lagging, err := v.previous(req, mount, path)
	if err != nil || !lagging || !v.draw() {
		return v.Base.RoundTrip(req)
	}
	v.stale.Add(1)
	r := req.Clone(req.Context())
	q := r.URL.Query()
	if absent {
		// Not created yet, as far as this reader knows: the server's own
		// answer for a path that does not exist.
		r.URL.Path = "/v1/" + mount + "/data/" + path + ".not-yet-visible"
	} else {
		q.Set("version", strconv.Itoa(prev))
	}
	r.URL.RawQuery = q.Encode()
	return v.Base.RoundTrip(r)
}

// kvDataRead recognises a read of the current version of a KV v2 entry.
func kvDataRead(req *http.Request) (mount, path string, ok bool) {
	if req.Method != http.MethodGet || req.URL.Query().Has("version") {
		return "", "", false
	}
	rest, ok := strings.CutPrefix(req.URL.Path, "/v1/")
	if !ok {
		return "", "", false
	}
	mount, path, ok = strings.Cut(rest, "/data/")
	return mount, path, ok && mount != "" && path != ""
}

// previous reads the entry's metadata: the version before the current
// one (absent when there is none to show), and whether the current one
// is younger than Lag.
func (v *VaultStandby) previous(req *http.Request, mount, path string) (prev int, absent, lagging bool, err error) {
	m := req.Clone(req.Context())
	m.URL.Path = "/v1/" + mount + "/metadata/" + path
	m.URL.RawQuery = ""
	resp, err := v.Base.RoundTrip(m)
	if err != nil {
		return 0, false, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, false, false, fmt.Errorf("metadata: HTTP %d", resp.StatusCode)
	}
	var md struct {
		Data struct {
			CurrentVersion int `json:"current_version"`
			Versions       map[string]struct {
				CreatedTime  time.Time `json:"created_time"`
				DeletionTime string    `json:"deletion_time"`
				Destroyed    bool      `json:"destroyed"`
			} `json:"versions"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
		return 0, false, false, err
	}
	cur, ok := md.Data.Versions[strconv.Itoa(md.Data.CurrentVersion)]
	if !ok || time.Since(cur.CreatedTime) >= Lag {
		return 0, false, false, nil
	}
	prev = md.Data.CurrentVersion - 1
	p, ok := md.Data.Versions[strconv.Itoa(prev)]
	absent = prev < 1 || !ok || p.Destroyed
	return prev, absent, true, nil
}

func (v *VaultStandby) draw() bool {
	if v.P >= 1 {
		return true
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.rng.Float64() < v.P
}

// VaultStandbyClient returns a client of the test Vault server (package
// backend) whose KV reads go through a VaultStandby with probability p,
// seeded with seed.
func VaultStandbyClient(tb testing.TB, p float64, seed uint64) (*api.Client, *VaultStandby) {
	tb.Helper()
	addr, token := backend.Vault(tb)
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		tb.Fatal(cfg.Error)
	}
	cfg.Address = addr
	standby := NewVaultStandby(cfg.HttpClient.Transport, p, seed)
	cfg.HttpClient.Transport = standby
	c, err := api.NewClient(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	c.SetToken(token)
	return c, standby
}
