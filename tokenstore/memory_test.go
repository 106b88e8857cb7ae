package tokenstore_test

import (
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/tokenstoretest"
)

func TestMemoryStoreConformance(t *testing.T) {
	tokenstoretest.Run(t, func(t *testing.T) tokenstore.Store { return tokenstore.NewMemoryStore() })
}

func TestMemoryStoreShared(t *testing.T) {
	tokenstoretest.RunShared(t, func(t *testing.T) (tokenstore.Store, tokenstore.Store) {
		m := tokenstore.NewMemoryStore()
		return m, m
	})
}

// TestMemoryStoreLeaseClock: the leases of a MemoryStore made with a
// clock lapse by that clock, the ones SaveTokenLeased writes included.
func TestMemoryStoreLeaseClock(t *testing.T) {
	now := time.Now()
	m := tokenstore.NewMemoryStoreWithClock(func() time.Time { return now })
	tok := &tokenstore.Token{UserName: "ada", ClientID: "c", RefreshToken: "r"}
	if err := m.SaveTokenLeased(t.Context(), tok, "a", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if ok, err := m.AcquireLease(t.Context(), tok.ID, "b", time.Minute); err != nil || ok {
		t.Fatalf("b took a's running lease: %v %v", ok, err)
	}
	now = now.Add(time.Hour)
	if ok, err := m.AcquireLease(t.Context(), tok.ID, "b", time.Minute); err != nil || !ok {
		t.Fatalf("b did not get a's lapsed lease: %v %v", ok, err)
	}
	if ok, err := m.AcquireLease(t.Context(), tok.ID, "a", time.Minute); err != nil || ok {
		t.Fatalf("a took b's running lease: %v %v", ok, err)
	}
}
