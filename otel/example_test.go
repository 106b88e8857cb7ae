package cloudtokensotel_test

import (
	"context"
	"fmt"
	"log"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	cloudtokensotel "github.com/cloudtokens/cloudtokens/otel"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// An Observer on the SDK, with in-memory exporters in place of the ones a
// program would use (OTLP, say), watching a lookup of a token that does
// not exist: one store span with its backend request inside, and their
// metrics.
func Example() {
	ctx := context.Background()
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))

	obs, err := cloudtokensotel.New(cloudtokensotel.WithTracerProvider(tp), cloudtokensotel.WithMeterProvider(mp))
	if err != nil {
		log.Fatal(err)
	}
	// With an adapter: awssm.New(ctx, client, prefix, awssm.WithObserver(obs)).
	store := casstore.New(casstore.NewMemoryBackend(), casstore.Options{Observer: obs})
	_, err = store.FindTokenByID(ctx, "nobody")
	fmt.Println("FindTokenByID:", cloudtokensotel.Outcome(err))

	for _, s := range spans.GetSpans() { // in the order they ended
		var outcome string
		for _, kv := range s.Attributes {
			if kv.Key == cloudtokensotel.AttrOutcome {
				outcome = kv.Value.AsString()
			}
		}
		fmt.Printf("span %s outcome=%s child=%v\n", s.Name, outcome, s.Parent.IsValid())
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		log.Fatal(err)
	}
	for _, name := range []string{cloudtokensotel.MetricStoreOperations, cloudtokensotel.MetricBackendRequests} {
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if m.Name != name {
					continue
				}
				for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
					op, _ := dp.Attributes.Value(cloudtokensotel.AttrOperation)
					outcome, _ := dp.Attributes.Value(cloudtokensotel.AttrOutcome)
					fmt.Printf("%s{operation=%s,outcome=%s} %d\n", name, op.AsString(), outcome.AsString(), dp.Value)
				}
			}
		}
	}
	// Output:
	// FindTokenByID: not_found
	// span cloudtokens.backend.Read outcome=not_found child=true
	// span cloudtokens.store.FindTokenByID outcome=not_found child=false
	// cloudtokens.store.operations{operation=FindTokenByID,outcome=not_found} 1
	// cloudtokens.backend.requests{operation=Read,outcome=not_found} 1
}
