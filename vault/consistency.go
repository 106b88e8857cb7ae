package vault

import (
	"fmt"
	"net/http"
	"sync"

	"github.com/hashicorp/vault/api"
)

// Consistency selects how a Store's requests relate to its own earlier
// writes on a Vault Enterprise cluster with performance standbys or
// performance replicas, where a read may be served by a node that has
// not yet applied the latest write (see "Vault eventual consistency" in
// the Vault Enterprise documentation). Writes always go to the active
// node, and every check-and-set is checked there, so a stale read can
// cost a failed write and a retry but never a lost update; the options
// below spare those retries and make a Store read its own writes.
type Consistency int

const (
	// EventualConsistency, the default, sends no consistency header:
	// each node answers from its own state. A single node (a dev server,
	// Vault Community Edition, HCP Vault) is always consistent.
	EventualConsistency Consistency = iota
	// ReadYourWrites records the X-Vault-Index state of every response
	// (api.MergeReplicationStates) and sends it on every later request
	// of the Store: a node that has not caught up with the Store's own
	// writes answers HTTP 412, which the client retries
	// (api.Config.MaxRetries and its backoff) until a node has.
	ReadYourWrites
	// ReadYourWritesForward is ReadYourWrites plus the header
	// X-Vault-Inconsistent: forward-active-node (sent with the state,
	// once there is one), with which a node that has not caught up
	// forwards the request to the active node instead of answering 412.
	// The cluster must allow it (allow_forwarding_via_header in its
	// replication configuration): otherwise Vault refuses such requests
	// with HTTP 400.
	ReadYourWritesForward
)

func (c Consistency) String() string {
	switch c {
	case EventualConsistency:
		return "EventualConsistency"
	case ReadYourWrites:
		return "ReadYourWrites"
	case ReadYourWritesForward:
		return "ReadYourWritesForward"
	}
	return fmt.Sprintf("Consistency(%d)", int(c))
}

// WithConsistency sets the read-after-write consistency of the Store's
// requests (default EventualConsistency). On a single node the headers
// change nothing; they matter on Vault Enterprise clusters with
// performance standbys or replicas.
//
// The state is kept per Store (all its goroutines share it), so a Store
// never reads an entry older than one it has written. Another process's
// writes are not covered: a reader may still see them late, which the
// check-and-set protocol tolerates (its writes are refused and retried).
func WithConsistency(c Consistency) Option {
	return func(cfg *config) error {
		if c < EventualConsistency || c > ReadYourWritesForward {
			return invalid("WithConsistency(%d): unknown consistency", int(c))
		}
		cfg.consistency = c
		return nil
	}
}

// apply returns a shallow copy of client that records and requires the
// X-Vault-Index state of this Store. The copy has only these callbacks:
// request or response callbacks set on client with
// WithRequestCallbacks or WithResponseCallbacks do not carry over.
func (c Consistency) apply(client *api.Client) *api.Client {
	st := &replicationState{forward: c == ReadYourWritesForward}
	return client.WithResponseCallbacks(st.record).WithRequestCallbacks(st.require)
}

// replicationState is the merged X-Vault-Index state a Store has seen.
type replicationState struct {
	forward bool // also ask a lagging node to forward

	mu     sync.Mutex
	states []string
}

func (s *replicationState) record(resp *api.Response) {
	if resp == nil || resp.Response == nil {
		return
	}
	v := resp.Header.Get(api.HeaderIndex)
	if v == "" {
		return // Vault without replication states (a single node) sends none
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.states = api.MergeReplicationStates(s.states, v)
}

func (s *replicationState) require(req *api.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.states) == 0 {
		return
	}
	if req.Headers == nil {
		req.Headers = http.Header{}
	}
	for _, v := range s.states {
		req.Headers.Add(api.HeaderIndex, v)
	}
	if s.forward {
		// What api.ForwardInconsistent sets, but only with a state:
		// a node without replication states (a dev server, Community
		// Edition) refuses the header, and needs no forwarding.
		req.Headers.Set(api.HeaderInconsistent, "forward-active-node")
	}
}
