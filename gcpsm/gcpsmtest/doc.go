// Package gcpsmtest is an in-process emulator of the Google Cloud Secret
// Manager v1 API for tests.
//
// The emulator is a real gRPC server implementing
// secretmanagerpb.SecretManagerServiceServer on a random loopback TCP port,
// so code under test talks to it through the official client
// (cloud.google.com/go/secretmanager/apiv1) exactly as it talks to Google:
//
//	srv := gcpsmtest.Start(t) // stopped by t.Cleanup
//	client, err := secretmanager.NewClient(ctx, srv.ClientOptions()...)
//
// Outside tests, or to share one emulator between processes, use New and
// Close it when done. Other processes that are handed Addr connect with
// ClientOptionsFor(addr): option.WithEndpoint(addr),
// option.WithoutAuthentication() and an insecure transport, the same options
// ClientOptions returns.
//
// # Emulated behaviour
//
// CreateSecret, GetSecret, UpdateSecret, DeleteSecret, ListSecrets,
// AddSecretVersion, GetSecretVersion, AccessSecretVersion,
// ListSecretVersions, EnableSecretVersion, DisableSecretVersion and
// DestroySecretVersion follow the comments in
// google/cloud/secretmanager/v1/service.proto and resources.proto and the
// Secret Manager documentation; every rule is cited where it is implemented.
// Other RPCs (IAM, rotation) return codes.Unimplemented. In short:
//
//   - Names are projects/{project}/secrets/{secret}[/versions/{version}].
//     Version numbers start at 1. "latest" is the most recently created
//     version whatever its state, so if that version is disabled, accessing
//     "latest" fails rather than falling back to an older version.
//   - Secret.version_aliases can be set through UpdateSecret (update_mask
//     "version_aliases") and resolve in GetSecretVersion and
//     AccessSecretVersion; aliases must name existing versions.
//   - Etags are quoted strings. The secret etag changes on UpdateSecret only,
//     a version etag on every Enable/Disable/Destroy (even a no-op). A
//     non-empty etag in UpdateSecret (Secret.etag), DeleteSecret,
//     Enable/Disable/DestroySecretVersion must match, else
//     FAILED_PRECONDITION.
//   - Accessing a DISABLED or DESTROYED version fails with
//     FAILED_PRECONDITION ("Secret Version [...] is in DISABLED state.");
//     destroying drops the payload and sets destroy_time; DESTROYED is final.
//   - Validation answers INVALID_ARGUMENT: secret IDs ([A-Za-z0-9_-], 1-255),
//     labels, annotations, aliases, missing replication, payloads over
//     MaxPayloadBytes, and a data_crc32c that does not match the data.
//     AccessSecretVersion always returns data_crc32c.
//   - ListSecrets and ListSecretVersions page newest first with opaque page
//     tokens and support a subset of the filter language (name, labels.KEY,
//     labels, create_time; state for versions; AND, OR, NOT, parentheses).
//     Unsupported filters are rejected, never ignored.
//
// # Consistency, quotas and time (options)
//
// By default the emulator is linearizable, unlimited and on the wall
// clock. Each documented weakness of the real service is an option, so
// that a test can turn on exactly the behaviour it wants to survive:
//
//   - [WithEventualConsistency](lag): alias and "latest" reads, GetSecret,
//     ListSecrets and ListSecretVersions answer from a snapshot that lags
//     by a random d in [0, lag]; access by version number and every
//     conditional write see the real state. Source: "Resource
//     consistency", https://cloud.google.com/secret-manager/docs/reference/consistency
//     ("adding a secret version and then immediately accessing that secret
//     version by version number is a strongly consistent operation ...
//     This doesn't apply when you access a secret version using aliases or
//     latest ... Other operations within Secret Manager are eventually
//     consistent."). [WithConsistencySeed] fixes the draws.
//   - [WithSecretWriteRate]([DocumentedSecretWriteRate]()): at most 2
//     AddSecretVersion + UpdateSecret per second (and 120 per minute) per
//     secret, else RESOURCE_EXHAUSTED. Source: "Soft-enforced rate limits
//     for modifying secrets and secret versions",
//     https://cloud.google.com/secret-manager/quotas.
//   - [WithProjectQuotas]([DocumentedProjectQuotas]()): 90,000 access, 600
//     read and 600 write requests per minute per project, else
//     RESOURCE_EXHAUSTED. Source: "Quotas on the rate of requests", same
//     page.
//   - [WithClock]: a simulated clock ([ManualClock]) for the lag, the
//     quota windows and the timestamps, so tests need not sleep.
//
// Rate limits are sliding windows over requests that were not rejected;
// the real service's soft limits may let more through. [Server.Throttled]
// counts the rejections.
//
// # Known differences from the real service
//
//   - Resource names keep the project as sent unless WithProjectNumber maps a
//     project ID to a number; Google returns project numbers.
//   - There is no IAM, no authentication and no latency; use
//     WithServerOptions with a grpc.UnaryInterceptor to inject faults or
//     delays. The per-version rate limit of Enable/Disable/
//     DestroySecretVersion (1 per second per version) is not enforced.
//   - Regional secrets (projects/*/locations/*) and the Secret fields
//     expire_time/ttl, rotation, topics, version_destroy_ttl, tags,
//     secret_type and top-level customer_managed_encryption are answered
//     with codes.Unimplemented instead of being silently ignored.
//   - Where the documentation does not name a status code (alias pointing at
//     a missing version, "latest"/alias in a state-changing call, destroying
//     a destroyed version, checksum mismatch) the emulator picks the code
//     described next to the implementation.
//
// Calls and CallCount report how many times each RPC reached the server
// (failed calls and client retries included), which lets tests assert
// caching or retry behaviour; ResetCalls zeroes them.
package gcpsmtest
