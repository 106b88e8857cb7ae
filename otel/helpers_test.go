package cloudtokensotel_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	cloudtokensotel "github.com/cloudtokens/cloudtokens/otel"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// harness is an Observer on in-memory SDK providers: every span ends up in
// spans, every metric in reader.
type harness struct {
	spans  *tracetest.InMemoryExporter
	reader *sdkmetric.ManualReader
	tp     *sdktrace.TracerProvider
	mp     *sdkmetric.MeterProvider
	obs    *cloudtokensotel.Observer
}

func newHarness(t *testing.T, opts ...cloudtokensotel.Option) *harness {
	t.Helper()
	h := &harness{spans: tracetest.NewInMemoryExporter(), reader: sdkmetric.NewManualReader()}
	h.tp = sdktrace.NewTracerProvider(sdktrace.WithSyncer(h.spans))
	h.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(h.reader))
	t.Cleanup(func() {
		_ = h.tp.Shutdown(context.Background())
		_ = h.mp.Shutdown(context.Background())
	})
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("CLOUDTOKENS_PRINT_SPANS") != "" {
			t.Logf("spans:\n%s", tree(h.ended()))
		}
	})
	obs, err := cloudtokensotel.New(append([]cloudtokensotel.Option{
		cloudtokensotel.WithTracerProvider(h.tp), cloudtokensotel.WithMeterProvider(h.mp)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	h.obs = obs
	return h
}

// store returns an observed engine on b.
func (h *harness) store(b casstore.Backend) *casstore.Store {
	return casstore.New(b, casstore.Options{Observer: h.obs})
}

// root starts a span that stands for a process's request, so that one
// process's operations share a trace.
func (h *harness) root(ctx context.Context, name string) (context.Context, trace.Span) {
	return h.tp.Tracer("test").Start(ctx, name)
}

func (h *harness) ended() tracetest.SpanStubs { return h.spans.GetSpans() }

func (h *harness) metrics(t *testing.T) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := h.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	return rm
}

// counter returns the sum of the data points of counter name whose
// attributes include all of attrs.
func (h *harness) counter(t *testing.T, name string, attrs ...attribute.KeyValue) int64 {
	t.Helper()
	var sum int64
	for _, m := range h.find(t, name) {
		s, ok := m.Data.(metricdata.Sum[int64])
		if !ok {
			t.Fatalf("%s is a %T, not an int64 sum", name, m.Data)
		}
		for _, dp := range s.DataPoints {
			if hasAll(dp.Attributes, attrs) {
				sum += dp.Value
			}
		}
	}
	return sum
}

// histogram returns the count and sum of the data points of histogram
// name whose attributes include all of attrs.
func (h *harness) histogram(t *testing.T, name string, attrs ...attribute.KeyValue) (uint64, float64) {
	t.Helper()
	var count uint64
	var sum float64
	for _, m := range h.find(t, name) {
		hd, ok := m.Data.(metricdata.Histogram[float64])
		if !ok {
			t.Fatalf("%s is a %T, not a float64 histogram", name, m.Data)
		}
		for _, dp := range hd.DataPoints {
			if hasAll(dp.Attributes, attrs) {
				count += dp.Count
				sum += dp.Sum
			}
		}
	}
	return count, sum
}

func (h *harness) find(t *testing.T, name string) []metricdata.Metrics {
	t.Helper()
	var out []metricdata.Metrics
	for _, sm := range h.metrics(t).ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				out = append(out, m)
			}
		}
	}
	return out
}

func hasAll(set attribute.Set, attrs []attribute.KeyValue) bool {
	for _, kv := range attrs {
		if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
			return false
		}
	}
	return true
}

// assertNoSecrets fails if any span or metric holds one of secrets.
func (h *harness) assertNoSecrets(t *testing.T, secrets ...string) {
	t.Helper()
	for _, f := range h.secretsIn(t, secrets...) {
		t.Error(f)
	}
}

// secretsIn returns a line for every place where a span (its name,
// attributes, events, status, links, resource) or a metric data point's
// attributes contain one of secrets.
func (h *harness) secretsIn(t *testing.T, secrets ...string) []string {
	t.Helper()
	secrets = slices.DeleteFunc(slices.Clone(secrets), func(s string) bool { return s == "" })
	if len(secrets) == 0 {
		t.Fatal("secretsIn: nothing to look for")
	}
	var found []string
	check := func(where, text string) {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				found = append(found, fmt.Sprintf("%s holds the secret or user name %q: %q", where, s, text))
			}
		}
	}
	checkAttrs := func(where string, attrs []attribute.KeyValue) {
		for _, kv := range attrs {
			check(where+" attribute "+string(kv.Key), string(kv.Key)+"="+kv.Value.Emit())
		}
	}
	spans := h.ended()
	if len(spans) == 0 {
		t.Fatal("secretsIn: no spans recorded")
	}
	for _, s := range spans {
		check("span name", s.Name)
		checkAttrs("span "+s.Name, s.Attributes)
		check("span "+s.Name+" status", s.Status.Description)
		for _, e := range s.Events {
			check("span event name", e.Name)
			checkAttrs("span "+s.Name+" event "+e.Name, e.Attributes)
		}
		for _, l := range s.Links {
			checkAttrs("span "+s.Name+" link", l.Attributes)
		}
		checkAttrs("resource", s.Resource.Attributes())
	}
	points := 0
	for _, sm := range h.metrics(t).ScopeMetrics {
		for _, m := range sm.Metrics {
			check("metric name", m.Name)
			var sets []attribute.Set
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				sets = pointSets(d.DataPoints)
			case metricdata.Sum[float64]:
				sets = pointSets(d.DataPoints)
			case metricdata.Gauge[int64]:
				sets = pointSets(d.DataPoints)
			case metricdata.Gauge[float64]:
				sets = pointSets(d.DataPoints)
			case metricdata.Histogram[int64]:
				sets = histogramSets(d.DataPoints)
			case metricdata.Histogram[float64]:
				sets = histogramSets(d.DataPoints)
			default:
				t.Errorf("metric %s: unexpected data type %T", m.Name, m.Data)
			}
			for _, set := range sets {
				points++
				checkAttrs("metric "+m.Name, set.ToSlice())
			}
		}
	}
	if points == 0 {
		t.Fatal("secretsIn: no metric data points recorded")
	}
	return found
}

