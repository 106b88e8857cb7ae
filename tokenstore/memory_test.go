package tokenstore_test

import (
	"testing"

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
