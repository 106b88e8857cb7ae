package gcpsm

import (
	"context"
	"testing"
	"time"
)

// A pacer holds no write back until it starts (the service has refused
// one), but records them; then a write of a secret that had two writes
// within the last second waits until the older has left it, other
// secrets do not wait, and a canceled wait returns the context's error.
func TestPacerHoldsTheThirdWriteOfASecond(t *testing.T) {
	p := newPacer()
	ctx := t.Context()
	start := time.Now()
	for range 3 {
		if err := p.wait(ctx, "a"); err != nil {
			t.Fatal(err)
		}
	}
	p.start() // the service has answered RESOURCE_EXHAUSTED: pace from now on
	if err := p.wait(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took >= time.Second {
		t.Fatalf("three writes of a before the start and one of b waited %v; want no wait", took)
	}
	if err := p.wait(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("a write of a after the start went after %v; want at least a second after the writes before it", took)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_ = p.wait(ctx, "c")
	_ = p.wait(ctx, "c")
	if err := p.wait(cctx, "c"); err == nil {
		t.Error("a canceled wait returned nil")
	}
}
