//go:build unix

package tokensource_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// fileBackend is a casstore.Backend in a directory, shared by processes:
// one file per document holding "<version>\n<value>", every operation
// under an exclusive flock on the directory's lock file. Versions are
// random, so a document deleted and created again never repeats one.
// Test-only: it stands in for a cloud secrets manager across processes.
type fileBackend struct {
	dir string
}

var _ casstore.Backend = (*fileBackend)(nil)

func newFileBackend(tb testing.TB, dir string) *fileBackend {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	return &fileBackend{dir: dir}
}

func (b *fileBackend) locked(ctx context.Context, f func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	lf, err := os.OpenFile(filepath.Join(b.dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)
	return f()
}

func (b *fileBackend) path(name string) string { return filepath.Join(b.dir, name+".doc") }

func (b *fileBackend) read(name string) (casstore.Object, error) {
	raw, err := os.ReadFile(b.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return casstore.Object{}, fmt.Errorf("%w: document %q", tokenstore.ErrNotFound, name)
	}
	if err != nil {
		return casstore.Object{}, err
	}
	version, value, ok := bytes.Cut(raw, []byte("\n"))
	if !ok {
		return casstore.Object{}, fmt.Errorf("file backend: document %q has no version line", name)
	}
	return casstore.Object{Value: value, Version: string(version)}, nil
}

func (b *fileBackend) write(name string, value []byte) (string, error) {
	var v [8]byte
	if _, err := rand.Read(v[:]); err != nil {
		return "", err
	}
	version := hex.EncodeToString(v[:])
	tmp := b.path(name) + ".tmp"
	if err := os.WriteFile(tmp, append([]byte(version+"\n"), value...), 0o600); err != nil {
		return "", err
	}
	return version, os.Rename(tmp, b.path(name))
}

func (b *fileBackend) Read(ctx context.Context, name string) (obj casstore.Object, err error) {
	err = b.locked(ctx, func() error { obj, err = b.read(name); return err })
	return obj, err
}

func (b *fileBackend) ReadMany(ctx context.Context, names []string) ([]casstore.Result, error) {
	out := make([]casstore.Result, len(names))
	err := b.locked(ctx, func() error {
		for i, n := range names {
			o, err := b.read(n)
			out[i] = casstore.Result{Name: n, Value: o.Value, Version: o.Version, Err: err}
		}
		return nil
	})
	return out, err
}

func (b *fileBackend) Create(ctx context.Context, name string, value []byte) (version string, err error) {
	err = b.locked(ctx, func() error {
		if _, err := os.Stat(b.path(name)); err == nil {
			return fmt.Errorf("%w: %q", casstore.ErrExists, name)
		}
		version, err = b.write(name, value)
		return err
	})
	return version, err
}

func (b *fileBackend) Update(ctx context.Context, name string, value []byte, version string) (newVersion string, err error) {
	err = b.locked(ctx, func() error {
		cur, err := b.read(name)
		if err != nil {
			return err
		}
		if cur.Version != version {
			return fmt.Errorf("%w: %q", casstore.ErrVersionMismatch, name)
		}
		newVersion, err = b.write(name, value)
		return err
	})
	return newVersion, err
}

func (b *fileBackend) Delete(ctx context.Context, name string) error {
	return b.locked(ctx, func() error {
		err := os.Remove(b.path(name))
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: document %q", tokenstore.ErrNotFound, name)
		}
		return err
	})
}

// TestFileBackendCAS checks the fixture itself through the casstore
// engine: two stores over one directory see each other's writes, and a
// stale version is refused.
func TestFileBackendCAS(t *testing.T) {
	dir := t.TempDir()
	b := newFileBackend(t, dir)
	ctx := ctxT(t)
	v1, err := b.Create(ctx, "token-x", []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Create(ctx, "token-x", []byte("two")); !errors.Is(err, casstore.ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	v2, err := b.Update(ctx, "token-x", []byte("two"), v1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Update(ctx, "token-x", []byte("three"), v1); !errors.Is(err, casstore.ErrVersionMismatch) {
		t.Fatalf("stale update: %v", err)
	}
	if o, err := b.Read(ctx, "token-x"); err != nil || string(o.Value) != "two" || o.Version != v2 {
		t.Fatalf("read: %q %v", o.Value, err)
	}
	if err := b.Delete(ctx, "token-x"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Read(ctx, "token-x"); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Fatalf("read after delete: %v", err)
	}

	s1 := casstore.New(newFileBackend(t, dir), casstore.Options{Logger: quietLogger()})
	s2 := casstore.New(newFileBackend(t, dir), casstore.Options{Logger: quietLogger()})
	tok := &tokenstore.Token{UserName: "u", AccessToken: "a"}
	if err := s1.SaveToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if got, err := s2.FindToken(ctx, &tokenstore.Token{UserName: "u"}); err != nil || got.ID != tok.ID {
		t.Fatalf("other instance: %v %v", got, err)
	}
}
