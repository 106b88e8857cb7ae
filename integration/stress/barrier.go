package stress

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// barrier synchronises the children through marker files in a shared
// directory: a child arriving at phase p writes p-<worker> and waits until
// the markers of all workers are there. A file named "abort" ends every
// wait with its content as the error.
type barrier struct {
	dir     string
	workers int
	worker  int
	poll    time.Duration
}

const abortFile = "abort"

// wait announces this worker at phase and returns when every worker has,
// when the run is aborted, or when ctx ends.
func (b *barrier) wait(ctx context.Context, phase string) error {
	mine := filepath.Join(b.dir, fmt.Sprintf("%s-%d", phase, b.worker))
	if err := os.WriteFile(mine, nil, 0o600); err != nil {
		return err
	}
	poll := b.poll
	if poll <= 0 {
		poll = 5 * time.Millisecond
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	next := 0 // markers before next are known to exist
	for {
		if err := aborted(b.dir); err != nil {
			return err
		}
		for next < b.workers {
			if _, err := os.Stat(filepath.Join(b.dir, fmt.Sprintf("%s-%d", phase, next))); err != nil {
				break
			}
			next++
		}
		if next == b.workers {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stress: barrier %q: %d of %d workers arrived: %w", phase, next, b.workers, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// abort makes every barrier wait in dir fail with reason. The first
// reason wins: it is written to a temporary file that is then hard-linked
// to the abort file, which fails if that exists, so a reader never sees a
// partly written reason.
func abort(dir, reason string) {
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

// aborted returns the abort reason of dir as an error, or nil.
func aborted(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, abortFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("stress: run aborted: %s", b)
}
