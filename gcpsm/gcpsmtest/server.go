package gcpsmtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path"
	"strconv"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/stats"
)

// Server is a running Secret Manager emulator listening on a loopback TCP
// port. All methods are safe for concurrent use.
type Server struct {
	addr string
	gsrv *grpc.Server
	svc  *service

	serveDone chan struct{}
	closeOnce sync.Once

	callsMu sync.Mutex
	calls   map[string]int
}

// Option configures a Server created by [New] or [Start]. An invalid
// option (or a nil one) makes New return an error wrapping
// [ErrInvalidConfig].
type Option func(*config) error

// ErrInvalidConfig: New was given a nil or invalid Option.
var ErrInvalidConfig = errors.New("gcpsmtest: invalid configuration")

type config struct {
	serverOpts     []grpc.ServerOption
	projectNumbers map[string]string
	now            func() time.Time
	lag            time.Duration
	seed           uint64
	secretRate     *SecretRate
	projectQuotas  *ProjectQuotas
}

// WithServerOptions adds grpc.ServerOptions to the emulator's gRPC server,
// for example grpc.UnaryInterceptor to inject faults or latency. The
// emulator counts calls with a stats.Handler, so calls that an interceptor
// rejects are counted too. An interceptor set with grpc.UnaryInterceptor
// runs before the emulator's quota checks (see [WithProjectQuotas]).
func WithServerOptions(opts ...grpc.ServerOption) Option {
	return func(c *config) error {
		c.serverOpts = append(c.serverOpts, opts...)
		return nil
	}
}

// WithProjectNumber makes the emulator behave like the real service for a
// project that has both an ID and a number: requests may name the project
// by either, and every resource name the emulator returns (Secret.name,
// SecretVersion.name, AccessSecretVersionResponse.name) uses the number,
// which is what Secret Manager does. Without this option names are returned
// with the project segment exactly as the caller sent it.
func WithProjectNumber(projectID string, number int64) Option {
	return func(c *config) error {
		if projectID == "" || number <= 0 {
			return fmt.Errorf("%w: WithProjectNumber(%q, %d): need a project ID and a positive number", ErrInvalidConfig, projectID, number)
		}
		if c.projectNumbers == nil {
			c.projectNumbers = map[string]string{}
		}
		c.projectNumbers[projectID] = strconv.FormatInt(number, 10)
		return nil
	}
}

// New starts an emulator on a random port of 127.0.0.1. The caller must call
// Close. Use Start in tests.
func New(opts ...Option) (*Server, error) {
	cfg := config{now: time.Now, seed: 1}
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%w: nil Option", ErrInvalidConfig)
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("gcpsmtest: listen: %w", err)
	}
	s := &Server{
		addr:      lis.Addr().String(),
		svc:       newService(&cfg),
		serveDone: make(chan struct{}),
		calls:     map[string]int{},
	}
	sopts := append([]grpc.ServerOption{
		grpc.StatsHandler(callCounter{s}),
		grpc.ChainUnaryInterceptor(s.svc.quotas.intercept),
	}, cfg.serverOpts...)
	s.gsrv = grpc.NewServer(sopts...)
	secretmanagerpb.RegisterSecretManagerServiceServer(s.gsrv, s.svc)
	go func() {
		defer close(s.serveDone)
		_ = s.gsrv.Serve(lis) // returns when Close stops the server
	}()
	return s, nil
}

// Start starts an emulator for the duration of a test and registers its
// Close with t.Cleanup. It fails the test if the emulator cannot start.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s, err := New(opts...)
	if err != nil {
		t.Fatalf("gcpsmtest.Start: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Addr returns the emulator's "127.0.0.1:port" address. Other processes
// connect to it with ClientOptionsFor(addr).
func (s *Server) Addr() string { return s.addr }

// ClientOptions returns the options that point the official client at the
// emulator over plaintext gRPC without credentials:
//
//	client, err := secretmanager.NewClient(ctx, srv.ClientOptions()...)
func (s *Server) ClientOptions() []option.ClientOption { return ClientOptionsFor(s.addr) }

// ClientOptionsFor returns the client options for an emulator listening on
// addr, for processes that only know the address (for example a child
// process given Server.Addr of an emulator its parent started).
func ClientOptionsFor(addr string) []option.ClientOption {
	return []option.ClientOption{
		option.WithEndpoint(addr),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
	}
}

// Close stops the emulator: it stops accepting connections, waits up to five
// seconds for in-flight RPCs and then closes every connection. Close is
// idempotent; data is lost.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		stopped := make(chan struct{})
		go func() {
			s.gsrv.GracefulStop()
			close(stopped)
		}()
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
			s.gsrv.Stop()
			<-stopped
		}
		<-s.serveDone
	})
	return nil
}

// Calls returns a snapshot of how many times each RPC reached the server,
// keyed by the short method name ("AccessSecretVersion", "CreateSecret",
// ...). Failed and unimplemented calls are counted too; client-side retries
// count once per attempt.
func (s *Server) Calls() map[string]int {
	s.callsMu.Lock()
	defer s.callsMu.Unlock()
	out := make(map[string]int, len(s.calls))
	for k, v := range s.calls {
		out[k] = v
	}
	return out
}

// CallCount returns how many times the RPC with the given short method name
// (for example "AccessSecretVersion") reached the server.
func (s *Server) CallCount(method string) int {
	s.callsMu.Lock()
	defer s.callsMu.Unlock()
	return s.calls[method]
}

// ResetCalls sets every call count back to zero.
func (s *Server) ResetCalls() {
	s.callsMu.Lock()
	defer s.callsMu.Unlock()
	clear(s.calls)
}

// callCounter is a stats.Handler that counts every RPC the server receives,
// before any interceptor runs.
type callCounter struct{ s *Server }

func (c callCounter) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	c.s.callsMu.Lock()
	c.s.calls[path.Base(info.FullMethodName)]++
	c.s.callsMu.Unlock()
	return ctx
}

func (callCounter) HandleRPC(context.Context, stats.RPCStats) {}

func (callCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

func (callCounter) HandleConn(context.Context, stats.ConnStats) {}

// Throttled returns how many requests the rate limits of
// [WithSecretWriteRate] and [WithProjectQuotas] answered
// RESOURCE_EXHAUSTED.
func (s *Server) Throttled() int { return s.svc.quotas.throttledCount() }
