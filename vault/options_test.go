package vault

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/vault/api"
)

// offlineClient is a client whose every request fails the test: New must
// refuse a bad configuration before it asks Vault anything.
func offlineClient(t *testing.T) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = "http://127.0.0.1:1"
	cfg.HttpClient.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		t.Errorf("request sent for a configuration New should refuse: %s %s", r.Method, r.URL.Path)
		return nil, errors.New("offline")
	})
	cfg.MaxRetries = 0
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestNewRefusesBadConfiguration(t *testing.T) {
	ctx := context.Background()
	client := offlineClient(t)
	bad := map[string][]Option{
		"nil option":          {nil},
		"WithLogger(nil)":     {WithLogger(nil)},
		"WithIndexShards(0)":  {WithIndexShards(0)},
		"WithMaxAttempts(0)":  {WithMaxAttempts(0)},
		"WithMaxVersions(-1)": {WithMaxVersions(-1)},
		"WithReadWorkers(0)":  {WithReadWorkers(0)},
		"WithConsistency(7)":  {WithConsistency(7)},
		"WithMount(\"\")":     {WithMount("")},
		"WithMount(\"a//b\")": {WithMount("a//b")},
		"second option bad":   {WithIndexCache(true), WithIndexShards(-1)},
	}
	for name, opts := range bad {
		_, err := New(ctx, client, "app/tokens", opts...)
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: New = %v, want ErrInvalidConfig", name, err)
		}
		if !errors.Is(err, ErrInvalidOption) {
			t.Errorf("%s: the deprecated ErrInvalidOption no longer matches: %v", name, err)
		}
	}
	if _, err := New(ctx, nil, "app"); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("nil client: %v", err)
	}
	_, err := New(ctx, client, "a/../b")
	if !errors.Is(err, ErrInvalidPrefix) || !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("bad prefix: %v, want ErrInvalidPrefix wrapping ErrInvalidConfig", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := New(canceled, client, "app"); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: %v", err)
	}
}

// WithConsistency: the request callback sends every state a response
// brought (merged), and nothing before the first; ReadYourWritesForward
// also asks a lagging node to forward, once there is a state.
func TestConsistencyHeaders(t *testing.T) {
	var sent atomic.Value // the X-Vault-Index and X-Vault-Inconsistent headers of the last request
	cfg := api.DefaultConfig()
	cfg.Address = "http://vault.invalid"
	cfg.MaxRetries = 0
	n := 0
	cfg.HttpClient.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		sent.Store([2][]string{r.Header.Values(api.HeaderIndex), r.Header.Values(api.HeaderInconsistent)})
		n++
		h := http.Header{"Content-Type": {"application/json"}}
		if n == 2 {
			h.Set(api.HeaderIndex, "state-from-the-write") // as an Enterprise node answers
		}
		return &http.Response{StatusCode: 204, Header: h, Body: http.NoBody, Request: r}, nil
	})
	client, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []Consistency{ReadYourWrites, ReadYourWritesForward} {
		n = 0
		cc := c.apply(client)
		for i := range 3 {
			if _, err := cc.Logical().WriteWithContext(context.Background(), "secret/data/x", map[string]any{}); err != nil {
				t.Fatal(err)
			}
			h := sent.Load().([2][]string)
			wantIndex := 0
			if i == 2 {
				wantIndex = 1 // the state the second answer carried
			}
			if len(h[0]) != wantIndex {
				t.Errorf("%v, request %d: X-Vault-Index %q, want %d value(s)", c, i+1, h[0], wantIndex)
			}
			if forward := len(h[1]) == 1 && h[1][0] == "forward-active-node"; forward != (c == ReadYourWritesForward && wantIndex > 0) {
				t.Errorf("%v, request %d: X-Vault-Inconsistent %q", c, i+1, h[1])
			}
		}
	}
	// The caller's client is unchanged.
	if _, err := client.Logical().WriteWithContext(context.Background(), "secret/data/x", map[string]any{}); err != nil {
		t.Fatal(err)
	}
	if h := sent.Load().([2][]string); len(h[0])+len(h[1]) != 0 {
		t.Errorf("the caller's client sends consistency headers: %q", h)
	}
	if s := ReadYourWritesForward.String(); s != "ReadYourWritesForward" {
		t.Errorf("String() = %q", s)
	}
}
