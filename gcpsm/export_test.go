package gcpsm

import "github.com/cloudtokens/cloudtokens/tokenstore/casstore"

// BackendOf exposes the store's casstore.Backend to the external tests,
// which exercise the compare-and-swap contract directly.
func BackendOf(s *Store) casstore.Backend { return s.b }

// ListPageSize is the page size of the store's lists.
const ListPageSize = listPageSize
