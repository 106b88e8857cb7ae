package bench

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"strconv"
	"strings"
	"sync"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/cloudtokens/cloudtokens/gcpsm"
	"github.com/cloudtokens/cloudtokens/gcpsm/gcpsmtest"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// GCPProject is the project the GCP target uses on its emulator.
const GCPProject = "tokenbench"

// NewGCP starts the gcpsmtest emulator (with opts) in this process on a
// loopback TCP port and returns the GCP target on it: the official client
// over gRPC, with a unary interceptor counting the calls. Close stops the
// emulator.
func NewGCP(ctx context.Context, opts ...gcpsmtest.Option) (*Target, error) {
	srv, err := gcpsmtest.New(opts...)
	if err != nil {
		return nil, err
	}
	t, err := newGCP(ctx, srv.ClientOptions(), "gcpsmtest emulator at "+srv.Addr()+" (in process, gRPC over TCP)")
	if err != nil {
		srv.Close()
		return nil, err
	}
	t.closers = append([]func() error{srv.Close}, t.closers...)
	return t, nil
}

// DialGCP returns the GCP target on a gcpsmtest emulator already running
// at addr in a process of its own (cmd/gcpemulator), so that the
// emulator's memory (every secret and version it keeps) is not the
// benchmark's. Close leaves the emulator running.
func DialGCP(ctx context.Context, addr string) (*Target, error) {
	return newGCP(ctx, gcpsmtest.ClientOptionsFor(addr), "gcpsmtest emulator at "+addr+" (cmd/gcpemulator, a process of its own, gRPC over TCP)")
}

func newGCP(ctx context.Context, base []option.ClientOption, server string) (*Target, error) {
	t := newTarget()
	copts := append(base, option.WithGRPCDialOption(grpc.WithChainUnaryInterceptor(t.Calls.GRPCInterceptor())))
	client, err := secretmanager.NewClient(ctx, copts...)
	if err != nil {
		return nil, fmt.Errorf("gcp: new client: %w", err)
	}
	t.Name = "gcp"
	t.Server = server
	// A write: AddSecretVersion, UpdateSecret under the etag the adapter
	// remembers, DestroySecretVersion of the version before the replaced
	// one (GetSecret first when the etag is not known).
	t.Costs = Costs{Read: 1, Create: 3, Update: 3, Delete: 1, ReadMany: func(n int) int { return n }}
	t.Raw = &gcpRaw{c: client, parent: "projects/" + GCPProject, mem: map[string]*secretState{}}
	t.open = func(ctx context.Context, prefix string, o StoreOptions, wrap func(casstore.Backend) casstore.Backend) (Store, error) {
		opts := []gcpsm.Option{gcpsm.WithIndexCache(o.IndexCache), gcpsm.WithLogger(logger()), gcpsm.WithBackendWrapper(wrap)}
		if o.IndexShards > 0 {
			opts = append(opts, gcpsm.WithIndexShards(o.IndexShards))
		}
		return gcpsm.New(ctx, client, GCPProject, prefix, opts...)
	}
	t.closers = []func() error{client.Close}
	return t, nil
}

// gcpRaw makes the requests of the gcpsm backend: secret
// "projects/<project>/secrets/<prefix>_<name>", whose "current" alias
// names the current version and "previous" the one before. Like the
// adapter it remembers each secret's etag and aliases from the answers of
// its writes, so that a write needs no GetSecret.
type gcpRaw struct {
	c      *secretmanager.Client
	parent string

	mu  sync.Mutex
	mem map[string]*secretState
}

// secretState is what gcpRaw remembers of a secret it wrote.
type secretState struct {
	etag    string
	aliases map[string]int64
}

func (r *gcpRaw) secret(prefix, name string) string {
	return r.parent + "/secrets/" + prefix + "_" + name
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (r *gcpRaw) Read(ctx context.Context, prefix, name string) (Doc, error) {
	resp, err := r.c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{
		Name: r.secret(prefix, name) + "/versions/" + gcpsm.CurrentAlias,
	})
	if err != nil {
		return Doc{}, err
	}
	v := resp.GetName()[strings.LastIndexByte(resp.GetName(), '/')+1:]
	return Doc{Value: resp.GetPayload().GetData(), Version: v}, nil
}

func (r *gcpRaw) remembered(secret string) *secretState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mem[secret]
}

func (r *gcpRaw) remember(secret string, sec *secretmanagerpb.Secret) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mem[secret] = &secretState{etag: sec.GetEtag(), aliases: maps.Clone(sec.GetVersionAliases())}
}

