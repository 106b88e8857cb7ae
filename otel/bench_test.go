package cloudtokensotel_test

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/cloudtokens/cloudtokens/observe"
	cloudtokensotel "github.com/cloudtokens/cloudtokens/otel"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// BenchmarkFindTokenByID is the cost of the Observer on the cheapest store
// operation (one backend read, in memory): without an Observer, with one
// on the SDK that samples every trace (spans go to a no-op exporter), and
// with one whose traces are not sampled (metrics only).
func BenchmarkFindTokenByID(b *testing.B) {
	newObserver := func(sampler sdktrace.Sampler) observe.Observer {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler), sdktrace.WithSyncer(tracetest.NewNoopExporter()))
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		b.Cleanup(func() {
			_ = tp.Shutdown(context.Background())
			_ = mp.Shutdown(context.Background())
		})
		o, err := cloudtokensotel.New(cloudtokensotel.WithTracerProvider(tp), cloudtokensotel.WithMeterProvider(mp))
		if err != nil {
			b.Fatal(err)
		}
		return o
	}
	for _, c := range []struct {
		name string
		o    func() observe.Observer
	}{
		{"none", func() observe.Observer { return nil }},
		{"sampled", func() observe.Observer { return newObserver(sdktrace.AlwaysSample()) }},
		{"unsampled", func() observe.Observer { return newObserver(sdktrace.NeverSample()) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			s := casstore.New(casstore.NewMemoryBackend(), casstore.Options{Observer: c.o()})
			tok := &tokenstore.Token{UserName: "u", ClientID: "c", RefreshToken: "r"}
			if err := s.SaveToken(ctx, tok); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.FindTokenByID(ctx, tok.ID); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
