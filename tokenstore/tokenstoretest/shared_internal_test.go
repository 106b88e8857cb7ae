package tokenstoretest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
)

func TestSharedOptionsValidated(t *testing.T) {
	for name, opts := range map[string][]SharedOption{
		"nil option":    {nil},
		"zero lag":      {WithVisibilityLag(0)},
		"negative lag":  {WithVisibilityLag(-time.Second)},
		"nil after one": {WithVisibilityLag(time.Second), nil},
	} {
		if _, err := newSharedConfig(opts); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: error %v, want ErrInvalidConfig", name, err)
		}
	}
	cfg, err := newSharedConfig([]SharedOption{WithVisibilityLag(2 * time.Second)})
	if err != nil || cfg.lag != 2*time.Second {
		t.Fatalf("WithVisibilityLag(2s): %+v, %v", cfg, err)
	}
}

// A read through one instance waits for the other instance's last write
// to become visible, never for its own: with a lag of an hour, the read
// through the other instance runs into its context's deadline, and the
// read through the writer answers (a wait would time the test out).
func TestVisibilityLagWaitsForTheOtherInstance(t *testing.T) {
	m := tokenstore.NewMemoryStore()
	a, b := withLag(m, m, time.Hour)
	tok := &tokenstore.Token{UserName: "lag", AccessToken: "acc"}
	if err := a.SaveToken(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	if got, err := a.FindTokenByID(t.Context(), tok.ID); err != nil || got.UserName != "lag" {
		t.Fatalf("read through the writer: %v, %v", got, err)
	}
	for name, read := range map[string]func(ctx context.Context) error{
		"FindToken": func(ctx context.Context) error {
			_, err := b.FindToken(ctx, &tokenstore.Token{UserName: "lag"})
			return err
		},
		"FindTokenByID": func(ctx context.Context) error { _, err := b.FindTokenByID(ctx, tok.ID); return err },
		"Tokens":        func(ctx context.Context) error { _, err := b.Tokens(ctx); return err },
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
		err := read(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s through the other instance within the lag: %v, want it to wait (DeadlineExceeded)", name, err)
		}
	}
	// A write through b does not wait, and makes a wait in its turn.
	if err := b.DeleteToken(t.Context(), tok.ID); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if _, err := a.Tokens(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Tokens through a after a delete through b: %v, want it to wait", err)
	}
}
