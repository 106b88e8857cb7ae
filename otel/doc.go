// Package cloudtokensotel reports what the cloudtokens stores and token
// sources do as OpenTelemetry traces and metrics. Its [Observer] implements
// [observe.Observer], the hook of the core module
// ([github.com/cloudtokens/cloudtokens/observe]); programs that do not
// import this module pay nothing for it (the hook is a nil check).
//
// The package is named cloudtokensotel so that it does not clash with
// [go.opentelemetry.io/otel] in the files that use both.
//
// # Wiring
//
// Make one Observer and give it to the store and to the token sources:
//
//	obs, err := cloudtokensotel.New() // the global providers; or WithTracerProvider, WithMeterProvider
//	store, err := awssm.New(ctx, client, "myapp/tokens", awssm.WithObserver(obs)) // gcpsm, vault: the same option
//	pool, err := tokensource.NewPool(store, cfg, tokensource.WithObserver(obs))
//
// ([casstore.Options.Observer] for an engine built directly.) A Token
// call made with a request's context then nests everything under the
// request's span: the source's Refresh, the store operations inside it,
// and the backend requests inside those. The cloud SDKs' own spans nest
// under the backend requests when the SDKs are instrumented: otelaws for
// aws-sdk-go-v2, otelhttp for the Vault client's and the OAuth provider's
// HTTP clients; Google's gRPC clients emit them by default (see the
// module's README).
//
// # Spans
//
// One span per operation, named "cloudtokens.<layer>.<operation>":
//
//   - store operations ("cloudtokens.store.FindToken", SaveToken, ...,
//     Check, Repair);
//   - backend requests inside them ("cloudtokens.backend.Read", ReadMany,
//     Create, Update, Delete, List, LeaseVersion): each is one request of
//     the engine to the secrets manager's adapter;
//   - source operations ("cloudtokens.source.Refresh", Exchange, and
//     inside them LeaseWait and TokenRequest, the provider call).
//
// Their attributes are [AttrLayer], [AttrOperation], [AttrOutcome] (see
// [Outcome]), [AttrTokenID] when the record is known, [AttrDocument] and
// [AttrDocumentKind] on backend requests, [AttrGrantType] on token
// requests. A span ends in error unless its outcome is ok, except that a
// lookup that finds nothing (not_found) and a backend request that finds
// no document or loses a compare-and-swap (conflict) are normal answers;
// [AttrErrorType] then holds the outcome. Retries, bucket retries, fences,
// index splits, lease acquisitions and takeovers, backoffs and Pool
// lookups are span events ("cloudtokens.retry", ...), on the span of the
// operation they happened in.
//
// # Metrics
//
// For each layer a counter and a duration histogram (seconds) with the
// operation and the outcome (and the document kind for backend requests,
// the grant type for token requests): [MetricStoreOperations],
// [MetricStoreDuration], [MetricBackendRequests], [MetricBackendDuration],
// [MetricSourceOperations], [MetricSourceDuration]. Lease waits are the
// LeaseWait operation of the source metrics. Counters of events:
// [MetricBackendConflicts], [MetricStoreRetries], [MetricBucketRetries],
// [MetricFences], [MetricSplits], [MetricLeaseAcquisitions],
// [MetricBackoffs], [MetricBackoffBlocked], [MetricPoolLookups]. Metric
// attributes are low-cardinality: never a token ID or a document name.
//
// # Secrets and personal data
//
// The hook carries record IDs, document names and the kinds of keys, never
// a token value, a client secret or a user name, so none can reach a span
// or a metric. Error messages are not recorded by default (the status
// description is the outcome), because one names a user (an ambiguous
// query by user name); [WithErrorMessages] records them.
package cloudtokensotel