func pointSets[N int64 | float64](dps []metricdata.DataPoint[N]) []attribute.Set {
	var out []attribute.Set
	for _, dp := range dps {
		out = append(out, dp.Attributes)
	}
	return out
}

func histogramSets[N int64 | float64](dps []metricdata.HistogramDataPoint[N]) []attribute.Set {
	var out []attribute.Set
	for _, dp := range dps {
		out = append(out, dp.Attributes)
	}
	return out
}

// byName returns the spans named name.
func byName(spans tracetest.SpanStubs, name string) tracetest.SpanStubs {
	var out tracetest.SpanStubs
	for _, s := range spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// children returns the spans whose parent is p.
func children(spans tracetest.SpanStubs, p tracetest.SpanStub) tracetest.SpanStubs {
	var out tracetest.SpanStubs
	for _, s := range spans {
		if s.Parent.SpanID() == p.SpanContext.SpanID() && s.Parent.TraceID() == p.SpanContext.TraceID() {
			out = append(out, s)
		}
	}
	return out
}

// descends reports whether s descends from ancestor.
func descends(spans tracetest.SpanStubs, s, ancestor tracetest.SpanStub) bool {
	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, x := range spans {
		byID[x.SpanContext.SpanID()] = x
	}
	for s.Parent.IsValid() {
		if s.Parent.SpanID() == ancestor.SpanContext.SpanID() {
			return true
		}
		p, ok := byID[s.Parent.SpanID()]
		if !ok {
			return false
		}
		s = p
	}
	return false
}

// attr returns the value of attribute key of s, as emitted, or "".
func attr(s tracetest.SpanStub, key attribute.Key) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

func eventNames(s tracetest.SpanStub) []string {
	var out []string
	for _, e := range s.Events {
		out = append(out, e.Name)
	}
	return out
}

// raceBackend runs before(name) once, before the first Update or Create
// of a document for which match(name) holds, then forwards the call: a
// write of another process that lands between this process's read and its
// compare-and-swap.
type raceBackend struct {
	casstore.Backend
	match  func(name string) bool
	before func()
	once   sync.Once
}

func (r *raceBackend) maybe(name string) {
	if r.match(name) {
		r.once.Do(r.before)
	}
}

func (r *raceBackend) Update(ctx context.Context, name string, value []byte, version string) (string, error) {
	r.maybe(name)
	return r.Backend.Update(ctx, name, value, version)
}

func (r *raceBackend) Create(ctx context.Context, name string, value []byte) (string, error) {
	r.maybe(name)
	return r.Backend.Create(ctx, name, value)
}

func (r *raceBackend) List(ctx context.Context) ([]string, error) {
	return r.Backend.(casstore.Lister).List(ctx)
}

// tree renders spans as an indented tree, in start order, for failure
// messages.
func tree(spans tracetest.SpanStubs) string {
	spans = slices.Clone(spans)
	slices.SortFunc(spans, func(a, b tracetest.SpanStub) int { return a.StartTime.Compare(b.StartTime) })
	ids := map[trace.SpanID]bool{}
	for _, s := range spans {
		ids[s.SpanContext.SpanID()] = true
	}
	var b strings.Builder
	var walk func(parent trace.SpanID, depth int)
	walk = func(parent trace.SpanID, depth int) {
		for _, s := range spans {
			p := s.Parent.SpanID()
			if !ids[p] {
				p = trace.SpanID{}
			}
			if p != parent {
				continue
			}
			fmt.Fprintf(&b, "%s%s", strings.Repeat("  ", depth), s.Name)
			for _, kv := range s.Attributes {
				switch kv.Key {
				case cloudtokensotel.AttrDocument, cloudtokensotel.AttrOutcome, cloudtokensotel.AttrGrantType:
					fmt.Fprintf(&b, " %s=%s", kv.Key, kv.Value.Emit())
				}
			}
			for _, e := range s.Events {
				fmt.Fprintf(&b, " [%s]", e.Name)
			}
			b.WriteByte('\n')
			walk(s.SpanContext.SpanID(), depth+1)
		}
	}
	walk(trace.SpanID{}, 0)
	return b.String()
}
