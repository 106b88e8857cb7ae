// Package observetest has an [observe.Observer] that records what it is
// told, for tests of the code that reports operations (the engine, the
// adapters, token sources, third-party stores).
package observetest

import (
	"context"
	"sync"

	"github.com/cloudtokens/cloudtokens/observe"
)

// Recorder is an [observe.Observer] that keeps every operation that ended
// and every event, with the operation each happened in. It is safe for
// concurrent use; the zero Recorder is ready.
type Recorder struct {
	mu     sync.Mutex
	ops    []Ended
	events []Emitted
	open   int
}

var _ observe.Observer = (*Recorder)(nil)

// Ended is an operation that ended.
type Ended struct {
	Op observe.Op // as End was given it
	// Parent is the operation Op ran in, nil for a top-level one.
	Parent *observe.Op
	Err    error
}

// Emitted is an event.
type Emitted struct {
	Event observe.Event
	// In is the operation the event happened in, nil for none.
	In *observe.Op
}

type frameKey struct{}

type frame struct {
	op     observe.Op
	parent *frame
}

func (f *frame) opOf() *observe.Op {
	if f == nil {
		return nil
	}
	op := f.op
	return &op
}

// Start implements [observe.Observer].
func (r *Recorder) Start(ctx context.Context, op observe.Op) context.Context {
	parent, _ := ctx.Value(frameKey{}).(*frame)
	r.mu.Lock()
	r.open++
	r.mu.Unlock()
	return context.WithValue(ctx, frameKey{}, &frame{op: op, parent: parent})
}

// End implements [observe.Observer].
func (r *Recorder) End(ctx context.Context, op observe.Op, err error) {
	f, _ := ctx.Value(frameKey{}).(*frame)
	var parent *frame
	if f != nil {
		parent = f.parent
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.open--
	r.ops = append(r.ops, Ended{Op: op, Parent: parent.opOf(), Err: err})
}

// Event implements [observe.Observer].
func (r *Recorder) Event(ctx context.Context, ev observe.Event) {
	f, _ := ctx.Value(frameKey{}).(*frame)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, Emitted{Event: ev, In: f.opOf()})
}

// Ops returns the operations that ended, in the order they ended.
func (r *Recorder) Ops() []Ended {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Ended(nil), r.ops...)
}

// Events returns the events of kind (all events for 0), in order.
func (r *Recorder) Events(kind observe.EventKind) []Emitted {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Emitted
	for _, e := range r.events {
		if kind == 0 || e.Event.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// Open returns the number of operations started and not ended.
func (r *Recorder) Open() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.open
}

// Strings returns every string the Recorder was given except errors
// (token IDs, document names, key kinds, grant types), for tests that no
// secret or user name reaches an Observer.
func (r *Recorder) Strings() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, o := range r.ops {
		out = append(out, o.Op.TokenID, o.Op.Document, o.Op.Grant)
	}
	for _, e := range r.events {
		out = append(out, e.Event.TokenID, e.Event.Key)
	}
	return out
}

// Nesting checks that every backend request ran inside a store
// operation and that every started operation ended; it returns a line
// per violation.
func (r *Recorder) Nesting() []string {
	var problems []string
	for _, o := range r.Ops() {
		if o.Op.Kind.Layer() == observe.LayerBackend && (o.Parent == nil || o.Parent.Kind.Layer() != observe.LayerStore) {
			problems = append(problems, "backend request "+o.Op.Kind.String()+" "+o.Op.Document+" outside a store operation")
		}
	}
	if n := r.Open(); n != 0 {
		problems = append(problems, "operations started and not ended")
	}
	return problems
}
