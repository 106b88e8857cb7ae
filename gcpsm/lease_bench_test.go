package gcpsm_test

import (
	"context"
	"fmt"
	"path"
	"sync/atomic"
	"testing"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"google.golang.org/api/option"
	"google.golang.org/grpc"

	"github.com/cloudtokens/cloudtokens/gcpsm"
	"github.com/cloudtokens/cloudtokens/gcpsm/gcpsmtest"
)

// BenchmarkLeasedRefresh measures a refresh's store work under the lease
// as tokensource does it (read, lease, read, save), alternating between
// two stores so that each lease is taken by the store that did not write
// the token last, on the emulator over TCP. It reports the write
// requests per refresh, which bound a fleet on the project's write quota
// (600 a minute).
func BenchmarkLeasedRefresh(b *testing.B) {
	srv := gcpsmtest.Start(b)
	ctx := context.Background()
	var writes atomic.Int64
	count := grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		switch path.Base(method) {
		case "AddSecretVersion", "UpdateSecret", "DestroySecretVersion", "CreateSecret", "DeleteSecret":
			writes.Add(1)
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	})
	prefix := newPrefix()
	var stores [2]*gcpsm.Store
	for i := range stores {
		c, err := secretmanager.NewClient(ctx, append(srv.ClientOptions(), option.WithGRPCDialOption(count))...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = c.Close() })
		if stores[i], err = gcpsm.New(ctx, c, testProject, prefix); err != nil {
			b.Fatal(err)
		}
	}
	t := tok("bench")
	for range 2 { // a first version and a previous one
		if err := stores[0].SaveToken(ctx, t); err != nil {
			b.Fatal(err)
		}
		t.AccessToken += "x"
	}
	writes.Store(0)
	for i := 0; b.Loop(); i++ {
		s := stores[i%2]
		if _, err := s.FindTokenByID(ctx, t.ID); err != nil {
			b.Fatal(err)
		}
		if ok, err := s.AcquireLease(ctx, t.ID, fmt.Sprint("holder-", i%2), time.Minute); !ok || err != nil {
			b.Fatalf("lease: %v, %v", ok, err)
		}
		cur, err := s.FindTokenByID(ctx, t.ID)
		if err != nil {
			b.Fatal(err)
		}
		cur.AccessToken = fmt.Sprint("access-VALUE-", i)
		if err := s.SaveToken(ctx, cur); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(writes.Load())/float64(b.N), "writes/op")
}
