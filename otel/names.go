package cloudtokensotel

import "go.opentelemetry.io/otel/attribute"

// ScopeName is the instrumentation scope of the tracer and the meter.
const ScopeName = "github.com/cloudtokens/cloudtokens/otel"

// Attribute keys. Spans carry all that apply; metric data points only the
// low-cardinality ones (operation, outcome, document kind, grant type and
// the event attributes marked so), never a token ID or a document name.
const (
	// AttrLayer is the layer of an operation: "store", "backend" or
	// "source" (spans).
	AttrLayer = attribute.Key("cloudtokens.layer")
	// AttrOperation is the operation: a store method ("FindToken",
	// "SaveToken", ...), a backend request ("Read", "Update", ...) or a
	// source operation ("Refresh", "Exchange", "LeaseWait",
	// "TokenRequest") (spans and metrics). On event metrics it is the
	// operation the event happened in.
	AttrOperation = attribute.Key("cloudtokens.operation")
	// AttrOutcome is how an operation ended: see [Outcome] (spans and
	// metrics).
	AttrOutcome = attribute.Key("cloudtokens.outcome")
	// AttrTokenID is the record ID of the token, when known (spans and
	// span events only). Record IDs are random and name no person; the
	// store maps them to users.
	AttrTokenID = attribute.Key("cloudtokens.token.id")
	// AttrDocument is the backend document of a request, "token-<id>" or
	// "index-<n>", without the adapter's prefix (spans only).
	AttrDocument = attribute.Key("cloudtokens.document")
	// AttrDocumentKind is "token", "index" or "other" (spans and backend
	// metrics): index writes are where concurrent saves meet.
	AttrDocumentKind = attribute.Key("cloudtokens.document.kind")
	// AttrDocuments is the number of documents of a ReadMany (spans).
	AttrDocuments = attribute.Key("cloudtokens.documents")
	// AttrGrantType is the grant of a TokenRequest: "refresh_token" or
	// "authorization_code" (spans and metrics).
	AttrGrantType = attribute.Key("cloudtokens.grant_type")
	// AttrAttempt is the attempt that failed (retry events) or the count
	// of consecutive failures (backoff events) (span events).
	AttrAttempt = attribute.Key("cloudtokens.attempt")
	// AttrBucket is an index bucket number (bucket retry and split
	// events) (span events).
	AttrBucket = attribute.Key("cloudtokens.index.bucket")
	// AttrBuckets is the number of index buckets after a split (span
	// events).
	AttrBuckets = attribute.Key("cloudtokens.index.buckets")
	// AttrKeyKind is the kind of key a fenced claim was for: "user_name",
	// "grant_token", "refresh_token", "access_token" or "id" (span events
	// and the fence metric). The kind only, never the key's value.
	AttrKeyKind = attribute.Key("cloudtokens.key.kind")
	// AttrBackoff is how long a Source makes no token request after a
	// failure, in seconds (span events).
	AttrBackoff = attribute.Key("cloudtokens.backoff.duration")
	// AttrTakeover tells a lease taken after waiting for another holder
	// from one taken at once (lease metric and span events).
	AttrTakeover = attribute.Key("cloudtokens.lease.takeover")
	// AttrPoolResult is "hit" or "miss" (pool metric).
	AttrPoolResult = attribute.Key("cloudtokens.pool.result")
	// AttrErrorType is the OpenTelemetry semantic convention's error.type,
	// set to the outcome on spans that end in error and on their metric
	// data points' outcome.
	AttrErrorType = attribute.Key("error.type")
)

// Metric instrument names. Durations are histograms in seconds; the
// counters count operations, requests or events.
const (
	MetricStoreOperations   = "cloudtokens.store.operations"
	MetricStoreDuration     = "cloudtokens.store.operation.duration"
	MetricBackendRequests   = "cloudtokens.backend.requests"
	MetricBackendDuration   = "cloudtokens.backend.request.duration"
	MetricBackendConflicts  = "cloudtokens.backend.conflicts"
	MetricSourceOperations  = "cloudtokens.source.operations"
	MetricSourceDuration    = "cloudtokens.source.operation.duration"
	MetricStoreRetries      = "cloudtokens.store.retries"
	MetricBucketRetries     = "cloudtokens.index.bucket_retries"
	MetricFences            = "cloudtokens.index.fences"
	MetricSplits            = "cloudtokens.index.splits"
	MetricLeaseAcquisitions = "cloudtokens.lease.acquisitions"
	MetricBackoffs          = "cloudtokens.source.backoffs"
	MetricBackoffBlocked    = "cloudtokens.source.backoff_blocked"
	MetricPoolLookups       = "cloudtokens.pool.lookups"
)

// Span names are "cloudtokens.<layer>.<operation>", such as
// "cloudtokens.store.FindToken", "cloudtokens.backend.Update" or
// "cloudtokens.source.Refresh"; span event names are "cloudtokens.<event>",
// such as "cloudtokens.retry" (see observe.EventKind's String).
