package casstore

import (
	"sync"

	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// recentDocs remembers, per token, the document this Store last read or
// wrote and its version, so that saving a token it already knows costs
// the compare-and-swap write alone: the remembered version is the
// expected one. A remembered document is only ever a guess: when the
// write finds another version, the save forgets it and decides again from
// a fresh read, so a stale entry costs one failed write, never a lost
// update. Entries are immutable once stored.
type recentDocs struct {
	mu  sync.Mutex
	max int
	m   map[string]*storedToken
}

func newRecentDocs(max int) *recentDocs {
	return &recentDocs{max: max, m: map[string]*storedToken{}}
}

// get returns the remembered document of id, or nil.
func (r *recentDocs) get(id string) *storedToken {
	if r.max <= 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[id]
}

// put remembers a copy of tok with its lease and version. When full it
// forgets an arbitrary entry.
func (r *recentDocs) put(tok *tokenstore.Token, lease *tokenstore.Lease, version string) {
	if r.max <= 0 || tok == nil || version == "" {
		return
	}
	st := &storedToken{tok: tok.Clone(), version: version}
	if lease != nil {
		l := *lease
		st.lease = &l
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.m[tok.ID]; !ok && len(r.m) >= r.max {
		for id := range r.m {
			delete(r.m, id)
			break
		}
	}
	r.m[tok.ID] = st
}

// forget drops the document of id.
func (r *recentDocs) forget(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, id)
}

// clear drops every document.
func (r *recentDocs) clear() {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.m)
}
