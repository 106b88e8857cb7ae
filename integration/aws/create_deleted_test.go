package aws

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go/middleware"

	"github.com/cloudtokens/cloudtokens/awssm"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

var errDescribeFailed = errors.New("test: DescribeSecret failed")

// failDescribeOnce makes the client's first DescribeSecret fail without
// reaching the server.
func failDescribeOnce(o *secretsmanager.Options) {
	var done atomic.Bool
	o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
		return s.Initialize.Add(middleware.InitializeMiddlewareFunc("test.failDescribe",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				if awsmiddleware.GetOperationName(ctx) == "DescribeSecret" && done.CompareAndSwap(false, true) {
					return middleware.InitializeOutput{}, middleware.Metadata{}, errDescribeFailed
				}
				return next.HandleInitialize(ctx, in)
			}), middleware.Before)
	})
}

// TestCreateOverDeletedNameWhenDescribeFails: moto refuses a create of a
// name scheduled for deletion with ResourceExistsException, and awssm
// asks DescribeSecret whether the name is a deleted secret's. When that
// call fails, the create must fail with that error, not with
// casstore.ErrExists: the engine takes ErrExists for a live document
// (Repair then skipped a fenced claim as "changed meanwhile", 4 times in
// 100 AWS kill rounds).
func TestCreateOverDeletedNameWhenDescribeFails(t *testing.T) {
	var raw casstore.Backend
	capture := func(b casstore.Backend) casstore.Backend { raw = b; return b }
	prefix := uniquePrefix(t)
	st := newStoreAt(t, client(t, nil), prefix, awssm.WithBackendWrapper(capture))
	tok := &tokenstore.Token{UserName: "gone", AccessToken: "a"}
	if err := st.SaveToken(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	name := casstore.TokenName(tok.ID)
	if err := raw.Delete(t.Context(), name); err != nil { // scheduled for deletion
		t.Fatal(err)
	}
	newStoreAt(t, client(t, nil, failDescribeOnce), prefix, awssm.WithBackendWrapper(capture))
	_, err := raw.Create(t.Context(), name, []byte(`{}`))
	if !errors.Is(err, errDescribeFailed) || errors.Is(err, casstore.ErrExists) {
		t.Fatalf("create over a deleted name, DescribeSecret failing: %v; want the DescribeSecret error, not ErrExists", err)
	}
	_, err = raw.Create(t.Context(), name, []byte(`{}`))
	if !errors.Is(err, casstore.ErrDeleted) {
		t.Fatalf("create over a deleted name: %v, want casstore.ErrDeleted", err)
	}
}
