package proctest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Barrier synchronises processes through marker files in a shared
// directory: a process arriving at a phase writes "<phase>-<self>" and
// waits until the markers of all parties are there. An abort (see Abort)
// ends every wait in the directory with its reason.
type Barrier struct {
	// Dir is the shared directory.
	Dir string
	// Parties is the number of processes that meet at each phase.
	Parties int
	// Self is this process's number, 0 to Parties-1.
	Self int
	// Poll is how often a waiting process looks (default 5ms).
	Poll time.Duration
}

// Wait announces this process at phase and returns when every party has
// arrived, when the directory is aborted, or when ctx ends.
func (b Barrier) Wait(ctx context.Context, phase string) error {
	mine := filepath.Join(b.Dir, fmt.Sprintf("%s-%d", phase, b.Self))
	if err := os.WriteFile(mine, nil, 0o600); err != nil {
		return err
	}
	poll := b.Poll
	if poll <= 0 {
		poll = 5 * time.Millisecond
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	next := 0 // markers before next are known to exist
	for {
		if err := Aborted(b.Dir); err != nil {
			return err
		}
		for next < b.Parties {
			if _, err := os.Stat(filepath.Join(b.Dir, fmt.Sprintf("%s-%d", phase, next))); err != nil {
				break
			}
			next++
		}
		if next == b.Parties {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("proctest: barrier %q: %d of %d arrived: %w", phase, next, b.Parties, context.Cause(ctx))
		case <-tick.C:
		}
	}
}

const abortFile = "abort"

// Abort makes every Barrier wait in dir fail with reason. The first
// reason wins: it is written to a temporary file that is then hard-linked
// to the abort file, which fails if that exists, so a reader never sees a
// partly written reason.
func Abort(dir, reason string) {
	f, err := os.CreateTemp(dir, "abort-*.tmp")
	if err != nil {
		return
	}
	defer os.Remove(f.Name())
	_, err = f.WriteString(reason)
	if cerr := f.Close(); err != nil || cerr != nil {
		return
	}
	_ = os.Link(f.Name(), filepath.Join(dir, abortFile)) // fails if already aborted
}

// Aborted returns the abort reason of dir as an error, or nil.
func Aborted(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, abortFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("proctest: run aborted: %s", b)
}

// ResultPath is the file of worker's result in dir.
func ResultPath(dir string, worker int) string {
	return filepath.Join(dir, fmt.Sprintf("result-%d.json", worker))
}

// WriteResult stores v, as JSON, as the result of worker in dir. The file
// appears whole or not at all (written, synced, then renamed), so a
// parent never reads half a result, even of a child killed while writing.
func WriteResult(dir string, worker int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	path := ResultPath(dir, worker)
	f, err := os.CreateTemp(dir, fmt.Sprintf("result-%d-*.tmp", worker))
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// ReadResult decodes the result of worker in dir into v. A missing result
// gives an error wrapping os.ErrNotExist.
func ReadResult(dir string, worker int, v any) error {
	b, err := os.ReadFile(ResultPath(dir, worker))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("proctest: result of worker %d: %w", worker, err)
	}
	return nil
}

// Journal is an append-only log of JSON records that survives SIGKILL: a
// record that Append has returned for is on disk. A child writes what it
// is about to do and what it has acknowledged; after killing it, the
// parent reads the journal with ReadJournal and knows exactly which
// acknowledgements the child had made.
type Journal struct {
	mu sync.Mutex
	f  *os.File
}

// OpenJournal opens (creating it if needed) the journal at path for
// appending.
func OpenJournal(path string) (*Journal, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	return &Journal{f: f}, nil
}

// Append writes v as one JSON line and fsyncs the file before it
// returns. It is safe for concurrent use.
func (j *Journal) Append(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := j.f.Write(b); err != nil {
		return err
	}
	return j.f.Sync()
}

// Close closes the journal.
func (j *Journal) Close() error { return j.f.Close() }

// ReadJournal decodes the records of the journal at path, in order. A
// last line without its newline (the writer was killed in the middle of
// it, so Append never returned) is not a record and is skipped; any other
// line that does not decode is an error. A missing file has no records.
func ReadJournal[T any](path string) ([]T, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []T
	r := bufio.NewReader(bytes.NewReader(b))
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			return out, nil // an empty or torn last line
		}
		var v T
		if err := json.Unmarshal(line, &v); err != nil {
			return out, fmt.Errorf("proctest: journal %s, line %d: %w", path, n, err)
		}
		out = append(out, v)
	}
}
