package gcpsm_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/cloudtokens/cloudtokens/gcpsm"
	"github.com/cloudtokens/cloudtokens/gcpsm/gcpsmtest"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// Every test talks to a gcpsmtest emulator over a real TCP gRPC
// connection through the official client, and counts the calls the store
// makes with a unary client interceptor.

const testProject = "test-project"

// call is one RPC as the client sent it.
type call struct {
	Method   string // short name, e.g. "AccessSecretVersion"
	Resource string // the request's name or parent
}

// recorder is a gRPC unary client interceptor that records calls and the
// peak number of calls in flight per method.
type recorder struct {
	mu          sync.Mutex
	calls       []call
	inflight    map[string]int
	maxInflight map[string]int
	accessDelay atomic.Int64 // nanoseconds added to every AccessSecretVersion
}

func newRecorder() *recorder {
	return &recorder{inflight: map[string]int{}, maxInflight: map[string]int{}}
}

func (r *recorder) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	m := path.Base(method)
	r.mu.Lock()
	r.calls = append(r.calls, call{Method: m, Resource: resourceOf(req)})
	r.inflight[m]++
	r.maxInflight[m] = max(r.maxInflight[m], r.inflight[m])
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.inflight[m]--
		r.mu.Unlock()
	}()
	if d := time.Duration(r.accessDelay.Load()); d > 0 && m == "AccessSecretVersion" {
		time.Sleep(d)
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

func resourceOf(req any) string {
	switch r := req.(type) {
	case interface{ GetName() string }:
		return r.GetName()
	case interface{ GetParent() string }:
		return r.GetParent()
	case *secretmanagerpb.UpdateSecretRequest:
		return r.GetSecret().GetName()
	}
	return ""
}

// take returns the calls recorded since the last take and forgets them.
func (r *recorder) take() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.calls
	r.calls = nil
	return out
}

func (r *recorder) resetPeak() {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.maxInflight)
}

func (r *recorder) peak(method string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.maxInflight[method]
}

// summary renders calls as "Method×n, ..." in a stable order.
func summary(calls []call) string {
	n := map[string]int{}
	for _, c := range calls {
		n[c.Method]++
	}
	keys := make([]string, 0, len(n))
	for k := range n {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%d", k, n[k])
	}
	return strings.Join(parts, ", ")
}

type env struct {
	srv    *gcpsmtest.Server
	client *secretmanager.Client // recorded by rec
	rec    *recorder
	raw    *secretmanager.Client // a second connection, not recorded
}

func newEnv(t *testing.T, opts ...gcpsmtest.Option) *env {
	t.Helper()
	srv := gcpsmtest.Start(t, opts...)
	e := &env{srv: srv}
	e.client, e.rec = newRecordedClient(t, srv)
	e.raw = newClient(t, srv)
	return e
}

