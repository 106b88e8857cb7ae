package casstore

import (
	"container/list"
	"sync"
)

// recentDocs remembers, per token, the document this Store last read or
// wrote: its token, metadata and version. It serves two purposes:
//
//   - saving a token the Store already knows costs the compare-and-swap
//     write alone, because the remembered version is the expected one. A
//     remembered document is only ever a guess for that: when the write
//     finds another version, the save forgets it and decides again from a
//     fresh read, so a stale entry costs one failed write, never a lost
//     update;
//   - reads are monotonic: a read that returns a lower generation than the
//     remembered one came from a lagging replica, and the remembered
//     document is returned instead.
//
// It holds at most max documents, least recently used out first. Entries
// are immutable once stored.
type recentDocs struct {
	mu  sync.Mutex
	max int
	ll  *list.List               // of *storedToken, most recent first
	m   map[string]*list.Element // by token ID
}

func newRecentDocs(max int) *recentDocs {
	return &recentDocs{max: max, ll: list.New(), m: map[string]*list.Element{}}
}

// get returns the remembered document of id, or nil.
func (r *recentDocs) get(id string) *storedToken {
	if r.max <= 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.m[id]
	if !ok {
		return nil
	}
	r.ll.MoveToFront(e)
	return e.Value.(*storedToken)
}

// put remembers a copy of st.
func (r *recentDocs) put(st *storedToken) {
	if r.max <= 0 || st == nil || st.version == "" {
		return
	}
	c := &storedToken{tok: st.tok.Clone(), meta: st.meta, version: st.version, wrote: st.wrote}
	if st.meta.Lease != nil {
		l := *st.meta.Lease
		c.meta.Lease = &l
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.m[c.tok.ID]; ok {
		e.Value = c
		r.ll.MoveToFront(e)
		return
	}
	r.m[c.tok.ID] = r.ll.PushFront(c)
	for r.ll.Len() > r.max {
		last := r.ll.Back()
		r.ll.Remove(last)
		delete(r.m, last.Value.(*storedToken).tok.ID)
	}
}

// forget drops the document of id.
func (r *recentDocs) forget(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.m[id]; ok {
		r.ll.Remove(e)
		delete(r.m, id)
	}
}

// clear drops every document.
func (r *recentDocs) clear() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ll.Init()
	clear(r.m)
}
