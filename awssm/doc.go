// Package awssm stores OAuth tokens in AWS Secrets Manager: a
// tokenstore.Store and tokenstore.Leaser built from the casstore engine
// and a Secrets Manager backend (aws-sdk-go-v2). It needs no local disk
// and makes no call until it is used, which suits AWS Lambda.
//
// # Layout
//
// Under a required prefix, one secret per token, "<prefix>/token-<id>",
// holding the JSON document of package tokenstore, and the index secrets
// "<prefix>/index-<n>" (package tokenstore/index). Names derive from
// token IDs, never from user names.
//
// # Compare-and-swap
//
// Reads always ask for VersionStage AWSCURRENT; the version of a document
// is the VersionId read. An update is PutSecretValue under the fixed
// staging label CLOUDTOKENS_PENDING followed by
// UpdateSecretVersionStage(AWSCURRENT, MoveToVersionId=new,
// RemoveFromVersionId=read), which AWS refuses (InvalidParameterException,
// reported as casstore.ErrVersionMismatch) unless the version read is
// still current. Exactly one of concurrent writers wins; the losers'
// versions lose the pending label to the next put and AWS deletes them,
// so a lost race costs no cleanup call.
//
// # API calls per operation
//
// Measured at the transport by the integration tests, one index shard
// (Get = GetSecretValue, CAS = PutSecretValue + UpdateSecretVersionStage):
//
//	FindTokenByID                              1 Get
//	FindToken by user, grant or refresh token  2 Get; 1 Get with a warm index cache
//	Tokens, N tokens                           1 Get per shard + ⌈N/20⌉ BatchGetSecretValue
//	SaveToken refresh (access token, expiry)   1 CAS, on the token's secret only, when the store
//	                                           has read or written the token; else 1 Get + 1 CAS
//	SaveToken new token                        1 Get + CreateSecret + 1 CAS
//	DeleteToken                                2 Get + DeleteSecret + 1 CAS (warm cache: 1 Get + …)
//	AcquireLease                               1 CAS (token remembered) or 1 Get + 1 CAS
//	ReleaseLease                               1 Get + 1 CAS
//	Check                                      ListSecrets pages + Tokens
//	New                                        none
//
// The module README has the full table, the options, the limits and a
// least-privilege IAM policy.
//
// # Limits
//
// Values are at most 65,536 bytes (larger documents fail with
// tokenstore.ErrTooLarge before any call). Names use [A-Za-z0-9/_+=.@-],
// are at most 512 characters and never end in "-" and six characters (the
// shape of an ARN suffix): a token ID that would give such a name (such as
// "abcdef") can never be stored, so FindTokenByID and DeleteToken return
// tokenstore.ErrNotFound for it without a call. AWS recommends updating a
// secret at most every 10 minutes on a sustained basis (versions quota)
// and allows 50 PutSecretValue + UpdateSecretVersionStage calls per second
// per region: every insert and delete writes an index secret, so use more
// index shards for high write rates.
//
// # Errors
//
// A missing token is tokenstore.ErrNotFound (ResourceNotFoundException,
// or InvalidRequestException for a secret scheduled for deletion). Other
// AWS errors, AccessDeniedException among them, are returned wrapped and
// never become ErrNotFound. Throttling is retried by the client's SDK
// retryer (configure it with config.WithRetryer or
// config.WithRetryMaxAttempts), to which every call adds
// ThrottlingException and LimitExceededException as retryable codes. An
// error of a call cut short by its context wraps context.Canceled or
// context.DeadlineExceeded. Errors and logs never contain token values or
// user names.
//
// # Lost responses
//
// Creates and puts carry a ClientRequestToken of the store's own (the new
// VersionId), so an SDK retry of a write whose answer was lost is
// recognised and reported as the success it was; so is a retried stage
// move (one GetSecretValue of the new version) and a retried DeleteSecret
// that finds the secret it has just deleted. The module README has the
// table.
package awssm
