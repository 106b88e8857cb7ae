// Package vault keeps OAuth tokens (tokenstore.Store, tokenstore.Leaser)
// in a HashiCorp Vault KV version 2 secrets engine, through
// github.com/hashicorp/vault/api.
//
//	client, _ := api.NewClient(api.DefaultConfig()) // VAULT_ADDR, VAULT_TOKEN, VAULT_NAMESPACE, TLS ...
//	store, err := vault.New(ctx, client, "myapp/tokens", vault.WithIndexShards(4))
//
// The caller builds the *api.Client, so every auth method works (a token,
// AppRole, AWS IAM, Kubernetes, ... through client.Auth().Login) and so do
// namespaces (client.SetNamespace: the X-Vault-Namespace header goes out
// on every request). New checks that the mount (WithMount, default
// "secret") is KV v2: a KV v1 mount has no check-and-set and is refused
// with a *MountError wrapping ErrNotKVv2; a missing mount gives
// ErrMountNotFound.
//
// # Layout
//
// The store is the casstore engine on a Backend: one KV entry per token,
// <mount>/data/<prefix>/token-<id>, and the index, <prefix>/index-<n>
// (WithIndexShards). Entry paths come from token IDs, never from user
// names; the prefix is validated (segments of [A-Za-z0-9._-], no empty,
// "." or ".." segment, no leading "/"). Each entry holds one string field,
// "document", with the document JSON byte for byte:
//
//	vault kv get -field=document secret/myapp/tokens/token-<id>
//
// Every write is a check-and-set: cas=0 to create, cas=<version read> to
// update; a mismatch is retried by the engine with a fresh read, up to
// WithMaxAttempts, then tokenstore.ErrConflict. New entries get
// max_versions 5 (WithMaxVersions), so few superseded tokens stay
// readable.
//
// # Lost responses and consistency
//
// A write whose answer was lost is retried by the Vault client and then
// meets its own write: a create or update that finds exactly the bytes it
// wrote at the expected version succeeds with that version, and a delete
// finds its own deletion marker (which carries a random ID) and succeeds.
// Errors of a call cut short by its context wrap context.Canceled or
// context.DeadlineExceeded. WithConsistency adds the X-Vault-Index
// read-after-write headers for Vault Enterprise performance standbys.
//
// # Delete
//
// DeleteToken first writes a deletion marker with cas=<version>, so of
// concurrent deletes exactly one succeeds and no update based on the old
// version can bring the token back; then it deletes the entry's metadata:
// every version is gone, nothing is recoverable. WithSoftDelete instead
// soft-deletes the marker version and keeps the earlier versions, which
// hold the token, readable with "vault kv get -version=N".
//
// # Cost per operation (HTTP requests, measured by the integration tests)
//
//	New                                   1  GET sys/internal/ui/mounts/<mount>
//	FindTokenByID                         1  GET token
//	FindToken by user, grant or refresh   2  GET index, GET token (cold)
//	                                      1  GET token (WithIndexCache, warm)
//	FindToken by access token             shards + N (a scan)
//	SaveToken refresh (access + expiry)   1  PUT token, by ID, of a token the store has read or written
//	                                      2  GET token, PUT token, by ID, token not read before
//	                                      3  by user name or refresh token, cold (2 warm)
//	SaveToken new token                   4  GET index, PUT token, PUT metadata, PUT index
//	                                      +1 PUT metadata for a new index shard
//	SaveToken rotating the refresh token  4  GET index, PUT index, PUT token, PUT index
//	DeleteToken                           6  GET token ×2, PUT marker, DELETE metadata, GET index, PUT index
//	Tokens                                shards + N GETs, at most WithReadWorkers (8) in flight
//	DeleteTokens                          3N + 2 per shard
//	Check                                 1 LIST + shards + N GETs
//
// WithMaxVersions(0) saves the metadata PUT of a new entry.
//
// # Limits
//
// A document (token or index shard) is at most 65,536 bytes
// (tokenstore.MaxDocumentSize), checked before any request; a shard holds
// about 300 tokens (about 400 bytes per token once keys spread over many
// shards), so use about one shard per 100 tokens. IDs are 1 to 64
// characters of [A-Za-z0-9_-]. Vault imposes no request quota of its own
// unless rate-limit quotas are configured; the client's retries (5xx, 429)
// apply.
//
// The README of this module has the auth examples and the least-privilege
// policy.
package vault
