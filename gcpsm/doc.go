// Package gcpsm stores OAuth tokens in Google Cloud Secret Manager. Its
// [Store] implements [tokenstore.Store] and [tokenstore.Leaser] with the
// [casstore] engine (the lookup rules, document and index formats and
// concurrency control shared by every cloudtokens adapter), on the
// official client cloud.google.com/go/secretmanager/apiv1.
//
//	client, err := secretmanager.NewClient(ctx) // Application Default Credentials
//	store, err := gcpsm.New(ctx, client, "my-project", "zoho-prod", gcpsm.WithIndexCache(true))
//
// Package [github.com/cloudtokens/cloudtokens/gcpsm/gcpsmtest] is an
// in-process Secret Manager emulator for tests, with options for the
// service's eventual consistency, quotas and rate limits.
//
// # Layout
//
// A store with prefix P keeps one secret per token, P_token-<id>, and one
// per index shard, P_index-<n>. Secret IDs come from token IDs (random, or
// [A-Za-z0-9_-]{1,64}), never from user names; P is 1 to [MaxPrefixLength]
// (184) characters of [A-Za-z0-9_-], so every ID is a valid secret ID of
// at most 255 characters ("/" is not allowed: a secret ID is one segment
// of the resource name projects/*/secrets/*). Every secret carries the
// label [PrefixLabel] with the prefix (or a digest of it), the labels of
// [WithLabels], and the replication of [WithReplication].
//
// # Versions and compare-and-swap
//
// A document's value is the payload of the version that the secret's
// user-defined alias "current" ([CurrentAlias]) names; its casstore
// version is that version's number. A write adds a version (with a
// CRC32C checksum) and, in one UpdateSecret under the secret's etag,
// moves "current" to it and "previous" ([PreviousAlias]) to the version it
// replaces; then it destroys the version "previous" named before. So a
// secret keeps at most 2 billed versions, and the version a lagging
// reader may still resolve "current" to stays readable until the next
// write or refresh lease (below). The etag makes the move a compare-and-swap: a writer moves the
// alias only under an etag it held before adding its version, so once the
// alias has moved to n no version below n can become current again.
//
// A Store remembers the etag and aliases of the last 4,096 secrets it
// wrote or read the metadata of, so a refresh by the process that wrote
// the token last is 3 calls: AddSecretVersion, UpdateSecret,
// DestroySecretVersion. Otherwise GetSecret comes first. A wrong memory
// costs a failed UpdateSecret, never a lost write. UpdateSecret's answer
// must name the new version under both aliases, or the write fails with
// [ErrAliasNotMoved].
//
// # The refresh lease
//
// [Store.AcquireLease] takes the lease on a token's current version n by
// destroying version n-1, the one [PreviousAlias] names
// (casstore.VersionLeaser): DestroySecretVersion succeeds once per
// version, so one caller wins and the others are answered
// FAILED_PRECONDITION; GetSecretVersion's destroy_time tells them when the
// lease began, and it runs for the lease TTL from then. The holder then
// reads version n+1 by number (strongly consistent): if it exists, a
// write moved the alias past n (or may be about to) and the lease is
// written into the secret instead, a compare-and-swap. The holder's save
// adds n+1 and moves both aliases, and destroys nothing more: a refresh
// with the lease is 3 write requests, the same as a save alone, instead
// of 6 when the lease was a write of its own. During the lease the secret
// has 1 billed version, after the save 2. A lease whose TTL has run out
// (its holder died) is taken over by a lease written into the secret,
// which moves the alias and so ends the version lease for every process;
// ReleaseLease does the same with the unchanged token. A token's first
// version has nothing to destroy: its first lease is a write.
//
// # Consistency
//
// Secret Manager promises strong consistency only for "adding a secret
// version and then immediately accessing that secret version by version
// number"; reads through aliases, GetSecret and the lists are eventually
// consistent ("typically converge within minutes, but may take a few
// hours"). The store relies on the etag check of UpdateSecret being made
// against the real state (a stale etag fails with FAILED_PRECONDITION), so
// a stale read can cost a retry but never a lost write:
//
//   - a read never returns a version older than one this Store has seen
//     current (it reads that one by number);
//   - a read that meets a destroyed or disabled version, or a NOT_FOUND
//     alias of a secret that has versions, is retried with backoff for
//     [WithStaleReadWait] (default 5 s), then fails with [ErrStaleAlias]
//     (which wraps tokenstore.ErrConflict);
//   - a failed alias move is settled before anything is destroyed: a
//     GetSecret, and when that is not conclusive, a fence (an UpdateSecret
//     that changes nothing) whose answer is the real state.
//
// # Cost per operation (calls, measured by TestCallBudgets)
//
//	FindTokenByID                          1  (AccessSecretVersion; 2 for a missing token)
//	FindToken by user/grant/refresh, cold  2  (index shard, token)
//	FindToken, warm index cache            1  (WithIndexCache(true))
//	FindToken by access token              1 + N (a scan of every token)
//	SaveToken refresh (access/expiry)      3  (AddSecretVersion, UpdateSecret, DestroySecretVersion),
//	                                          by the store that wrote the token last; +1
//	                                          GetSecret otherwise, +1 AccessSecretVersion
//	                                          for a store that has not read it
//	SaveToken new                          7  lookup (1), 3 to create the token secret,
//	                                          1 index update (3; 4 with GetSecret)
//	SaveToken rotating the refresh token   10 (index claim, token, index release)
//	DeleteToken                            6–7 (2 reads, DeleteSecret, an index update)
//	AcquireLease                           2  (DestroySecretVersion of the previous version,
//	                                          AccessSecretVersion of the next by number; +1
//	                                          GetSecret when this store has not written the
//	                                          token; a token's first version: a write, 3)
//	AcquireLease, another process holds it 4  (once; then 1 AccessSecretVersion per call)
//	ReleaseLease                           3  (AccessSecretVersion, AddSecretVersion, UpdateSecret)
//	Tokens                                 IndexShards + N AccessSecretVersion,
//	                                          at most WithReadWorkers (default 16) in flight
//	Check                                  ListSecrets per 5,000 secrets + IndexShards + N
//
// A refresh through tokensource (lease, provider call, save) is 3 write
// requests, 9 when the provider rotates refresh tokens (the index entry
// moves): the lease destroys the token's previous version, which the save
// would otherwise destroy (see "The refresh lease" below); see the README
// for the fleet capacity this gives on the default quota of 600 write
// requests per minute per project.
//
// # Limits
//
//   - Document size: 65,536 bytes (the Secret Manager payload limit);
//     larger ones fail with tokenstore.ErrTooLarge before any call.
//   - AddSecretVersion and UpdateSecret are soft-limited to 2 per second
//     per secret, so one secret takes about one write a second. Requests
//     answered RESOURCE_EXHAUSTED or UNAVAILABLE are retried with backoff
//     ([WithTransientRetries], default 5: pauses up to 0.5 s, 1 s, 2 s,
//     4 s, 8 s); a throttled write first checks that it can still win.
//   - Project quotas: 90,000 access, 600 read and 600 write requests per
//     minute.
//
// # Errors
//
// NOT_FOUND maps to tokenstore.ErrNotFound and ALREADY_EXISTS to
// casstore.ErrExists; an etag mismatch during a write to
// casstore.ErrVersionMismatch (retried by the engine). A call cut short by
// its context gives an error wrapping context.Canceled or
// context.DeadlineExceeded. Every other status, PERMISSION_DENIED
// included, is returned wrapped with the secret ID, so status.Code and
// errors.As still find it. A payload whose CRC32C does not match gives
// [ErrChecksum]; an invalid New argument, [ErrInvalidConfig] or
// [ErrInvalidPrefix]. Errors and log records carry secret IDs and version
// numbers, never token values or user names.
package gcpsm
