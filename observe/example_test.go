package observe_test

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cloudtokens/cloudtokens/observe"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// printer is an Observer that prints every operation, indented by how
// deep it is nested.
type printer struct{}

type depthKey struct{}

func (printer) Start(ctx context.Context, op observe.Op) context.Context {
	depth, _ := ctx.Value(depthKey{}).(int)
	fmt.Println(strings.TrimRight(fmt.Sprintf("%s%s %s %s", strings.Repeat("  ", depth), op.Kind.Layer(), op.Kind, op.Document), " "))
	return context.WithValue(ctx, depthKey{}, depth+1)
}

func (printer) End(ctx context.Context, op observe.Op, err error) {
	depth := ctx.Value(depthKey{}).(int) - 1
	outcome := "ok"
	switch {
	case errors.Is(err, tokenstore.ErrNotFound):
		outcome = "not found"
	case err != nil:
		outcome = "failed"
	}
	fmt.Printf("%s%s: %s\n", strings.Repeat("  ", depth), op.Kind, outcome)
}

func (printer) Event(ctx context.Context, ev observe.Event) {
	fmt.Println("event", ev.Kind)
}

// An Observer sees every store operation with the backend requests it
// makes nested inside: here a lookup of a token that does not exist.
// Give it to a store with casstore.Options.Observer (or an adapter's
// WithObserver option) and to token sources with
// tokensource.WithObserver.
func Example() {
	store := casstore.New(casstore.NewMemoryBackend(), casstore.Options{Observer: printer{}})
	_, _ = store.FindTokenByID(context.Background(), "nobody")
	// Output:
	// store FindTokenByID
	//   backend Read token-nobody
	//   Read: not found
	// FindTokenByID: not found
}
