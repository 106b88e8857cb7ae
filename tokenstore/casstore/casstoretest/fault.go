// Package casstoretest has casstore.Backend wrappers that make a backend
// behave the way real clouds do and emulators don't, for tests of the
// engine and of the adapters:
//
//   - [FaultBackend] injects failures: at a chosen call (for crash-point
//     enumeration) or at random with a seeded source — a call that fails
//     before it is applied, one whose response is lost after it was
//     applied, and a crash after which every call fails;
//   - [StaleBackend] serves reads from an older version for a while after
//     each write, as GCP documents for alias reads and AWS for changes in
//     general, while writes are checked against the current state;
//   - [QuotaBackend] enforces AWS Secrets Manager's quota of versions per
//     secret per 24 hours on a clock the test controls.
//
// All three are safe for concurrent use and pass casstore.Lister,
// casstore.QuotaReporter and casstore.BatchReader through when the
// wrapped backend has them.
package casstoretest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// ErrInjected is the error of an injected failure. It is not one of the
// casstore sentinels, so the engine cannot tell whether the call was
// applied, exactly as with a network error.
var ErrInjected = errors.New("casstoretest: injected failure")

// Fault is a kind of injected failure.
type Fault int

const (
	// NoFault lets the call through.
	NoFault Fault = iota
	// FailBefore fails the call without applying it.
	FailBefore
	// LoseResponse applies the call, then fails it: the caller does not
	// learn that it happened.
	LoseResponse
	// Crash fails the call without applying it, and every call after it:
	// the process died before the call.
	Crash
	// CrashAfter applies the call, then fails it and every call after it:
	// the process died before it read the response.
	CrashAfter
	// Pause holds the call until Resume: the process stalls (a long
	// garbage collection, a frozen Lambda) while others go on. The call
	// then runs as if nothing happened.
	Pause
	// Delay fails the call at once without applying it, and applies it
	// when ApplyDelayed is called: a request that reached the server long
	// after the client gave up on it.
	Delay
)

// Faults lists every kind of fault, for enumerations.
var Faults = []Fault{FailBefore, LoseResponse, Crash, CrashAfter, Pause, Delay}

func (f Fault) String() string {
	switch f {
	case FailBefore:
		return "fail-before"
	case LoseResponse:
		return "lose-response"
	case Crash:
		return "crash"
	case CrashAfter:
		return "crash-after"
	case Pause:
		return "pause"
	case Delay:
		return "delay"
	}
	return "none"
}

// FaultBackend wraps a Backend and injects failures. Calls are numbered
// from 1 in the order they start, reads included.
type FaultBackend struct {
	casstore.Backend

	mu      sync.Mutex
	calls   int
	at      int
	fault   Fault
	crashed bool
	rng     *rand.Rand
	p       float64
	kinds   []Fault
	counts  map[Fault]int
	log     []string
	paused  chan struct{} // closed when a Pause fault holds a call
	resume  chan struct{} // closed by Resume
	delayed []func()
}

// NewFaultBackend returns b with no fault planned.
func NewFaultBackend(b casstore.Backend) *FaultBackend {
	return &FaultBackend{Backend: b, counts: map[Fault]int{}}
}

// At plans fault f at call number n (counted from the next call, 1-based)
// and resets the count and the crashed state.
func (f *FaultBackend) At(n int, fault Fault) *FaultBackend {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls, f.at, f.fault, f.crashed, f.rng = 0, n, fault, false, nil
	f.paused, f.resume, f.delayed = make(chan struct{}), make(chan struct{}), nil
	return f
}

// Paused is closed when a Pause fault holds a call.
func (f *FaultBackend) Paused() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.paused
}

// Resume lets a call held by a Pause fault go on.
func (f *FaultBackend) Resume() {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.resume:
	default:
		close(f.resume)
	}
}

// ApplyDelayed applies the calls that Delay faults held back, with a
// background context, and returns how many it applied.
func (f *FaultBackend) ApplyDelayed() int {
	f.mu.Lock()
	calls := f.delayed
	f.delayed = nil
	f.mu.Unlock()
	for _, c := range calls {
		c()
	}
	return len(calls)
}

// Random makes every call fail with probability p, with a fault chosen
// uniformly from kinds (default FailBefore and LoseResponse), from a
// source seeded with seed.
func (f *FaultBackend) Random(seed uint64, p float64, kinds ...Fault) *FaultBackend {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(kinds) == 0 {
		kinds = []Fault{FailBefore, LoseResponse}
	}
	f.rng, f.p, f.kinds, f.at = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), p, kinds, 0
	return f
}