func newClient(t *testing.T, srv *gcpsmtest.Server, extra ...option.ClientOption) *secretmanager.Client {
	t.Helper()
	c, err := secretmanager.NewClient(context.Background(), append(srv.ClientOptions(), extra...)...)
	if err != nil {
		t.Fatalf("secretmanager.NewClient: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func newRecordedClient(t *testing.T, srv *gcpsmtest.Server) (*secretmanager.Client, *recorder) {
	t.Helper()
	rec := newRecorder()
	c := newClient(t, srv, option.WithGRPCDialOption(grpc.WithChainUnaryInterceptor(rec.intercept)))
	return c, rec
}

// newPrefix returns a random prefix so that tests never share secrets.
func newPrefix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "t" + hex.EncodeToString(b[:])
}

func (e *env) store(t *testing.T, prefix string, opts ...gcpsm.Option) *gcpsm.Store {
	t.Helper()
	return newStore(t, e.client, prefix, opts...)
}

func newStore(t *testing.T, c *secretmanager.Client, prefix string, opts ...gcpsm.Option) *gcpsm.Store {
	t.Helper()
	s, err := gcpsm.New(context.Background(), c, testProject, prefix, opts...)
	if err != nil {
		t.Fatalf("gcpsm.New: %v", err)
	}
	return s
}

func secretPath(id string) string { return "projects/" + testProject + "/secrets/" + id }

// versionStates lists the states of every version of secret id.
func (e *env) versionStates(t *testing.T, id string) map[secretmanagerpb.SecretVersion_State]int {
	t.Helper()
	out := map[secretmanagerpb.SecretVersion_State]int{}
	it := e.raw.ListSecretVersions(context.Background(), &secretmanagerpb.ListSecretVersionsRequest{Parent: secretPath(id)})
	for {
		v, err := it.Next()
		if err == iterator.Done {
			return out
		}
		if err != nil {
			t.Fatalf("ListSecretVersions(%s): %v", id, err)
		}
		out[v.GetState()]++
	}
}

// live returns how many versions of secret id are billed (ENABLED or
// DISABLED).
func (e *env) live(t *testing.T, id string) int {
	t.Helper()
	st := e.versionStates(t, id)
	return st[secretmanagerpb.SecretVersion_ENABLED] + st[secretmanagerpb.SecretVersion_DISABLED]
}

// setCurrent adds a version with data to secret id and moves the current
// alias to it, bypassing the store (to plant corrupt documents).
func (e *env) setCurrent(t *testing.T, id string, data []byte) {
	t.Helper()
	e.addCurrent(t, id, data, false)
}

// addCurrent adds a version with data to secret id and moves the current
// alias to it, and with previous the previous alias to the version that
// was current, as a store's write does, destroying nothing.
func (e *env) addCurrent(t *testing.T, id string, data []byte, previous bool) {
	t.Helper()
	ctx := context.Background()
	v, err := e.raw.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{
		Parent: secretPath(id), Payload: &secretmanagerpb.SecretPayload{Data: data},
	})
	if err != nil {
		t.Fatalf("AddSecretVersion: %v", err)
	}
	sec, err := e.raw.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: secretPath(id)})
	if err != nil {
		t.Fatalf("GetSecret: %v", err)
	}
	n := v.GetName()[strings.LastIndexByte(v.GetName(), '/')+1:]
	var num int64
	fmt.Sscan(n, &num)
	aliases := sec.GetVersionAliases()
	if aliases == nil {
		aliases = map[string]int64{}
	}
	if previous {
		aliases[gcpsm.PreviousAlias] = aliases[gcpsm.CurrentAlias]
	}
	aliases[gcpsm.CurrentAlias] = num
	if _, err := e.raw.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
		Secret:     &secretmanagerpb.Secret{Name: sec.GetName(), Etag: sec.GetEtag(), VersionAliases: aliases},
		UpdateMask: fieldMask("version_aliases"),
	}); err != nil {
		t.Fatalf("UpdateSecret: %v", err)
	}
}

// tok returns a complete token for user.
func tok(user string) *tokenstore.Token {
	return &tokenstore.Token{
		UserName:     user,
		ClientID:     "client-1",
		ClientSecret: "client-secret-VALUE",
		RefreshToken: "refresh-VALUE-" + user,
		AccessToken:  "access-VALUE-" + user,
		GrantToken:   "grant-VALUE-" + user,
		Expiry:       time.Now().Add(time.Hour).Truncate(time.Millisecond).UTC(),
		APIDomain:    "https://www.zohoapis.com",
	}
}

// secretValues are substrings that must never appear in errors or logs.
var secretValues = []string{"client-secret-VALUE", "refresh-VALUE", "access-VALUE", "grant-VALUE", "planted-SECRET"}

func assertNoSecrets(t *testing.T, what, s string) {
	t.Helper()
	for _, v := range secretValues {
		if strings.Contains(s, v) {
			t.Errorf("%s contains a token value (%q): %s", what, v, s)
		}
	}
}

func onlyMethods(calls []call, methods ...string) bool {
	for _, c := range calls {
		if !slices.Contains(methods, c.Method) {
			return false
		}
	}
	return true
}

func fieldMask(paths ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }

func gcpsmWithCache() gcpsm.Option { return gcpsm.WithIndexCache(true) }
