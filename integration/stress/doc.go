// Package stress is a cross-process stress harness for the cloudtokens
// stores: several OS processes, each with many goroutines, save, find,
// refresh and delete the same users through one shared store, and the
// harness then checks that no token was lost or duplicated and that the
// index matches the token documents exactly (casstore's Store.Check).
//
// The AWS, GCP and Vault suites call it from a test:
//
//	func TestStress(t *testing.T) {
//		stress.Run(t, stress.Config{}, func(tb testing.TB, o stress.StoreOptions) stress.Store {
//			s, err := awssm.New(tb.Context(), client(tb), o.Prefix, awssm.WithIndexShards(o.IndexShards))
//			if err != nil {
//				tb.Fatal(err)
//			}
//			return s
//		})
//	}
//
// The zero Config is the full workload: 4 processes × 16 goroutines × 500
// users, 16 index shards.
//
// # Processes
//
// Run called in the test process (the parent) picks a unique prefix and
// starts Config.Processes children with package proctest: the test binary
// re-executed with -test.run matching only the calling test. In those
// children Run runs one worker of the workload instead; the parent's
// configuration reaches them in CLOUDTOKENS_STRESS_* variables. The rest
// of the parent's environment is passed through (so endpoints such as
// CLOUDTOKENS_AWS_ENDPOINT reach the children), plus Config.Env: the place
// for an address of a server that the parent started, such as the GCP
// emulator. Because a child runs the same test function, parent-only setup
// must be skipped there:
//
//	var env []string
//	if !stress.IsChild() {
//		addr := startEmulator(t) // only the parent serves
//		env = append(env, "GCP_EMULATOR_ADDR="+addr)
//	}
//	stress.Run(t, stress.Config{Env: env}, func(tb testing.TB, o stress.StoreOptions) stress.Store {
//		return newGCPStore(tb, o.Getenv("GCP_EMULATOR_ADDR"), o.Prefix, o.IndexShards)
//	})
//
// The same applies to a TestMain that starts servers. In a child Run
// returns nil after its worker is done; the test must do nothing more.
// The child's own test result is its exit code, which the parent checks,
// and it reports its counts and timings in a JSON file in a directory
// shared by all processes.
//
// # Workload
//
// The processes move through four phases in lock step: each one writes a
// marker file phaseN-<worker> to the shared directory and waits until all
// have done so (a proctest.Barrier). Inside a process, goroutine g owns the
// users u with u % Goroutines == g and goes through them in order, so the
// same user is handled by one goroutine of every process at about the same
// time: real contention on the same token and on the same index shards.
//
//  1. save: every process saves every user with its own access token;
//     every RefreshTokenEvery-th user also carries a refresh token (the
//     same in every process), a client ID and a client secret.
//  2. find: every process finds every user by user name, and the users
//     with a refresh token also by refresh token, client ID and secret.
//     All must be found, with the same ID in every process.
//  3. delete and refresh: every process deletes every DeleteEvery-th user
//     by the ID it found (exactly one DeleteToken per user succeeds across
//     all processes, the others get ErrNotFound) and saves a refreshed
//     access token and expiry for every other user, by refresh token where
//     the user has one, by user name otherwise.
//  4. verify, in the parent with a fresh store: Tokens lists exactly one
//     token per surviving user and none of a deleted one, every token has
//     the ID all processes agreed on and an access token that one of the
//     successful phase-3 saves wrote; the deletes add up; every
//     surviving user is found by user name (and by refresh token) as the
//     token listed for it, and the deleted users are not found; Check
//     reports that the index and the documents agree exactly (no orphans,
//     no missing entries, no duplicate keys).
//
// An operation that returns an error other than the expected ErrNotFound
// fails the test. tokenstore.ErrConflict (retries exhausted) is counted
// separately and fails the test too unless Config.AllowConflicts is set.
// Run logs the wall time of every phase and the count, outcome and latency
// percentiles of every kind of operation (t.Logf), and returns them.
//
// # Index shards
//
// At 500 users a single index shard is too small: one 64 KiB shard holds a
// few hundred tokens (package index documents the measured capacity: ~170
// tokens per shard in the first index format, ~300 in the compact one), and
// every concurrent writer of one shard retries the others'
// compare-and-swap. Config.IndexShards (default SuggestedShards(Users), 16
// for 500 users) is handed to the factory as StoreOptions.IndexShards;
// every store of a run, in every process, must use it.
//
// # Eventual consistency
//
// On a store whose reads lag writes (a stale layer under the stores, or
// an emulator that lags as the cloud documents), set
// Config.VisibilityLag: the parent then verifies only once the children's
// last writes have become visible to a process that did not make them.
// The workload itself is unchanged: every process saves every user in
// phase 1 and must find it in phase 2, which a store's monotonic reads
// guarantee (it never returns a document older than one it wrote), and
// every write is checked against the real state, so the verification
// applies as it is. Package integration/staleness runs it on every
// backend.
//
// Config.GrowingIndex runs the stores with their default options instead:
// the index starts as one bucket and grows by itself (splits) while the
// processes write, and Config.MinBuckets makes the run fail unless it
// ends with at least that many buckets. Use enough users for the index to
// pass its split size many times (a few thousand for 16 buckets).
//
// # Cleanup
//
// After verifying, the parent calls DeleteTokens on its store (unless
// Config.KeepData). That leaves the index documents; a factory for a cloud
// backend should register a tb.Cleanup (for StoreOptions.Worker == -1) that
// removes everything under the prefix.
package stress
