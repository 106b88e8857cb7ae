// Package faultinject makes the network between a cloud SDK and its server
// unreliable on purpose, for tests: requests are dropped before they are
// sent, answered by an error after the server has applied them (a lost
// response), refused with a server error or a throttling answer, or
// delayed. An [Injector] decides, request by request, which fault (if
// any) to inject: at random with a fixed seed and probability
// ([Config]), or exactly as a test scripts it ([Injector.Script]). It
// counts what it injected ([Counts]).
//
// [Transport] applies an Injector to an [net/http.Client]: the AWS SDK
// (aws.Config.HTTPClient or secretsmanager.Options.HTTPClient) and the
// Vault API client (api.Config.HttpClient) both take one. The gRPC side,
// for the GCP Secret Manager client, is gcpsmtest.FaultInterceptor in the
// gcpsm module (this package imports nothing but the standard library, so
// that the core module stays free of SDK dependencies).
//
// The faults look to the client exactly like their real counterparts, so
// that the SDKs' own retry logic runs:
//
//	Drop          dial error "connection refused"; the server never sees the request
//	LoseResponse  the server applies the request; the client gets "connection reset by peer"
//	ServerError   HTTP 500 (AWS: InternalServiceError JSON; Vault: {"errors":[...]}); not applied
//	Throttle      AWS: HTTP 400 ThrottlingException JSON; Vault: HTTP 429; not applied
//	Delay         the request waits up to Config.MaxDelay (or until its context ends), then goes through
//
// A request that an SDK retries after a fault is a new request to the
// Transport and gets its own decision.
package faultinject

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is a kind of fault.
type Kind int

// The kinds of fault. None lets a request through untouched.
const (
	None Kind = iota
	// Drop fails the request before it is sent, as a refused
	// connection: the server never applies it.
	Drop
	// LoseResponse sends the request, lets the server apply it, throws
	// the answer away and fails the request as a reset connection.
	LoseResponse
	// ServerError answers with a server error (HTTP 500, gRPC INTERNAL)
	// without sending the request.
	ServerError
	// Throttle answers with the protocol's throttling error (AWS
	// ThrottlingException, Vault HTTP 429, gRPC RESOURCE_EXHAUSTED)
	// without sending the request.
	Throttle
	// Delay holds the request for a random time up to Config.MaxDelay,
	// then sends it normally.
	Delay

	numKinds = iota
)

// AllKinds lists every fault kind: the default of Config.Kinds.
var AllKinds = []Kind{Drop, LoseResponse, ServerError, Throttle, Delay}

// DefaultP is the fault probability of the reliability tests: 15 % of
// the requests get a fault.
const DefaultP = 0.15

// DefaultMaxDelay is the default of Config.MaxDelay.
const DefaultMaxDelay = 50 * time.Millisecond

var kindNames = [numKinds]string{"none", "drop", "lose-response", "server-error", "throttle", "delay"}

func (k Kind) String() string {
	if k < 0 || int(k) >= numKinds {
		return fmt.Sprintf("Kind(%d)", int(k))
	}
	return kindNames[k]
}

// Applied reports whether the server applies a request that gets this
// fault: true for None, LoseResponse and Delay.
func (k Kind) Applied() bool { return k == None || k == LoseResponse || k == Delay }

// Config configures an Injector. The zero value injects nothing at random
// (only scripted faults).
type Config struct {
	// Seed seeds the random decisions: the same seed gives the same
	// sequence of decisions (the order in which concurrent requests
	// draw them still depends on scheduling).
	Seed uint64
	// P is the probability, 0 to 1, that a request gets a random fault.
	// 0 injects only scripted faults; DefaultP is 0.15.
	P float64
	// Kinds are the faults drawn at random, with equal probability
	// (default AllKinds).
	Kinds []Kind
	// MaxDelay bounds a Delay fault (default DefaultMaxDelay).
	MaxDelay time.Duration
}

