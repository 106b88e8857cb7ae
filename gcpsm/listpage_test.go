package gcpsm_test

import (
	"context"
	"testing"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/protobuf/proto"

	"github.com/cloudtokens/cloudtokens/gcpsm"
)

// A page of ListSecrets at the store's page size fits, with room to
// spare, in the 4 MB a gRPC connection receives by default (a connection
// the caller dials with the grpc package's defaults): the largest secret
// a store writes (a token under a lease, with WithLabels' labels) times
// the page size stays under half of it.
func TestListPageSize(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.store(t, newPrefix(), gcpsm.WithLabels(map[string]string{"team": "payments-platform", "env": "production"}))
	tk := tok("page-size")
	tk.Expiry = time.Now().Add(time.Hour)
	if err := s.SaveToken(ctx, tk); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.AcquireLease(ctx, tk.ID, "holder-with-a-long-name-0123456789", time.Minute); err != nil || !ok {
		t.Fatalf("AcquireLease: %v, %v", ok, err)
	}
	largest := 0
	for _, id := range []string{s.SecretID(tk.ID), s.IndexSecretID(0)} {
		sec, err := e.raw.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: secretPath(id)})
		if err != nil {
			t.Fatal(err)
		}
		largest = max(largest, proto.Size(sec))
	}
	page := largest * gcpsm.ListPageSize
	t.Logf("largest secret %d bytes; a page of %d: %d bytes", largest, gcpsm.ListPageSize, page)
	if page > 2<<20 {
		t.Errorf("a page of %d secrets of %d bytes is %d bytes; want at most 2 MB (half the gRPC default)", gcpsm.ListPageSize, largest, page)
	}
}
