// Package staleness is the eventual-consistency harness of the
// integration tests: the conformance cases for two stores, the
// cross-process stress workload and the 8-process tokensource refresh,
// run on every backend while reads may lag writes by [Lag] (2 s, the lag
// of the consistency issue).
//
// Where the staleness comes from:
//
//   - GCP: the emulator itself (gcpsmtest.WithEventualConsistency(Lag)),
//     as Secret Manager documents it: alias reads, GetSecret and the lists
//     answer from a state up to Lag old, conditional writes check the
//     real state. It is shared by every process that talks to the
//     emulator.
//   - AWS (moto_server) and Vault (dev server): a casstoretest.StaleBackend
//     under the adapter ([Layer], passed with the adapters'
//     WithBackendWrapper option): for Lag after a write that went through
//     the layer, reads of that document (and lists) answer with the state
//     before it, and writes go to the server, which checks them against
//     its real state. The GCP runs add a Layer too.
//   - Vault, in the multi-process runs, also a [VaultStandby] transport:
//     half of the reads of an entry written in the last Lag, by any
//     process, answer the version before, as a performance standby that
//     trails the active node may.
//
// A Layer lives in one process, so it knows the writes that went
// through it, and not those of other processes. The two stores of a
// conformance pair share one Layer, which then stands for the service:
// each sees the other's writes only after the lag. In the multi-process
// runs each process has its own Layer; a read is then stale for the
// documents that process wrote in the last Lag, which in the stress
// workload are the hot ones (every process writes every user and the
// shared index buckets), and the answer is older than every write since,
// the other processes' included. On AWS a process's first reads of a
// document it did not write are fresh; the GCP emulator and the
// VaultStandby lag them too.
//
// The long variant (the stress workload with its full 500 users) runs
// when CLOUDTOKENS_STALENESS_LONG is true ([Long]).
package staleness

import (
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore/casstoretest"
)

// Lag is how long reads may lag writes in these tests.
const Lag = 2 * time.Second

// EnvLong, when true, selects the long variants of the staleness tests.
const EnvLong = "CLOUDTOKENS_STALENESS_LONG"

// Long reports whether the long variants are selected.
func Long() bool {
	v, _ := strconv.ParseBool(os.Getenv(EnvLong))
	return v
}

// Layer is a stale layer that any number of stores of one process
// share: the first backend passed to Wrap is the one every store then
// reads and writes through, under one casstoretest.StaleBackend with a
// window of Lag. The zero Layer is ready to use.
type Layer struct {
	once  sync.Once
	stale *casstoretest.StaleBackend
}

// Wrap is the function to pass to an adapter's WithBackendWrapper. The
// first call wraps b; later calls (another store of the same pair) ignore
// their own backend and share the first one's, so that the stores see
// each other's writes through one lagging view, as processes do through
// the service.
func (l *Layer) Wrap(b casstore.Backend) casstore.Backend {
	l.once.Do(func() { l.stale = casstoretest.NewStaleBackend(b, Lag, 1) })
	return l.stale
}

// StaleReads returns how many reads the layer answered from an older
// state (0 before the first Wrap).
func (l *Layer) StaleReads() int {
	if l.stale == nil {
		return 0
	}
	return l.stale.StaleReads()
}
