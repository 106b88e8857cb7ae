package gcpsm

import (
	"container/list"
	"maps"
	"sync"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
)

// rememberSecrets is how many secrets a Store remembers the etag and
// aliases of.
const rememberSecrets = 4096

// snapshot is a secret's metadata as one response showed it: the etag and
// the version aliases that go with it.
type snapshot struct {
	etag    string
	aliases map[string]int64
}

func snapshotOf(sec *secretmanagerpb.Secret) snapshot {
	return snapshot{etag: sec.GetEtag(), aliases: maps.Clone(sec.GetVersionAliases())}
}

func (s snapshot) current() int64  { return s.aliases[CurrentAlias] }
func (s snapshot) previous() int64 { return s.aliases[PreviousAlias] }

// secretMemory is what a Store knows about one secret.
type secretMemory struct {
	snap snapshot // the newest snapshot seen; etag "" if none
	// floor is the newest version this process has seen named by the
	// current alias. The alias only moves forward, so a read that resolves
	// it to an older version is lagging, and a write expecting an older
	// version has lost.
	floor int64
	// contended: a write from the remembered etag failed because another
	// writer had moved the alias. Writes read the etag first (GetSecret)
	// until a read shows that the remembered etag was right after all.
	contended bool
	// leased is the version this process destroyed to lease the one
	// after it (LeaseVersion); the next write does not destroy it again.
	leased int64
}

// memory remembers secretMemory for the most recently used secrets, at
// most max of them. It is safe for concurrent use. It only saves calls:
// every write is still conditional on the real etag, so a wrong memory
// costs a failed UpdateSecret, never a lost write.
type memory struct {
	mu    sync.Mutex
	max   int
	order *list.List // of *memoryEntry, most recently used first
	byKey map[string]*list.Element
}

type memoryEntry struct {
	key string
	m   secretMemory
}

func newMemory(max int) *memory {
	return &memory{max: max, order: list.New(), byKey: map[string]*list.Element{}}
}

// get returns what is known about secret.
func (k *memory) get(secret string) secretMemory {
	k.mu.Lock()
	defer k.mu.Unlock()
	if e, ok := k.byKey[secret]; ok {
		k.order.MoveToFront(e)
		return e.Value.(*memoryEntry).m
	}
	return secretMemory{}
}

// update applies fn to the memory of secret, creating it if needed.
func (k *memory) update(secret string, fn func(*secretMemory)) {
	if k.max <= 0 {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.byKey[secret]
	if ok {
		k.order.MoveToFront(e)
	} else {
		e = k.order.PushFront(&memoryEntry{key: secret})
		k.byKey[secret] = e
		if k.order.Len() > k.max {
			last := k.order.Back()
			k.order.Remove(last)
			delete(k.byKey, last.Value.(*memoryEntry).key)
		}
	}
	fn(&e.Value.(*memoryEntry).m)
}

// saw records a snapshot of secret from a GetSecret or UpdateSecret
// response. A snapshot older than what is known (its current alias
// names an older version) only lags, and is not kept.
func (k *memory) saw(secret string, s snapshot) {
	cur := s.current()
	k.update(secret, func(m *secretMemory) {
		if cur < m.floor || cur < m.snap.current() {
			return
		}
		m.snap = s
		m.floor = cur
	})
}

// sawCurrent records that the current alias of secret named version v.
func (k *memory) sawCurrent(secret string, v int64) {
	k.update(secret, func(m *secretMemory) { m.floor = max(m.floor, v) })
}

// sawLeased records that this process destroyed version v of secret for
// a lease.
func (k *memory) sawLeased(secret string, v int64) {
	k.update(secret, func(m *secretMemory) { m.leased = v })
}

// setContended records whether writes of secret should read its etag
// first.
func (k *memory) setContended(secret string, contended bool) {
	k.update(secret, func(m *secretMemory) { m.contended = contended })
}

// forgetEtag drops a remembered etag that the service refused.
func (k *memory) forgetEtag(secret, etag string) {
	k.update(secret, func(m *secretMemory) {
		if m.snap.etag == etag {
			m.snap = snapshot{}
		}
	})
}

// forget drops everything known about secret (it was deleted).
func (k *memory) forget(secret string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if e, ok := k.byKey[secret]; ok {
		k.order.Remove(e)
		delete(k.byKey, secret)
	}
}
