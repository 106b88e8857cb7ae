// Package casstore implements [tokenstore.Store], [tokenstore.Leaser] and
// [tokenstore.Importer] once, on any backend that keeps small named
// documents with compare-and-swap versions ([Backend]). The awssm, gcpsm
// and vault adapters are such backends; the lookup rules, the document and
// index formats, the upsert logic, the index, its growth and the recovery
// from interrupted operations all live here, so every adapter behaves the
// same. [MemoryBackend] is an in-memory backend for tests, and package
// casstoretest has backend wrappers that inject crashes, stale reads and
// quota refusals.
//
// # Layout
//
// A store keeps one document per token, named [TokenName](id), and an
// index of bucket documents named [IndexName](n) (see package index for
// the keys, the bucket format and how buckets are chosen). Names use only
// [a-z0-9-]; a backend adds its own prefix. Token documents are the truth;
// the index says which token holds which key.
//
// # The write protocol
//
// Every write is a compare-and-swap on one document (or a create that
// fails if the document exists). There are no cross-document transactions,
// so the index and the documents are written in an order that keeps every
// intermediate state safe:
//
//   - Insert: claim every key of the new token in the index (its ID, user
//     name, grant and refresh token digests; the bucket of the key the
//     save's own lookup rule uses first), then create its document. So a
//     document that exists is always listed and findable, and a concurrent
//     insert of the same record loses its first claim and updates the
//     winner instead of creating a second record.
//   - Update: claim the keys the update adds (for the document's next
//     generation), swap the document, release the keys it dropped. A
//     refresh that changes only the access token and expiry is the swap
//     alone.
//   - Delete: read the token (its keys), delete its document, release its
//     keys.
//
// Claims carry the generation of the document they are for, which makes
// the leftovers of an interrupted operation recognisable: an entry whose
// document is at that generation or later without the key is dead and
// dropped by anyone; one whose document is behind (or missing) belongs to
// a save in progress, which is waited on for [Options.ClaimWait] and then
// fenced: a conditional write of the holder's document (or a tombstone
// where it is missing) makes the stalled write fail when it resumes. See
// claims.go and, for every state an interrupted save can leave and how it
// converges, save.go.
//
// A write whose outcome is unknown (a lost response, a timeout, a
// cancelled context) is settled by reading the document back: the write
// happened if the document holds exactly what was written. Clean-up after
// a cancelled context (withdrawing claims, releasing keys) runs on a
// context of its own with [Options.CleanupTimeout]. Entries that a
// release could not remove in that time (a throttled bucket), and the
// claims of a save that lost its race and stopped, are dead: the Store
// remembers them, and its next write of their bucket drops them in the
// same compare-and-swap after reading their document again (leftovers.go),
// so that Check is clean without a Repair while the process lives.
//
// [Store.Repair] rebuilds the index from the documents (a lost index or
// bucket, unindexed documents, dead entries, claims of saves that never
// finished, duplicate records) while other processes keep working, and
// [Store.Check] reports what it would fix.
//
// # Consistency
//
// The protocol relies on one assumption: conditional writes (compare-and-
// swap, create-if-absent) are checked against the authoritative state.
// Reads may be stale, as the clouds document for some of theirs. A stale
// read can make a compare-and-swap fail (the operation reads again and
// retries), make a fence fail (it retries), or make a lookup miss a token
// written a moment ago by another process (eventual visibility); it can
// never make a write land on an outdated base. Token documents carry a
// generation, and a Store never returns a document older than one it has
// read or written ([Options.RememberTokens] of them): reads are monotonic
// per Store.
//
// # Growth and quotas
//
// The index starts as one bucket and splits one bucket at a time, online,
// when a bucket passes index.SplitSize or its write rate, scaled to the
// whole index, would bring the busiest buckets past half of the backend's
// write quota ([QuotaReporter]: AWS Secrets Manager keeps at most 100
// versions per secret in 24 hours, GCP Secret Manager takes about one
// write a second per secret). Under a daily version quota it also grows
// ahead of a burst: a split deals a bucket's share of the load between
// the halves, but the parent's document keeps the versions it already
// has, and the oldest buckets are split first in every round; so each
// bucket records its own versions of the last 24 hours (a compare-and-swap
// a Store lost counts too: AWS keeps its version), and the index grows a
// round whenever a bucket has taken a tenth of what its document has left
// in fresh writes within the hour (10,000 sign-ups in one minute on a new
// store leave no secret above 92 versions; see burstWanted in layout.go).
// No option is needed, and processes never
// have to agree on a shard count: every bucket records its own depth and
// the bucket count its writer knew, and a reader with a stale idea of the
// layout learns it from the first bucket it reads. A split costs two
// writes (see split.go). Goroutines of one Store that change the same
// bucket at the same time share its next write (group commit, see
// commit.go): a burst of sign-ups in one process costs about one bucket
// write per round, not one per sign-up. Indexes do not shrink; an index made by an
// earlier version with a fixed number of shards is read and written as it
// is.
//
// # Cost per operation (calls to the Backend)
//
// K is the number of buckets a token's keys route to (at most 3: its ID
// entry shares the bucket of its primary key). "Warm" means
// [Options.CacheIndex] with the bucket in memory.
//
//	FindTokenByID                1 Read
//	FindToken by user/grant/refresh
//	    cold                     2 Reads (bucket, token); +1 when this
//	                             process's idea of the layout is behind
//	    new Store                3 requests: Read of bucket 0, which
//	                             records the bucket count (written after
//	                             every split on backends without a daily
//	                             version quota, while bucket 0 has the
//	                             time for it), Read of the bucket, Read
//	                             of the token. On a [BatchReader] (AWS,
//	                             where bucket 0 records the count only at
//	                             each power of two, for its version
//	                             quota), one ReadMany of the key's bucket
//	                             and the child a split of the current
//	                             round may have moved it to. +1 Read when
//	                             a split happened since bucket 0 was
//	                             written (GCP: bucket 0 too busy for the
//	                             count) or the read of it lagged
//	    warm cache, verified     1 Read (token)
//	    warm cache, stale        3 Reads (token, bucket, token)
//	FindToken by access token    2 Reads for a record with nothing but an
//	                             access token; otherwise 1 Read + a scan
//	                             (all buckets + ReadMany of every token)
//	SaveToken refresh, by ID
//	    token remembered         1 Update
//	    otherwise                1 Read + 1 Update
//	SaveToken refresh, by rules  lookup (as FindToken) + 1 Update
//	SaveToken new                lookup + K bucket Updates + 1 Create
//	                             (+ 2 Reads and 2 writes when a split
//	                             triggers, + 1 Read and 1 Update of
//	                             bucket 0 for the count; the
//	                             first insert of a store also Lists once,
//	                             to tell a new index from a lost one)
//	AcquireLease                 1 Update if remembered, else 1 Read + 1 Update;
//	                             on a VersionLeaser, 1 LeaseVersion in place
//	                             of the Update (a token's first version: the
//	                             Update)
//	DeleteToken                  1 Read + 1 Delete + K bucket Updates
//	Tokens                       1 Read per bucket + ReadMany(N)
//	DeleteTokens                 1 Read per bucket + List + N Deletes +
//	                             1 Update per bucket that had entries
//
// A bucket Update starts from the copy this process last knew when a
// failed guess costs nothing but a retry, and from a Read on backends
// whose failed writes count against a quota (AWS). A token is remembered
// when this Store has read or written it since ([Options.RememberTokens],
// 4096 by default): the Store then knows the version its compare-and-swap
// needs. If another process wrote the token in between, the write fails
// and the save decides again from a fresh read.
package casstore