// Off stops injecting faults and revives a crashed backend.
func (f *FaultBackend) Off() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.at, f.rng, f.crashed = 0, nil, false
}

// Calls returns the number of calls since At, Random or Off.
func (f *FaultBackend) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// Injected returns how many faults of each kind were injected.
func (f *FaultBackend) Injected() map[Fault]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[Fault]int, len(f.counts))
	for k, v := range f.counts {
		out[k] = v
	}
	return out
}

// Crashed reports whether a Crash or CrashAfter fault has happened.
func (f *FaultBackend) Crashed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.crashed
}

// next decides the fault of the next call.
func (f *FaultBackend) next(op, name string) Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.crashed {
		return Crash
	}
	fault := NoFault
	switch {
	case f.at > 0 && f.calls == f.at:
		fault = f.fault
	case f.rng != nil && f.rng.Float64() < f.p:
		fault = f.kinds[f.rng.IntN(len(f.kinds))]
	}
	if fault != NoFault {
		f.counts[fault]++
		f.log = append(f.log, fmt.Sprintf("%d %s %s: %s", f.calls, op, name, fault))
	}
	if fault == Crash || fault == CrashAfter {
		f.crashed = true
	}
	return fault
}

func injected(op, name string, fault Fault) error {
	return fmt.Errorf("%w (%s) in %s %s", ErrInjected, fault, op, name)
}

// do runs a call under the planned fault. later is the same call on a
// background context, for Delay.
func (f *FaultBackend) do(op, name string, call func() error, later func()) error {
	switch fault := f.next(op, name); fault {
	case NoFault:
		return call()
	case Pause:
		f.mu.Lock()
		paused, resume := f.paused, f.resume
		f.mu.Unlock()
		close(paused)
		<-resume
		return call()
	case Delay:
		if later != nil {
			f.mu.Lock()
			f.delayed = append(f.delayed, later)
			f.mu.Unlock()
		}
		return injected(op, name, fault)
	case LoseResponse, CrashAfter:
		_ = call()
		return injected(op, name, fault)
	default:
		return injected(op, name, fault)
	}
}

// Read implements casstore.Backend.
func (f *FaultBackend) Read(ctx context.Context, name string) (obj casstore.Object, err error) {
	err = f.do("Read", name, func() error { obj, err = f.Backend.Read(ctx, name); return err }, nil)
	return obj, err
}

// ReadMany implements casstore.Backend.
func (f *FaultBackend) ReadMany(ctx context.Context, names []string) (res []casstore.Result, err error) {
	err = f.do("ReadMany", fmt.Sprint(len(names), " names"), func() error { res, err = f.Backend.ReadMany(ctx, names); return err }, nil)
	return res, err
}

// Create implements casstore.Backend.
func (f *FaultBackend) Create(ctx context.Context, name string, value []byte) (v string, err error) {
	err = f.do("Create", name, func() error { v, err = f.Backend.Create(ctx, name, value); return err },
		func() { _, _ = f.Backend.Create(context.Background(), name, value) })
	return v, err
}

// Update implements casstore.Backend.
func (f *FaultBackend) Update(ctx context.Context, name string, value []byte, version string) (v string, err error) {
	err = f.do("Update", name, func() error { v, err = f.Backend.Update(ctx, name, value, version); return err },
		func() { _, _ = f.Backend.Update(context.Background(), name, value, version) })
	return v, err
}

// Delete implements casstore.Backend.
func (f *FaultBackend) Delete(ctx context.Context, name string) error {
	return f.do("Delete", name, func() error { return f.Backend.Delete(ctx, name) },
		func() { _ = f.Backend.Delete(context.Background(), name) })
}

// List implements casstore.Lister when the wrapped backend does.
func (f *FaultBackend) List(ctx context.Context) (names []string, err error) {
	l, ok := f.Backend.(casstore.Lister)
	if !ok {
		return nil, errors.New("casstoretest: the wrapped backend cannot list")
	}
	err = f.do("List", "", func() error { names, err = l.List(ctx); return err }, nil)
	return names, err
}

// Quotas implements casstore.QuotaReporter when the wrapped backend does.
func (f *FaultBackend) Quotas() casstore.Quotas {
	if q, ok := f.Backend.(casstore.QuotaReporter); ok {
		return q.Quotas()
	}
	return casstore.Quotas{}
}

// Log returns a line per injected fault: call number, method, document
// and kind.
func (f *FaultBackend) Log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.log...)
}

// BatchSize implements casstore.BatchReader: the wrapped backend's, or 1.
func (f *FaultBackend) BatchSize() int {
	if br, ok := f.Backend.(casstore.BatchReader); ok {
		return br.BatchSize()
	}
	return 1
}
