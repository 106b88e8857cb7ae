package cloudtokensotel

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/cloudtokens/cloudtokens/observe"
)

// ErrInvalidConfig: a nil [Option] or a bad value given to one; [New]
// wraps it.
var ErrInvalidConfig = errors.New("cloudtokensotel: invalid configuration")

// Option configures [New]. A nil Option, or one given a bad value, makes
// New return an error wrapping [ErrInvalidConfig].
type Option func(*config) error

type config struct {
	tp       trace.TracerProvider
	mp       metric.MeterProvider
	messages bool
}

// WithTracerProvider sets the tracer provider (default the global one,
// [otel.GetTracerProvider]). A nil provider is an error.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) error {
		if tp == nil {
			return errors.New("WithTracerProvider(nil)")
		}
		c.tp = tp
		return nil
	}
}

// WithMeterProvider sets the meter provider (default the global one,
// [otel.GetMeterProvider]). A nil provider is an error.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) error {
		if mp == nil {
			return errors.New("WithMeterProvider(nil)")
		}
		c.mp = mp
		return nil
	}
}

// WithErrorMessages records the message of an operation's error as the
// status description of its span and as an exception event, and the
// reason of a retry on its span event (default off: the status
// description is the outcome, such as "conflict"). Error messages never
// hold token values, but a few name a user: an ambiguous query by user
// name ([github.com/cloudtokens/cloudtokens/tokenstore.ErrAmbiguous]) gives
// the user name in its message. Turn this on only where traces may hold
// personal data.
func WithErrorMessages(on bool) Option {
	return func(c *config) error {
		c.messages = on
		return nil
	}
}

// Observer implements [observe.Observer] with OpenTelemetry: a span per
// operation, nested as the operations are, and metrics per operation and
// outcome and per event. See the package documentation. It is safe for
// concurrent use.
type Observer struct {
	tracer   trace.Tracer
	messages bool
	layers   [4]layerInstruments // by observe.Layer

	measurements sync.Map // measurementKey -> *measurement

	conflicts     metric.Int64Counter
	retries       metric.Int64Counter
	bucketRetries metric.Int64Counter
	fences        metric.Int64Counter
	splits        metric.Int64Counter
	leases        metric.Int64Counter
	backoffs      metric.Int64Counter
	blocked       metric.Int64Counter
	pool          metric.Int64Counter
}

type layerInstruments struct {
	count    metric.Int64Counter
	duration metric.Float64Histogram
}

var _ observe.Observer = (*Observer)(nil)

// durationBuckets are the histogram bounds in seconds: backend requests
// take milliseconds, a refresh that waits for another process's lease up
// to twice the lease TTL (default 30 s).
var durationBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// New returns an Observer that reports to the given (default: the global)
// tracer and meter providers. Give it to the store (the adapters'
// WithObserver, casstore.Options.Observer) and to the token sources
// (tokensource.WithObserver).
func New(opts ...Option) (*Observer, error) {
	var c config
	for i, opt := range opts {
		if opt == nil {
			return nil, fmt.Errorf("%w: option %d is nil", ErrInvalidConfig, i)
		}
		if err := opt(&c); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	if c.tp == nil {
		c.tp = otel.GetTracerProvider()
	}
	if c.mp == nil {
		c.mp = otel.GetMeterProvider()
	}
	o := &Observer{tracer: c.tp.Tracer(ScopeName), messages: c.messages}
	m := c.mp.Meter(ScopeName)
	var errs []error
	counter := func(name, unit, desc string) metric.Int64Counter {
		ctr, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return ctr
	}
	histogram := func(name, desc string) metric.Float64Histogram {
		h, err := m.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc),
			metric.WithExplicitBucketBoundaries(durationBuckets...))
		errs = append(errs, err)
		return h
	}
	o.layers[observe.LayerStore] = layerInstruments{
		counter(MetricStoreOperations, "{operation}", "Store operations, by operation and outcome."),
		histogram(MetricStoreDuration, "Duration of store operations, by operation and outcome."),
	}
	o.layers[observe.LayerBackend] = layerInstruments{
		counter(MetricBackendRequests, "{request}", "Requests of the engine to its backend (secrets manager), by operation, outcome and document kind."),
		histogram(MetricBackendDuration, "Duration of backend requests, by operation, outcome and document kind."),
	}
	o.layers[observe.LayerSource] = layerInstruments{
		counter(MetricSourceOperations, "{operation}", "Token source operations (Refresh, Exchange, LeaseWait, TokenRequest), by operation and outcome."),
		histogram(MetricSourceDuration, "Duration of token source operations, by operation and outcome."),
	}
	o.conflicts = counter(MetricBackendConflicts, "{request}", "Compare-and-swap writes that lost to another writer (an update of a changed document, a create of an existing one), by operation and document kind.")
	o.retries = counter(MetricStoreRetries, "{retry}", "Store operation attempts that failed in a way a fresh attempt may fix, by operation.")
	o.bucketRetries = counter(MetricBucketRetries, "{retry}", "Index bucket writes that lost to another writer and were retried, by operation.")
	o.fences = counter(MetricFences, "{fence}", "Pending claims of unfinished saves that a save fenced, by operation and key kind.")
	o.splits = counter(MetricSplits, "{split}", "Index bucket splits (the index grew), by operation.")
	o.leases = counter(MetricLeaseAcquisitions, "{acquisition}", "Refresh leases a token source took, at once or after waiting for another holder (takeover).")
	o.backoffs = counter(MetricBackoffs, "{backoff}", "Failed token requests that started a backoff, by the failure's outcome.")
	o.blocked = counter(MetricBackoffBlocked, "{request}", "Token requests not made because a backoff was running.")
	o.pool = counter(MetricPoolLookups, "{lookup}", "Pool lookups, by result (hit: the Pool had a Source; miss: it made one).")
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("cloudtokensotel: creating the instruments: %w", err)
	}
	return o, nil
}

