package bench

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"strconv"
	"strings"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/cloudtokens/cloudtokens/gcpsm"
	"github.com/cloudtokens/cloudtokens/gcpsm/gcpsmtest"
)

// GCPProject is the project the GCP target uses on its emulator.
const GCPProject = "tokenbench"

// NewGCP starts the gcpsmtest emulator in this process on a loopback TCP
// port and returns the GCP target on it: the official client over gRPC,
// with a unary interceptor counting the calls. Close stops the emulator.
func NewGCP(ctx context.Context) (*Target, error) {
	srv, err := gcpsmtest.New()
	if err != nil {
		return nil, err
	}
	c := NewCounter()
	opts := append(srv.ClientOptions(), option.WithGRPCDialOption(grpc.WithChainUnaryInterceptor(c.GRPCInterceptor())))
	client, err := secretmanager.NewClient(ctx, opts...)
	if err != nil {
		srv.Close()
		return nil, fmt.Errorf("gcp: new client: %w", err)
	}
	raw := &gcpRaw{c: client, parent: "projects/" + GCPProject}
	return &Target{
		Name:   "gcp",
		Server: "gcpsmtest emulator at " + srv.Addr() + " (in process, gRPC over TCP)",
		Calls:  c,
		Costs:  Costs{Read: 1, Create: 3, Update: 4, Delete: 1, ReadMany: func(n int) int { return n }},
		Raw:    raw,
		open: func(ctx context.Context, prefix string, o StoreOptions) (Store, error) {
			opts := []gcpsm.Option{gcpsm.WithIndexCache(o.IndexCache), gcpsm.WithLogger(logger())}
			if o.IndexShards > 0 {
				opts = append(opts, gcpsm.WithIndexShards(o.IndexShards))
			}
			return gcpsm.New(ctx, client, GCPProject, prefix, opts...)
		},
		closers: []func() error{srv.Close, client.Close},
	}, nil
}

// gcpRaw makes the requests of the gcpsm backend: secret
// "projects/<project>/secrets/<prefix>_<name>", whose "current" alias
// names the current version.
type gcpRaw struct {
	c      *secretmanager.Client
	parent string
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

// Write is the compare-and-swap of gcpsm: GetSecret (etag and alias),
// AddSecretVersion, UpdateSecret moving the alias under the etag, and
// DestroySecretVersion of the replaced version.
func (r *gcpRaw) Write(ctx context.Context, prefix, name string, value []byte, version string) (string, error) {
	secret := r.secret(prefix, name)
	sec, err := r.c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: secret})
	if err != nil {
		return "", err
	}
	if cur := sec.GetVersionAliases()[gcpsm.CurrentAlias]; strconv.FormatInt(cur, 10) != version {
		return "", fmt.Errorf("gcp raw write %s: at version %d, not %s", secret, cur, version)
	}
	v, err := r.addAndMove(ctx, sec, secret, value)
	if err != nil {
		return "", err
	}
	if _, err := r.c.DestroySecretVersion(ctx, &secretmanagerpb.DestroySecretVersionRequest{Name: secret + "/versions/" + version}); err != nil {
		return "", err
	}
	return v, nil
}

func (r *gcpRaw) addAndMove(ctx context.Context, sec *secretmanagerpb.Secret, secret string, value []byte) (string, error) {
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
	aliases := maps.Clone(sec.GetVersionAliases())
	if aliases == nil {
		aliases = map[string]int64{}
	}
	aliases[gcpsm.CurrentAlias] = n
	_, err = r.c.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
		Secret:     &secretmanagerpb.Secret{Name: secret, Etag: sec.GetEtag(), VersionAliases: aliases},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"version_aliases"}},
	})
	if err != nil {
		return "", err
	}
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
	return r.addAndMove(ctx, sec, sec.GetName(), value)
}

func (r *gcpRaw) Delete(ctx context.Context, prefix, name string) error {
	return r.c.DeleteSecret(ctx, &secretmanagerpb.DeleteSecretRequest{Name: r.secret(prefix, name)})
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
