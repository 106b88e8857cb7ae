package gcpsmtest

import (
	"context"
	"path"
	"slices"
	"time"

	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cloudtokens/cloudtokens/faultinject"
)

// FaultInterceptor returns a gRPC unary client interceptor that injects
// the faults inj decides into the calls of a client, the gRPC counterpart
// of faultinject.Transport. methods, when given, restricts the faults to
// those RPCs (short names such as "AddSecretVersion"); the other calls go
// through untouched and are not counted.
//
//	Drop          UNAVAILABLE, the call never reaches the server
//	LoseResponse  the server applies the call, the client gets UNAVAILABLE
//	ServerError   INTERNAL, not sent
//	Throttle      RESOURCE_EXHAUSTED ("Quota exceeded"), not sent
//	Delay         held up to the injector's MaxDelay (or until the context ends), then sent
//
// Install it on the official client with FaultClientOption. It works
// against the emulator and against the real service alike, and it sits
// below the client's own retries (gax), so a retried call gets a decision
// per attempt.
func FaultInterceptor(inj *faultinject.Injector, methods ...string) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if len(methods) > 0 && !slices.Contains(methods, path.Base(method)) {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		kind, delay := inj.Decide()
		switch kind {
		case faultinject.Drop:
			return status.Error(codes.Unavailable, "faultinject: connection refused")
		case faultinject.LoseResponse:
			if err := invoker(ctx, method, req, reply, cc, opts...); err != nil {
				return err // a real failure: nothing to lose
			}
			return status.Error(codes.Unavailable, "faultinject: connection reset by peer after the server applied the call")
		case faultinject.ServerError:
			return status.Error(codes.Internal, "faultinject: injected server error")
		case faultinject.Throttle:
			return status.Error(codes.ResourceExhausted, "faultinject: Quota exceeded for quota metric 'Access requests' and limit 'Access requests per minute per project'")
		case faultinject.Delay:
			timer := time.NewTimer(delay)
			defer timer.Stop()
			select {
			case <-ctx.Done():
				return status.FromContextError(ctx.Err()).Err()
			case <-timer.C:
			}
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// FaultClientOption returns the client option that installs
// FaultInterceptor(inj, methods...) on a client:
//
//	opts := append(gcpsmtest.ClientOptionsFor(addr), gcpsmtest.FaultClientOption(inj))
//	client, err := secretmanager.NewClient(ctx, opts...)
func FaultClientOption(inj *faultinject.Injector, methods ...string) option.ClientOption {
	return option.WithGRPCDialOption(grpc.WithChainUnaryInterceptor(FaultInterceptor(inj, methods...)))
}
