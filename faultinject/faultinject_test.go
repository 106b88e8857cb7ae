package faultinject

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The same seed draws the same decisions; the fault rate is close to P
// and the kinds are spread evenly.
func TestDecideSeeded(t *testing.T) {
	draw := func(seed uint64, n int) []Kind {
		inj := New(Config{Seed: seed, P: DefaultP})
		out := make([]Kind, n)
		for i := range out {
			out[i], _ = inj.Decide()
		}
		return out
	}
	a, b, c := draw(7, 2000), draw(7, 2000), draw(8, 2000)
	if !slices.Equal(a, b) {
		t.Error("the same seed gave different decisions")
	}
	if slices.Equal(a, c) {
		t.Error("different seeds gave the same 2,000 decisions")
	}
	inj := New(Config{Seed: 42, P: DefaultP})
	const n = 20000
	for range n {
		inj.Decide()
	}
	cnt := inj.Counts()
	if cnt.Requests != n {
		t.Fatalf("Requests = %d, want %d", cnt.Requests, n)
	}
	rate := float64(cnt.Faults()) / n
	if math.Abs(rate-DefaultP) > 0.01 {
		t.Errorf("fault rate %.4f, want %.2f ± 0.01 (%v)", rate, DefaultP, cnt)
	}
	for _, k := range AllKinds {
		share := float64(cnt.ByKind[k]) / float64(cnt.Faults())
		if math.Abs(share-0.2) > 0.03 {
			t.Errorf("%v: %.3f of the faults, want 0.2 ± 0.03 (%v)", k, share, cnt)
		}
	}
	t.Log(cnt)
}

func TestScriptPauseAndDelayBound(t *testing.T) {
	inj := New(Config{Seed: 1, P: 1, Kinds: []Kind{Delay}, MaxDelay: 10 * time.Millisecond})
	inj.Script(LoseResponse, None, Drop)
	if inj.Pending() != 3 {
		t.Fatalf("Pending = %d", inj.Pending())
	}
	var got []Kind
	for range 3 {
		k, _ := inj.Decide()
		got = append(got, k)
	}
	if want := []Kind{LoseResponse, None, Drop}; !slices.Equal(got, want) {
		t.Fatalf("scripted decisions %v, want %v", got, want)
	}
	for range 100 {
		k, d := inj.Decide()
		if k != Delay || d < 0 || d > 10*time.Millisecond {
			t.Fatalf("decision %v %v, want a delay of at most 10ms", k, d)
		}
	}
	inj.Pause()
	inj.Script(Throttle)
	if k, _ := inj.Decide(); k != Throttle {
		t.Fatalf("scripted fault while paused: %v", k)
	}
	if k, _ := inj.Decide(); k != None {
		t.Fatalf("random fault while paused: %v", k)
	}
	inj.Resume()
	if k, _ := inj.Decide(); k != Delay {
		t.Fatalf("after Resume: %v", k)
	}
	for _, bad := range []Config{{P: -0.1}, {P: 1.5}, {Kinds: []Kind{None}}, {Kinds: []Kind{Kind(99)}}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%+v) did not panic", bad)
				}
			}()
			New(bad)
		}()
	}
}

// server counts the requests that reach it.
func server(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestTransportFaults(t *testing.T) {
	srv, reached := server(t)
	inj := New(Config{})
	client := &http.Client{Transport: &Transport{Base: srv.Client().Transport, Injector: inj, Protocol: AWSJSON}}
	post := func() (*http.Response, error) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL, strings.NewReader(`{"x":1}`))
		req.Header.Set("X-Amz-Target", "secretsmanager.CreateSecret")
		return client.Do(req)
	}

	inj.Script(Drop)
	_, err := post()
	var fe *Error
	if !errors.As(err, &fe) || fe.Kind != Drop || !errors.Is(err, syscall.ECONNREFUSED) || reached.Load() != 0 {
		t.Fatalf("Drop: %v, server reached %d times; want a refused connection and no request", err, reached.Load())
	}

	_, err = post()
	if err != nil || reached.Load() != 1 {
		t.Fatalf("no fault: %v, reached %d", err, reached.Load())
	}

	inj.Script(LoseResponse)
	_, err = post()
	if !errors.As(err, &fe) || fe.Kind != LoseResponse || !errors.Is(err, syscall.ECONNRESET) || reached.Load() != 2 {
		t.Fatalf("LoseResponse: %v, reached %d; want a reset after the server got the request", err, reached.Load())
	}

	inj.Script(ServerError, Throttle)
	for _, want := range []struct {
		status int
		code   string
	}{{500, "InternalServiceError"}, {400, "ThrottlingException"}} {
		resp, err := post()
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Type string `json:"__type"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != want.status || resp.Header.Get("X-Amzn-ErrorType") != want.code || body.Type != want.code {
			t.Errorf("answer %d %q %q, want %d %s", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), body.Type, want.status, want.code)
		}
	}
	if reached.Load() != 2 {
		t.Errorf("server error and throttling reached the server (%d requests)", reached.Load())
	}
	cnt := inj.Counts()
	if cnt.Requests != 5 || cnt.Faults() != 4 || cnt.ByKind[Drop] != 1 || cnt.ByKind[LoseResponse] != 1 || cnt.ByKind[ServerError] != 1 || cnt.ByKind[Throttle] != 1 {
		t.Errorf("counts %v", cnt)
	}
}

func TestTransportVaultAnswersAndMatch(t *testing.T) {
	srv, reached := server(t)
	inj := New(Config{})
	tr := &Transport{Base: srv.Client().Transport, Injector: inj, Protocol: Vault,
		Match: func(r *http.Request) bool { return r.Method == http.MethodPut }}
	client := &http.Client{Transport: tr}
	inj.Script(Throttle, ServerError)
	// A GET does not match: it passes and is not counted.
	resp, err := client.Get(srv.URL + "/v1/secret/data/x")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET: %v", err)
	}
	resp.Body.Close()
	for _, status := range []int{429, 500} {
		req, _ := http.NewRequest(http.MethodPut, srv.URL+"/v1/secret/data/x", strings.NewReader("{}"))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Errors []string }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != status || len(body.Errors) != 1 {
			t.Errorf("PUT answer %d %v, want %d with one error", resp.StatusCode, body.Errors, status)
		}
	}
	if reached.Load() != 1 || inj.Counts().Requests != 2 {
		t.Errorf("reached %d, counted %v", reached.Load(), inj.Counts())
	}
}

func TestTransportDelayHonoursContext(t *testing.T) {
	srv, reached := server(t)
	inj := New(Config{Seed: 3, P: 1, Kinds: []Kind{Delay}, MaxDelay: time.Hour})
	client := &http.Client{Transport: &Transport{Base: srv.Client().Transport, Injector: inj, Protocol: Vault}}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	_, err := client.Do(req)
	if !errors.Is(err, context.DeadlineExceeded) || reached.Load() != 0 {
		t.Fatalf("delayed request past its deadline: %v (reached %d)", err, reached.Load())
	}
}

func TestAWSOperation(t *testing.T) {
	m := AWSOperation("CreateSecret", "DeleteSecret")
	for target, want := range map[string]bool{
		"secretsmanager.CreateSecret":   true,
		"secretsmanager.DeleteSecret":   true,
		"secretsmanager.GetSecretValue": false,
		"":                              false,
	} {
		req, _ := http.NewRequest(http.MethodPost, "http://x/", nil)
		if target != "" {
			req.Header.Set("X-Amz-Target", target)
		}
		if got := m(req); got != want {
			t.Errorf("%q: %v, want %v", target, got, want)
		}
	}
}
