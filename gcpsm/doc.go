// Package gcpsm stores OAuth tokens in Google Cloud Secret Manager. Its
// Store implements tokenstore.Store and tokenstore.Leaser with the casstore
// engine (the lookup rules, document and index formats and concurrency
// control shared by every cloudtokens adapter), on the official client
// cloud.google.com/go/secretmanager/apiv1.
//
//	client, err := secretmanager.NewClient(ctx) // Application Default Credentials
//	store, err := gcpsm.New(ctx, client, "my-project", "zoho-prod", gcpsm.WithIndexCache(true))
//
// Package gcpsmtest is an in-process Secret Manager emulator for tests.
//
// # Layout
//
// A store with prefix P keeps one secret per token, P_token-<id>, and one
// per index shard, P_index-<n>. Secret IDs come from token IDs (random, or
// [A-Za-z0-9_-]{1,64}), never from user names; P is 1 to MaxPrefixLength
// (184) characters of [A-Za-z0-9_-], so every ID is a valid secret ID of
// at most 255 characters. Every secret carries the label PrefixLabel
// (cloudtokens_prefix) with the prefix, or a digest of it when the prefix
// is not a valid label value, plus the labels of WithLabels, and the
// replication of WithReplication (automatic by default).
//
// # Versions and compare-and-swap
//
// A document's value is the payload of the version that the secret's
// user-defined alias "current" (CurrentAlias) names; its casstore version
// is that version's number. Readers access versions/current, one call.
// A writer reads the secret (its etag and aliases), checks that the alias
// still names the version it read, adds a version (with a CRC32C
// checksum) and moves the alias with UpdateSecret under the etag. When the
// etag has changed, another writer won: the loser destroys the version it
// added and the engine retries with a fresh read, up to WithMaxAttempts
// times before tokenstore.ErrConflict. A failed UpdateSecret is confirmed
// with one GetSecret before anything is destroyed: a timeout may hide a
// move that happened, and then the write has succeeded. The winner destroys the version it
// replaced, so a secret keeps exactly one billed version: after any number
// of refreshes, one version is ENABLED and the rest are DESTROYED. Only a
// process that dies between adding a version and destroying the dead one
// leaves a billed version behind; Store.DestroyStaleVersions removes such
// versions safely while the store is in use.
//
// Create makes the secret, adds version 1 and sets the alias under the
// etag CreateSecret returned. A secret without the alias (a creation that
// never finished) reads as missing, and the next Create of it takes it
// over under its etag; of several racing creators exactly one wins.
//
// # Cost per operation (calls, measured by TestCallBudgets)
//
//	FindTokenByID                          1  (AccessSecretVersion)
//	FindToken by user/grant/refresh, cold  2  (index shard, token)
//	FindToken, warm index cache            1  (WithIndexCache(true))
//	FindToken by access token              1 + N (a scan of every token)
//	SaveToken refresh (access/expiry)      4  (GetSecret, AddSecretVersion, UpdateSecret,
//	                                          DestroySecretVersion), all on the token's own
//	                                          secret, when the store has read or written the
//	                                          token; 5 otherwise (AccessSecretVersion first)
//	SaveToken new                          8  lookup (1), 3 to create the token secret,
//	                                          1 index update (4) from the shard the lookup read
//	SaveToken rotating the refresh token   13
//	DeleteToken                            7  (DeleteSecret + an index update)
//	AcquireLease                           4  (token remembered; else 5)
//	ReleaseLease                           5
//	Tokens                                 IndexShards + N AccessSecretVersion,
//	                                          at most WithReadWorkers (default 16) in flight
//	Check                                  ListSecrets per 250 secrets + IndexShards + N
//
// An index update is a compare-and-swap on the shard's secret: 1 read of
// the shard (none with a warm cache, or when the operation has just read
// it) and 4 calls (GetSecret, AddSecretVersion, UpdateSecret,
// DestroySecretVersion); contention adds retries.
//
// # Limits
//
//   - Document size: 65,536 bytes (the Secret Manager payload limit);
//     larger ones fail with tokenstore.ErrTooLarge before any call.
//   - Secret IDs: at most 255 characters of [A-Za-z0-9_-]; hence the
//     prefix limit of 184.
//   - Quotas (per project, at the time of writing): 90,000 access
//     requests per minute; 600 other read requests (GetSecret, List*) and
//     600 write requests (CreateSecret, AddSecretVersion, UpdateSecret,
//     DestroySecretVersion, DeleteSecret) per minute. A refresh costs 1
//     read and 3 writes, so the default write quota allows about 200
//     refreshes a minute per project. AddSecretVersion and UpdateSecret
//     are also soft-limited to 2 per second per (global) secret, which
//     bounds the index updates of one shard to about one per second: use
//     WithIndexShards to spread inserts.
//   - Billing: every ENABLED or DISABLED version is billed; this store
//     keeps one per secret (see above).
//
// # Errors
//
// NOT_FOUND maps to tokenstore.ErrNotFound and ALREADY_EXISTS to
// casstore.ErrExists; an etag mismatch during a write to
// casstore.ErrVersionMismatch (retried by the engine). Every other status,
// PERMISSION_DENIED included, is returned wrapped with the secret ID, so
// status.Code and errors.As still find it. A payload whose CRC32C does not
// match gives ErrChecksum; an invalid New argument, ErrInvalidConfig or
// ErrInvalidPrefix. Errors and log records carry secret IDs, never token
// values.
package gcpsm
