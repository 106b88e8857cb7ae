package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
	ctvault "github.com/cloudtokens/cloudtokens/vault"
)

// Environment variables naming the Vault server, as the tests read them.
const (
	EnvVaultAddr  = "CLOUDTOKENS_VAULT_ADDR"
	EnvVaultToken = "CLOUDTOKENS_VAULT_TOKEN"
)

// VaultFromEnv returns $CLOUDTOKENS_VAULT_ADDR and $CLOUDTOKENS_VAULT_TOKEN,
// else $VAULT_ADDR and $VAULT_TOKEN, and ok false when neither pair is set.
func VaultFromEnv() (addr, token string, ok bool) {
	if addr, token := os.Getenv(EnvVaultAddr), os.Getenv(EnvVaultToken); addr != "" && token != "" {
		return addr, token, true
	}
	if addr, token := os.Getenv("VAULT_ADDR"), os.Getenv("VAULT_TOKEN"); addr != "" && token != "" {
		return addr, token, true
	}
	return "", "", false
}

// NewVault returns the Vault target: KV v2 at secret/ of the server at
// addr. The client's transport keeps up to 64 idle connections per host
// (cleanhttp's default is GOMAXPROCS+1) and counts the requests.
func NewVault(ctx context.Context, addr, token string) (*Target, error) {
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, cfg.Error
	}
	cfg.Address = addr
	tr, ok := cfg.HttpClient.Transport.(*http.Transport)
	if !ok {
		return nil, fmt.Errorf("vault: unexpected default transport %T", cfg.HttpClient.Transport)
	}
	tr.MaxIdleConns = 256
	tr.MaxIdleConnsPerHost = 64
	t := newTarget()
	cfg.HttpClient.Transport = t.Calls.RoundTripper(tr)
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault: new client: %w", err)
	}
	client.SetToken(token)
	if _, err := client.Sys().HealthWithContext(ctx); err != nil {
		return nil, fmt.Errorf("vault: %s: %w", addr, err)
	}
	t.Name = "vault"
	t.Server = "Vault at " + addr + " (KV v2 at " + ctvault.DefaultMount + "/)"
	// Create of a new entry: the write with cas=0 and max_versions on its
	// metadata. Delete: read, deletion marker with cas, metadata delete.
	t.Costs = Costs{Read: 1, Create: 2, Update: 1, Delete: 3, ReadMany: func(n int) int { return n }}
	t.Raw = vaultRaw{c: client, mount: ctvault.DefaultMount}
	t.open = func(ctx context.Context, prefix string, o StoreOptions, wrap func(casstore.Backend) casstore.Backend) (Store, error) {
		opts := []ctvault.Option{ctvault.WithIndexCache(o.IndexCache), ctvault.WithLogger(logger()), ctvault.WithBackendWrapper(wrap)}
		if o.IndexShards > 0 {
			opts = append(opts, ctvault.WithIndexShards(o.IndexShards))
		}
		return ctvault.New(ctx, client, prefix, opts...)
	}
	return t, nil
}

// vaultRaw makes the requests of the vault backend: entry
// "<mount>/data/<prefix>/<name>" with the document in field "document".
type vaultRaw struct {
	c     *api.Client
	mount string
}

func (r vaultRaw) data(prefix, name string) string { return r.mount + "/data/" + prefix + "/" + name }

func (r vaultRaw) Read(ctx context.Context, prefix, name string) (Doc, error) {
	s, err := r.c.Logical().ReadWithContext(ctx, r.data(prefix, name))
	if err != nil {
		return Doc{}, err
	}
	if s == nil {
		return Doc{}, errors.New("vault raw read: not found")
	}
	data, _ := s.Data["data"].(map[string]any)
	md, _ := s.Data["metadata"].(map[string]any)
	doc, _ := data[ctvault.DocumentField].(string)
	v, _ := md["version"].(json.Number)
	return Doc{Value: []byte(doc), Version: v.String()}, nil
}

func (r vaultRaw) write(ctx context.Context, path string, data map[string]any, cas string) (string, error) {
	s, err := r.c.Logical().WriteWithContext(ctx, path, map[string]any{
		"data":    data,
		"options": map[string]any{"cas": json.Number(cas)},
	})
	if err != nil {
		return "", err
	}
	if s == nil {
		return "", errors.New("vault raw write: empty response")
	}
	v, _ := s.Data["version"].(json.Number)
	return v.String(), nil
}

// Write is a KV v2 write with check-and-set: one call.
func (r vaultRaw) Write(ctx context.Context, prefix, name string, value []byte, version string) (string, error) {
	return r.write(ctx, r.data(prefix, name), map[string]any{ctvault.DocumentField: string(value)}, version)
}

// Create is a write with cas=0 and max_versions on the new entry's
// metadata, as the vault backend creates a document: two calls.
func (r vaultRaw) Create(ctx context.Context, prefix, name string, value []byte) (string, error) {
	v, err := r.write(ctx, r.data(prefix, name), map[string]any{ctvault.DocumentField: string(value)}, "0")
	if err != nil {
		return "", err
	}
	_, err = r.c.Logical().WriteWithContext(ctx, r.mount+"/metadata/"+prefix+"/"+name, map[string]any{"max_versions": ctvault.DefaultMaxVersions})
	return v, err
}

// Delete is what the vault backend does to delete a document, which makes
// exactly one of concurrent deletes succeed: read the version, write a
// deletion marker with cas, delete the metadata. Three calls.
func (r vaultRaw) Delete(ctx context.Context, prefix, name string) error {
	d, err := r.Read(ctx, prefix, name)
	if err != nil {
		return err
	}
	if _, err := r.write(ctx, r.data(prefix, name), map[string]any{ctvault.DeletedField: time.Now().UTC().Format(time.RFC3339)}, d.Version); err != nil {
		return err
	}
	_, err = r.c.Logical().DeleteWithContext(ctx, r.mount+"/metadata/"+prefix+"/"+name)
	return err
}