// opState is what the Observer keeps of an operation in its context.
type opState struct {
	kind  observe.Kind
	start time.Time
}

type stateKey struct{}

var spanNames = func() map[observe.Kind]string {
	m := map[observe.Kind]string{}
	for k := range observe.Kind(255) {
		if l := k.Layer(); l != 0 {
			m[k] = "cloudtokens." + l.String() + "." + k.String()
		}
	}
	return m
}()

// Start implements [observe.Observer]: it starts the operation's span.
func (o *Observer) Start(ctx context.Context, op observe.Op) context.Context {
	attrs := make([]attribute.KeyValue, 0, 7)
	attrs = append(attrs, AttrLayer.String(op.Kind.Layer().String()), AttrOperation.String(op.Kind.String()))
	if op.TokenID != "" {
		attrs = append(attrs, AttrTokenID.String(op.TokenID))
	}
	if op.Document != "" {
		attrs = append(attrs, AttrDocument.String(op.Document), AttrDocumentKind.String(documentKind(op.Document)))
	}
	if op.Kind == observe.ReadMany {
		attrs = append(attrs, AttrDocuments.Int(op.Documents))
	}
	if op.Grant != "" {
		attrs = append(attrs, AttrGrantType.String(op.Grant))
	}
	ctx = context.WithValue(ctx, stateKey{}, &opState{kind: op.Kind, start: time.Now()})
	ctx, _ = o.tracer.Start(ctx, spanNames[op.Kind], trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...))
	return ctx
}

// End implements [observe.Observer]: it ends the span and records the
// operation's metrics.
func (o *Observer) End(ctx context.Context, op observe.Op, err error) {
	var elapsed time.Duration
	if st, ok := ctx.Value(stateKey{}).(*opState); ok {
		elapsed = time.Since(st.start)
	}
	layer := op.Kind.Layer()
	outcome := Outcome(err)
	span := trace.SpanFromContext(ctx)
	if span.IsRecording() {
		span.SetAttributes(AttrOutcome.String(outcome))
		if op.TokenID != "" {
			span.SetAttributes(AttrTokenID.String(op.TokenID)) // learned since Start
		}
		if failed(layer, outcome) {
			span.SetAttributes(AttrErrorType.String(outcome))
			desc := outcome
			if o.messages {
				desc = err.Error()
				span.RecordError(err)
			}
			span.SetStatus(codes.Error, desc)
		}
	}
	span.End()

	if int(layer) >= len(o.layers) || o.layers[layer].count == nil {
		return
	}
	m := o.measurement(op, outcome)
	ins := o.layers[layer]
	ins.count.Add(ctx, 1, m.add...)
	ins.duration.Record(ctx, elapsed.Seconds(), m.record...)
	if m.conflict != nil {
		o.conflicts.Add(ctx, 1, m.conflict...)
	}
}

// measurement is the metric attributes of an operation's end, made once
// per kind, outcome and document kind or grant (a few hundred at most).
type measurement struct {
	add      []metric.AddOption
	record   []metric.RecordOption
	conflict []metric.AddOption // for a backend request that lost a compare-and-swap
}

type measurementKey struct {
	kind           observe.Kind
	outcome, extra string
}

