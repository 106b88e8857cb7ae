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
// reason wins.
func abort(dir, reason string) {
	f, err := os.OpenFile(filepath.Join(dir, abortFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return // already aborted
	}
	defer f.Close()
	_, _ = f.WriteString(reason)
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
	if len(b) == 0 {
		b = []byte("(no reason yet)") // the writer has not written it yet
	}
	return fmt.Errorf("stress: run aborted: %s", b)
}
