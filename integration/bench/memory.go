package bench

import (
	"context"
	"strings"

	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// NewMemory returns the in-memory target: the casstore engine on a
// casstore.MemoryBackend. Its "transport" is the Backend interface: each
// Backend call counts as one request (ReadMany too), under the method
// name.
func NewMemory() *Target {
	mem := casstore.NewMemoryBackend()
	t := newTarget()
	c := t.Calls
	t.Name = "memory"
	t.Server = "casstore.MemoryBackend (in process)"
	t.Costs = Costs{Read: 1, Create: 1, Update: 1, Delete: 1, ReadMany: func(n int) int {
		if n == 0 {
			return 0
		}
		return 1
	}}
	t.Raw = memoryRaw{mem: mem, c: c}
	t.open = func(_ context.Context, prefix string, o StoreOptions, wrap func(casstore.Backend) casstore.Backend) (Store, error) {
		b := wrap(&memoryBackend{mem: mem, c: c, prefix: prefix + "/"})
		return casstore.New(b, casstore.Options{IndexShards: o.IndexShards, CacheIndex: o.IndexCache, Logger: logger()}), nil
	}
	return t
}

// memoryBackend maps the names of one store under its prefix in a shared
// MemoryBackend and counts the calls.
type memoryBackend struct {
	mem    *casstore.MemoryBackend
	c      *Counter
	prefix string
}

func (b *memoryBackend) Read(ctx context.Context, name string) (casstore.Object, error) {
	b.c.Add(ctx, "Read")
	return b.mem.Read(ctx, b.prefix+name)
}

func (b *memoryBackend) ReadMany(ctx context.Context, names []string) ([]casstore.Result, error) {
	b.c.Add(ctx, "ReadMany")
	full := make([]string, len(names))
	for i, n := range names {
		full[i] = b.prefix + n
	}
	res, err := b.mem.ReadMany(ctx, full)
	for i := range res {
		res[i].Name = names[i]
	}
	return res, err
}

func (b *memoryBackend) Create(ctx context.Context, name string, value []byte) (string, error) {
	b.c.Add(ctx, "Create")
	b.c.AddWrite(b.prefix + name)
	return b.mem.Create(ctx, b.prefix+name, value)
}

func (b *memoryBackend) Update(ctx context.Context, name string, value []byte, version string) (string, error) {
	b.c.Add(ctx, "Update")
	b.c.AddWrite(b.prefix + name)
	return b.mem.Update(ctx, b.prefix+name, value, version)
}

func (b *memoryBackend) Delete(ctx context.Context, name string) error {
	b.c.Add(ctx, "Delete")
	b.c.AddWrite(b.prefix + name)
	return b.mem.Delete(ctx, b.prefix+name)
}

func (b *memoryBackend) List(ctx context.Context) ([]string, error) {
	b.c.Add(ctx, "List")
	all, err := b.mem.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range all {
		if rest, ok := strings.CutPrefix(n, b.prefix); ok && !strings.Contains(rest, "/") {
			out = append(out, rest)
		}
	}
	return out, nil
}

type memoryRaw struct {
	mem *casstore.MemoryBackend
	c   *Counter
}

func (r memoryRaw) Read(ctx context.Context, prefix, name string) (Doc, error) {
	r.c.Add(ctx, "Read")
	o, err := r.mem.Read(ctx, prefix+"/"+name)
	return Doc{Value: o.Value, Version: o.Version}, err
}

func (r memoryRaw) Write(ctx context.Context, prefix, name string, value []byte, version string) (string, error) {
	r.c.Add(ctx, "Update")
	r.c.AddWrite(prefix + "/" + name)
	return r.mem.Update(ctx, prefix+"/"+name, value, version)
}

func (r memoryRaw) Create(ctx context.Context, prefix, name string, value []byte) (string, error) {
	r.c.Add(ctx, "Create")
	r.c.AddWrite(prefix + "/" + name)
	return r.mem.Create(ctx, prefix+"/"+name, value)
}

func (r memoryRaw) Delete(ctx context.Context, prefix, name string) error {
	r.c.Add(ctx, "Delete")
	r.c.AddWrite(prefix + "/" + name)
	return r.mem.Delete(ctx, prefix+"/"+name)
}
