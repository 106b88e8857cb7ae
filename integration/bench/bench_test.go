package bench_test

import (
	"context"
	"testing"

	"github.com/cloudtokens/cloudtokens/integration/backend"
	"github.com/cloudtokens/cloudtokens/integration/bench"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// Benchmarks of the hot paths of every adapter, against the real servers
// (found by package backend: CLOUDTOKENS_AWS_ENDPOINT,
// CLOUDTOKENS_VAULT_ADDR/_TOKEN; skipped when absent, outside CI) and the
// in-process GCP emulator. Each reports requests/op, counted at the
// transport, beside ns/op, so benchstat shows a change in either:
//
//	go test -run '^$' -bench . -count 10 ./bench | tee new.txt
//	benchstat old.txt new.txt
//
// The Raw benchmarks time the SDK calls each operation reduces to on the
// same server: FindTokenByID and a warm FindToken reduce to RawRead; a
// refresh save of a token the store has read or written (it remembers the
// version) to RawWrite, and by a store that has not (tokenbench measures
// that case) to RawReadWrite.

// storeTokens is the number of tokens in each benchmark's store.
const storeTokens = 10

type fixture struct {
	t      *bench.Target
	store  bench.Store
	prefix string
	toks   []*tokenstore.Token
}

// targets runs fn as a sub-benchmark on every backend.
func targets(b *testing.B, fn func(b *testing.B, f *fixture)) {
	for _, name := range []string{"memory", "aws", "vault", "gcp"} {
		b.Run(name, func(b *testing.B) {
			fn(b, newFixture(b, name))
		})
	}
}

func newFixture(b *testing.B, name string) *fixture {
	b.Helper()
	ctx := context.Background()
	var t *bench.Target
	var err error
	switch name {
	case "memory":
		t = bench.NewMemory()
	case "aws":
		t, err = bench.NewAWS(ctx, backend.AWSConfig(b))
	case "vault":
		addr, token := backend.Vault(b)
		t, err = bench.NewVault(ctx, addr, token)
	case "gcp":
		t, err = bench.NewGCP(ctx)
	}
	if err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	b.Cleanup(func() { _ = t.Close() })
	prefix := bench.NewPrefix("bench")
	s, err := t.Open(ctx, prefix, bench.StoreOptions{IndexCache: true})
	if err != nil {
		b.Fatal(err)
	}
	f := &fixture{t: t, store: s, prefix: prefix}
	for i := range storeTokens {
		tok := bench.NewToken(i)
		if err := s.SaveToken(ctx, tok); err != nil {
			b.Fatalf("%s: SaveToken: %v", name, err)
		}
		f.toks = append(f.toks, tok)
	}
	// Warm the index cache.
	if _, err := s.Tokens(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := s.DeleteTokens(context.Background()); err != nil {
			b.Errorf("DeleteTokens: %v", err)
		}
	})
	return f
}

// loop runs op b.N times (via b.Loop) and reports the requests per
// operation.
func (f *fixture) loop(b *testing.B, op func(i int) error) {
	b.Helper()
	before := f.t.Calls.Snapshot()
	i := 0
	b.ResetTimer()
	for b.Loop() {
		if err := op(i); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.StopTimer()
	if i > 0 {
		b.ReportMetric(float64(f.t.Calls.Snapshot().Sub(before).Total())/float64(i), "requests/op")
	}
}

func BenchmarkFindTokenByID(b *testing.B) {
	targets(b, func(b *testing.B, f *fixture) {
		ctx := context.Background()
		f.loop(b, func(i int) error {
			_, err := f.store.FindTokenByID(ctx, f.toks[i%len(f.toks)].ID)
			return err
		})
	})
}

func BenchmarkFindTokenWarm(b *testing.B) {
	targets(b, func(b *testing.B, f *fixture) {
		ctx := context.Background()
		f.loop(b, func(i int) error {
			_, err := f.store.FindToken(ctx, bench.UserQuery(f.toks[i%len(f.toks)]))
			return err
		})
	})
}

func BenchmarkFindTokenByRefreshWarm(b *testing.B) {
	targets(b, func(b *testing.B, f *fixture) {
		ctx := context.Background()
		f.loop(b, func(i int) error {
			_, err := f.store.FindToken(ctx, bench.RefreshQuery(f.toks[i%len(f.toks)]))
			return err
		})
	})
}

func BenchmarkSaveTokenRefresh(b *testing.B) {
	targets(b, func(b *testing.B, f *fixture) {
		ctx := context.Background()
		f.loop(b, func(i int) error {
			k := i % len(f.toks)
			u := bench.Refreshed(f.toks[k])
			f.toks[k] = u
			return f.store.SaveToken(ctx, u)
		})
	})
}

func BenchmarkRawRead(b *testing.B) {
	targets(b, func(b *testing.B, f *fixture) {
		ctx := context.Background()
		f.loop(b, func(i int) error {
			_, err := f.t.Raw.Read(ctx, f.prefix, casstore.TokenName(f.toks[i%len(f.toks)].ID))
			return err
		})
	})
}

func BenchmarkRawWrite(b *testing.B) {
	targets(b, func(b *testing.B, f *fixture) {
		ctx := context.Background()
		versions := make([]string, len(f.toks))
		for k, t := range f.toks { // the caller has the versions already
			d, err := f.t.Raw.Read(ctx, f.prefix, casstore.TokenName(t.ID))
			if err != nil {
				b.Fatal(err)
			}
			versions[k] = d.Version
		}
		f.loop(b, func(i int) error {
			k := i % len(f.toks)
			u := bench.Refreshed(f.toks[k])
			doc, err := tokenstore.MarshalDocument(u)
			if err != nil {
				return err
			}
			f.toks[k] = u
			versions[k], err = f.t.Raw.Write(ctx, f.prefix, casstore.TokenName(u.ID), doc, versions[k])
			return err
		})
	})
}

func BenchmarkRawReadWrite(b *testing.B) {
	targets(b, func(b *testing.B, f *fixture) {
		ctx := context.Background()
		f.loop(b, func(i int) error {
			k := i % len(f.toks)
			name := casstore.TokenName(f.toks[k].ID)
			d, err := f.t.Raw.Read(ctx, f.prefix, name)
			if err != nil {
				return err
			}
			u := bench.Refreshed(f.toks[k])
			doc, err := tokenstore.MarshalDocument(u)
			if err != nil {
				return err
			}
			f.toks[k] = u
			_, err = f.t.Raw.Write(ctx, f.prefix, name, doc, d.Version)
			return err
		})
	})
}