// Write is the compare-and-swap of gcpsm on a secret whose etag is
// remembered: AddSecretVersion; UpdateSecret under the etag, "current" →
// the new version and "previous" → version; DestroySecretVersion of the
// version "previous" named before (none on the first write after the
// creation). Without a remembered etag, a GetSecret comes first.
func (r *gcpRaw) Write(ctx context.Context, prefix, name string, value []byte, version string) (string, error) {
	secret := r.secret(prefix, name)
	expected, err := strconv.ParseInt(version, 10, 64)
	if err != nil {
		return "", err
	}
	st := r.remembered(secret)
	if st == nil || st.aliases[gcpsm.CurrentAlias] != expected {
		sec, err := r.c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: secret})
		if err != nil {
			return "", err
		}
		st = &secretState{etag: sec.GetEtag(), aliases: sec.GetVersionAliases()}
	}
	if cur := st.aliases[gcpsm.CurrentAlias]; cur != expected {
		return "", fmt.Errorf("gcp raw write %s: at version %d, not %d", secret, cur, expected)
	}
	v, err := r.addAndMove(ctx, secret, st, value, expected)
	if err != nil {
		return "", err
	}
	if old := st.aliases[gcpsm.PreviousAlias]; old > 0 && old != expected {
		if _, err := r.c.DestroySecretVersion(ctx, &secretmanagerpb.DestroySecretVersionRequest{Name: secret + "/versions/" + strconv.FormatInt(old, 10)}); err != nil {
			return "", err
		}
	}
	return v, nil
}

// addAndMove adds value as a version and moves the aliases to it under
// st's etag, and remembers the answer.
func (r *gcpRaw) addAndMove(ctx context.Context, secret string, st *secretState, value []byte, expected int64) (string, error) {
	crc := int64(crc32.Checksum(value, castagnoli))
	ver, err := r.c.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{
		Parent:  secret,
		Payload: &secretmanagerpb.SecretPayload{Data: value, DataCrc32C: &crc},
	})
	if err != nil {
		return "", err
	}
	v := ver.GetName()[strings.LastIndexByte(ver.GetName(), '/')+1:]
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return "", err
	}
	aliases := maps.Clone(st.aliases)
	if aliases == nil {
		aliases = map[string]int64{}
	}
	aliases[gcpsm.CurrentAlias] = n
	if expected > 0 {
		aliases[gcpsm.PreviousAlias] = expected
	}
	sec, err := r.c.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
		Secret:     &secretmanagerpb.Secret{Name: secret, Etag: st.etag, VersionAliases: aliases},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"version_aliases"}},
	})
	if err != nil {
		return "", err
	}
	r.remember(secret, sec)
	return v, nil
}

// Create is CreateSecret, AddSecretVersion and UpdateSecret (the alias),
// as gcpsm creates a document.
func (r *gcpRaw) Create(ctx context.Context, prefix, name string, value []byte) (string, error) {
	sec, err := r.c.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{
		Parent:   r.parent,
		SecretId: prefix + "_" + name,
		Secret: &secretmanagerpb.Secret{
			Labels: map[string]string{gcpsm.PrefixLabel: prefix},
			Replication: &secretmanagerpb.Replication{
				Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}},
			},
		},
	})
	if err != nil {
		return "", err
	}
	return r.addAndMove(ctx, sec.GetName(), &secretState{etag: sec.GetEtag(), aliases: sec.GetVersionAliases()}, value, 0)
}

func (r *gcpRaw) Delete(ctx context.Context, prefix, name string) error {
	secret := r.secret(prefix, name)
	r.mu.Lock()
	delete(r.mem, secret)
	r.mu.Unlock()
	return r.c.DeleteSecret(ctx, &secretmanagerpb.DeleteSecretRequest{Name: secret})
}

// BillableVersions returns the number of ENABLED and DISABLED versions of
// the secret that holds document name of the store at prefix: what Secret
// Manager bills for (destroyed versions are free). One ListSecretVersions
// call per 250 versions.
func (t *Target) BillableVersions(ctx context.Context, prefix, name string) (int, error) {
	r, ok := t.Raw.(*gcpRaw)
	if !ok {
		return 0, errors.New("BillableVersions: not the GCP target")
	}
	it := r.c.ListSecretVersions(ctx, &secretmanagerpb.ListSecretVersionsRequest{
		Parent:   r.secret(prefix, name),
		PageSize: 250,
		Filter:   "state:ENABLED OR state:DISABLED",
	})
	n := 0
	for {
		_, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return n, nil
		}
		if err != nil {
			return 0, err
		}
		n++
	}
}

// Forget drops what the raw client remembers of a secret, so that its
// next write reads the etag first, as a new process's would.
func (r *gcpRaw) Forget(prefix, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.mem, r.secret(prefix, name))
}
