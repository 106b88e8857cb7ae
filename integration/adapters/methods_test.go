// Package adapters checks what the three adapters must have in common.
package adapters

import (
	"reflect"
	"testing"

	"github.com/cloudtokens/cloudtokens/awssm"
	"github.com/cloudtokens/cloudtokens/gcpsm"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
	"github.com/cloudtokens/cloudtokens/vault"
)

// Every adapter's Store spells out the engine's whole method set (its
// methods.go forwards each one), so that `go doc` of the adapter shows
// it and no engine method is missing from one adapter.
func TestAdaptersHaveTheEngineMethods(t *testing.T) {
	engine := reflect.TypeFor[*casstore.Store]()
	for _, adapter := range []reflect.Type{
		reflect.TypeFor[*awssm.Store](),
		reflect.TypeFor[*gcpsm.Store](),
		reflect.TypeFor[*vault.Store](),
	} {
		for i := range engine.NumMethod() {
			m := engine.Method(i)
			got, ok := adapter.MethodByName(m.Name)
			if !ok {
				t.Errorf("%s lacks %s", adapter, m.Name)
				continue
			}
			// Compare signatures without the receiver.
			want, have := m.Type, got.Type
			if want.NumIn() != have.NumIn() || want.NumOut() != have.NumOut() {
				t.Errorf("%s.%s has another signature than the engine's", adapter, m.Name)
				continue
			}
			for j := 1; j < want.NumIn(); j++ {
				if want.In(j) != have.In(j) {
					t.Errorf("%s.%s argument %d: %s, the engine's %s", adapter, m.Name, j, have.In(j), want.In(j))
				}
			}
			for j := range want.NumOut() {
				if want.Out(j) != have.Out(j) {
					t.Errorf("%s.%s result %d: %s, the engine's %s", adapter, m.Name, j, have.Out(j), want.Out(j))
				}
			}
		}
	}
}