// Injector decides which fault each request gets and counts them. It is
// safe for concurrent use; one Injector may serve several transports.
type Injector struct {
	p        float64
	kinds    []Kind
	maxDelay time.Duration
	paused   atomic.Bool

	mu       sync.Mutex
	rng      *rand.Rand
	script   []Kind
	requests int64
	counts   [numKinds]int64
}

// New returns an Injector. It panics if cfg.P is outside [0, 1] or a
// kind is unknown: both are mistakes in a test.
func New(cfg Config) *Injector {
	if cfg.P < 0 || cfg.P > 1 {
		panic(fmt.Sprintf("faultinject: probability %v outside [0, 1]", cfg.P))
	}
	kinds := cfg.Kinds
	if len(kinds) == 0 {
		kinds = AllKinds
	}
	for _, k := range kinds {
		if k <= None || int(k) >= numKinds {
			panic(fmt.Sprintf("faultinject: unknown fault kind %v", k))
		}
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = DefaultMaxDelay
	}
	return &Injector{
		p:        cfg.P,
		kinds:    append([]Kind(nil), kinds...),
		maxDelay: cfg.MaxDelay,
		rng:      rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
	}
}

// Script makes the next len(kinds) requests that reach the Injector get
// these faults, in order, before any random decision; None lets one
// through. Scripted faults apply even while random faults are paused.
func (i *Injector) Script(kinds ...Kind) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.script = append(i.script, kinds...)
}

// Pending returns the number of scripted faults not yet used.
func (i *Injector) Pending() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return len(i.script)
}

// Pause stops random faults (scripted ones still apply) until Resume.
func (i *Injector) Pause() { i.paused.Store(true) }

// Resume starts random faults again after Pause.
func (i *Injector) Resume() { i.paused.Store(false) }

// Decide returns the fault for one request, and for Delay how long to
// wait, and counts it. Transports call it once per request.
func (i *Injector) Decide() (Kind, time.Duration) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.requests++
	k := None
	switch {
	case len(i.script) > 0:
		k, i.script = i.script[0], i.script[1:]
	case i.p > 0 && !i.paused.Load() && i.rng.Float64() < i.p:
		k = i.kinds[i.rng.IntN(len(i.kinds))]
	}
	i.counts[k]++
	var d time.Duration
	if k == Delay {
		d = time.Duration(i.rng.Int64N(int64(i.maxDelay) + 1))
	}
	return k, d
}

// Counts is what an Injector has done so far.
type Counts struct {
	// Requests is the number of decisions made (requests seen).
	Requests int64
	// ByKind counts the requests per fault kind (None: untouched).
	ByKind map[Kind]int64
}

// Faults returns the number of requests that got a fault.
func (c Counts) Faults() int64 { return c.Requests - c.ByKind[None] }

// String formats the counts in one line, in the order of AllKinds.
func (c Counts) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d requests, %d faults", c.Requests, c.Faults())
	for _, k := range AllKinds {
		if n := c.ByKind[k]; n > 0 {
			fmt.Fprintf(&b, ", %d %s", n, k)
		}
	}
	return b.String()
}

// Counts returns a snapshot of the counters.
func (i *Injector) Counts() Counts {
	i.mu.Lock()
	defer i.mu.Unlock()
	c := Counts{Requests: i.requests, ByKind: map[Kind]int64{}}
	for k, n := range i.counts {
		if n > 0 {
			c.ByKind[Kind(k)] = n
		}
	}
	return c
}

// Error is the error a Transport returns for Drop and LoseResponse. It
// wraps the network error a real failure would give (a *net.OpError), so
// the SDKs classify and retry it like one.
type Error struct {
	Kind Kind
	Err  error
}

func (e *Error) Error() string { return "faultinject: " + e.Kind.String() + ": " + e.Err.Error() }

// Unwrap returns the network error.
func (e *Error) Unwrap() error { return e.Err }
