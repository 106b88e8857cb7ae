package stress

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// fileBackend is a casstore.Backend and casstore.Lister on a directory,
// safe across processes: document NAME is the file NAME.doc, holding its
// version on the first line and its value after it, replaced atomically
// (write a temporary file, rename it). Writes of NAME hold an exclusive
// flock on NAME.lock, which also keeps the last version issued for NAME,
// so versions only grow, even across a delete and a re-create. Reads take
// no lock: a rename is atomic.
type fileBackend struct {
	dir string
	// broken, for the harness's own negative test, makes Update skip the
	// version comparison: lost updates.
	broken bool

	reads, creates, updates, deletes, mismatches atomic.Int64
}

var (
	_ casstore.Backend = (*fileBackend)(nil)
	_ casstore.Lister  = (*fileBackend)(nil)
)

const (
	docSuffix  = ".doc"
	lockSuffix = ".lock"
)

func newFileBackend(dir string) (*fileBackend, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &fileBackend{dir: dir}, nil
}

func (b *fileBackend) path(name string) string { return filepath.Join(b.dir, name+docSuffix) }

// lock takes the exclusive lock of name and returns the lock file, whose
// content is the last version issued. flock locks belong to the open file
// description, so goroutines of one process exclude each other too.
func (b *fileBackend) lock(name string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(b.dir, name+lockSuffix), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("flock %s: %w", name, err)
	}
	return f, nil
}

// unlock releases the lock (closing the file releases the flock).
func unlock(f *os.File) { _ = f.Close() }

// nextVersion increments the counter in the lock file and returns it.
func nextVersion(lf *os.File) (string, error) {
	buf := make([]byte, 32)
	n, err := lf.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	last := int64(0)
	if s := strings.TrimSpace(string(buf[:n])); s != "" {
		if last, err = strconv.ParseInt(s, 10, 64); err != nil {
			return "", fmt.Errorf("lock file %s: %w", lf.Name(), err)
		}
	}
	v := strconv.FormatInt(last+1, 10)
	if err := lf.Truncate(0); err != nil {
		return "", err
	}
	if _, err := lf.WriteAt([]byte(v), 0); err != nil {
		return "", err
	}
	return v, nil
}

// readDoc reads document name; a missing one wraps tokenstore.ErrNotFound.
func (b *fileBackend) readDoc(name string) (casstore.Object, error) {
	data, err := os.ReadFile(b.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return casstore.Object{}, fmt.Errorf("file backend: %s: %w", name, tokenstore.ErrNotFound)
	}
	if err != nil {
		return casstore.Object{}, err
	}
	version, value, ok := bytes.Cut(data, []byte("\n"))
	if !ok {
		return casstore.Object{}, fmt.Errorf("file backend: %s: no version line", name)
	}
	return casstore.Object{Value: value, Version: string(version)}, nil
}

// writeDoc replaces document name atomically.
func (b *fileBackend) writeDoc(name, version string, value []byte) error {
	f, err := os.CreateTemp(b.dir, name+".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(append([]byte(version+"\n"), value...))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), b.path(name))
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

func (b *fileBackend) Read(ctx context.Context, name string) (casstore.Object, error) {
	if err := ctx.Err(); err != nil {
		return casstore.Object{}, err
	}
	b.reads.Add(1)
	return b.readDoc(name)
}

func (b *fileBackend) ReadMany(ctx context.Context, names []string) ([]casstore.Result, error) {
	return casstore.ReadEach(ctx, names, 8, b.Read)
}

func (b *fileBackend) Create(ctx context.Context, name string, value []byte) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	b.creates.Add(1)
	lf, err := b.lock(name)
	if err != nil {
		return "", err
	}
	defer unlock(lf)
	if _, err := os.Stat(b.path(name)); err == nil {
		return "", fmt.Errorf("file backend: %s: %w", name, casstore.ErrExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	v, err := nextVersion(lf)
	if err != nil {
		return "", err
	}
	return v, b.writeDoc(name, v, value)
}

func (b *fileBackend) Update(ctx context.Context, name string, value []byte, version string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	b.updates.Add(1)
	lf, err := b.lock(name)
	if err != nil {
		return "", err
	}
	defer unlock(lf)
	cur, err := b.readDoc(name)
	if err != nil {
		return "", err
	}
	if cur.Version != version && !b.broken {
		b.mismatches.Add(1)
		return "", fmt.Errorf("file backend: %s is at version %s, not %s: %w", name, cur.Version, version, casstore.ErrVersionMismatch)
	}
	v, err := nextVersion(lf)
	if err != nil {
		return "", err
	}
	return v, b.writeDoc(name, v, value)
}

func (b *fileBackend) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.deletes.Add(1)
	lf, err := b.lock(name)
	if err != nil {
		return err
	}
	defer unlock(lf)
	err = os.Remove(b.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("file backend: %s: %w", name, tokenstore.ErrNotFound)
	}
	return err
}

func (b *fileBackend) List(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(b.dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), docSuffix); ok {
			names = append(names, name)
		}
	}
	return names, nil
}

// String reports the call counts.
func (b *fileBackend) String() string {
	return fmt.Sprintf("%d reads, %d creates, %d updates (%d version mismatches), %d deletes",
		b.reads.Load(), b.creates.Load(), b.updates.Load(), b.mismatches.Load(), b.deletes.Load())
}
