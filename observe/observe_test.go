package observe_test

import (
	"context"
	"errors"
	"testing"

	"github.com/cloudtokens/cloudtokens/observe"
)

// counting records how often it is called.
type counting struct{ starts, ends, events int }

func (c *counting) Start(ctx context.Context, _ observe.Op) context.Context {
	c.starts++
	return ctx
}
func (c *counting) End(context.Context, observe.Op, error) { c.ends++ }
func (c *counting) Event(context.Context, observe.Event)   { c.events++ }

func TestSpanEndsOnce(t *testing.T) {
	c := &counting{}
	_, span := observe.Start(context.Background(), c, observe.Op{Kind: observe.Read})
	err := errors.New("boom")
	span.End(&err)
	span.End(nil) // a deferred End after an early one
	observe.Emit(context.Background(), c, observe.Event{Kind: observe.Retry})
	if c.starts != 1 || c.ends != 1 || c.events != 1 {
		t.Fatalf("starts %d, ends %d, events %d; want 1 each", c.starts, c.ends, c.events)
	}
	var zero observe.Span
	zero.End(&err) // does nothing
	ctx := context.Background()
	if got, span := observe.Start(ctx, nil, observe.Op{Kind: observe.Read}); got != ctx {
		t.Fatal("a nil Observer changed the context")
	} else {
		span.SetTokenID("x")
		span.End(&err)
	}
}

func TestKinds(t *testing.T) {
	want := map[observe.Layer][]observe.Kind{
		observe.LayerStore: {observe.FindToken, observe.FindTokenByID, observe.SaveToken, observe.DeleteToken, observe.Tokens,
			observe.DeleteTokens, observe.AcquireLease, observe.ReleaseLease, observe.ImportToken, observe.Check, observe.Repair,
			observe.ImportTokens, observe.SaveTokenLeased, observe.Migrate},
		observe.LayerBackend: {observe.Read, observe.ReadMany, observe.Create, observe.Update, observe.Delete, observe.List, observe.LeaseVersion},
		observe.LayerSource:  {observe.Refresh, observe.Exchange, observe.LeaseWait, observe.TokenRequest},
	}
	seen := map[string]bool{}
	for layer, kinds := range want {
		for _, k := range kinds {
			if k.Layer() != layer || k.String() == "unknown" || seen[k.String()] {
				t.Errorf("kind %d: layer %v (want %v), name %q", k, k.Layer(), layer, k.String())
			}
			seen[k.String()] = true
		}
	}
	n := 0
	for k := range observe.Kind(255) {
		if k.Layer() != 0 {
			n++
		}
	}
	if n != len(seen) {
		t.Errorf("%d kinds have a layer, %d are listed", n, len(seen))
	}
	if observe.Kind(0).Layer() != 0 || observe.Kind(0).String() != "unknown" || observe.EventKind(0).String() != "unknown" {
		t.Error("the zero Kind has a name or a layer")
	}
	for k := observe.Retry; k <= observe.PoolMiss; k++ {
		if k.String() == "unknown" {
			t.Errorf("event kind %d has no name", k)
		}
	}
}

// BenchmarkNilObserver is what an operation costs without an Observer:
// Start, End and an Emit on a nil Observer.
func BenchmarkNilObserver(b *testing.B) {
	ctx := context.Background()
	var o observe.Observer
	b.ReportAllocs()
	for b.Loop() {
		func() (err error) {
			_, span := observe.Start(ctx, o, observe.Op{Kind: observe.FindTokenByID, TokenID: "id"})
			defer span.End(&err)
			observe.Emit(ctx, o, observe.Event{Kind: observe.Retry, Attempt: 1})
			return nil
		}()
	}
}