func (o *Observer) measurement(op observe.Op, outcome string) *measurement {
	key := measurementKey{kind: op.Kind, outcome: outcome}
	layer := op.Kind.Layer()
	if layer == observe.LayerBackend {
		key.extra = documentKind(op.Document)
	} else {
		key.extra = op.Grant
	}
	if m, ok := o.measurements.Load(key); ok {
		return m.(*measurement)
	}
	operation := AttrOperation.String(op.Kind.String())
	attrs := []attribute.KeyValue{operation, AttrOutcome.String(outcome)}
	var docKind attribute.KeyValue
	switch {
	case layer == observe.LayerBackend:
		docKind = AttrDocumentKind.String(key.extra)
		attrs = append(attrs, docKind)
	case key.extra != "":
		attrs = append(attrs, AttrGrantType.String(key.extra))
	}
	set := metric.WithAttributeSet(attribute.NewSet(attrs...))
	m := &measurement{add: []metric.AddOption{set}, record: []metric.RecordOption{set}}
	if layer == observe.LayerBackend && outcome == OutcomeConflict {
		m.conflict = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(operation, docKind))}
	}
	actual, _ := o.measurements.LoadOrStore(key, m)
	return actual.(*measurement)
}

// failed reports whether an operation of layer that ended with outcome
// failed. A backend request that finds no document or loses a
// compare-and-swap is part of the engine's normal work; a lookup that
// finds nothing is an answer.
func failed(layer observe.Layer, outcome string) bool {
	switch outcome {
	case OutcomeOK:
		return false
	case OutcomeNotFound:
		return layer == observe.LayerSource
	case OutcomeConflict:
		return layer != observe.LayerBackend
	}
	return true
}

// Event implements [observe.Observer]: it adds a span event to the span of
// ctx (the operation the event happened in, or the caller's span for a
// Pool lookup) and counts the event.
func (o *Observer) Event(ctx context.Context, ev observe.Event) {
	var op attribute.KeyValue
	if st, ok := ctx.Value(stateKey{}).(*opState); ok {
		op = AttrOperation.String(st.kind.String())
	}
	withOp := func(more ...attribute.KeyValue) metric.AddOption {
		if op.Key == "" {
			return metric.WithAttributes(more...)
		}
		return metric.WithAttributes(append(more, op)...)
	}
	var attrs []attribute.KeyValue
	if ev.TokenID != "" {
		attrs = append(attrs, AttrTokenID.String(ev.TokenID))
	}
	switch ev.Kind {
	case observe.Retry:
		o.retries.Add(ctx, 1, withOp())
		attrs = append(attrs, AttrAttempt.Int(ev.Attempt))
	case observe.BucketRetry:
		o.bucketRetries.Add(ctx, 1, withOp())
		attrs = append(attrs, AttrAttempt.Int(ev.Attempt), AttrBucket.Int(ev.Bucket))
	case observe.Fence:
		o.fences.Add(ctx, 1, withOp(AttrKeyKind.String(ev.Key)))
		attrs = append(attrs, AttrKeyKind.String(ev.Key))
	case observe.Split:
		o.splits.Add(ctx, 1, withOp())
		attrs = append(attrs, AttrBucket.Int(ev.Bucket), AttrBuckets.Int(ev.Buckets))
	case observe.LeaseAcquire, observe.LeaseTakeover:
		takeover := AttrTakeover.Bool(ev.Kind == observe.LeaseTakeover)
		o.leases.Add(ctx, 1, metric.WithAttributes(takeover))
		attrs = append(attrs, takeover)
	case observe.Backoff:
		outcome := AttrOutcome.String(Outcome(ev.Err))
		o.backoffs.Add(ctx, 1, metric.WithAttributes(outcome))
		attrs = append(attrs, outcome, AttrAttempt.Int(ev.Attempt), AttrBackoff.Float64(ev.Wait.Seconds()))
	case observe.BackoffBlocked:
		o.blocked.Add(ctx, 1)
	case observe.PoolHit, observe.PoolMiss:
		result := "hit"
		if ev.Kind == observe.PoolMiss {
			result = "miss"
		}
		o.pool.Add(ctx, 1, metric.WithAttributes(AttrPoolResult.String(result)))
		attrs = append(attrs, AttrPoolResult.String(result))
	}
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	if o.messages && ev.Err != nil {
		attrs = append(attrs, attribute.String("exception.message", ev.Err.Error()))
	}
	span.AddEvent("cloudtokens."+ev.Kind.String(), trace.WithAttributes(attrs...))
}

// documentKind returns the kind of a backend document name.
func documentKind(name string) string {
	switch {
	case strings.HasPrefix(name, "token-"):
		return "token"
	case strings.HasPrefix(name, "index-"):
		return "index"
	}
	return "other"
}
