// Package progress shows the progress of long work of the cloudtokens
// command: a progress bar (schollz/progressbar) when it writes to a
// terminal, and otherwise plain lines ("copying: 50/500") at every tenth
// of the work and at the end, which read well in CI logs and files.
package progress

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Reporter reports the progress of one task at a time. It implements
// transfer.Progress.
type Reporter struct {
	w        io.Writer
	terminal bool
	bar      *progressbar.ProgressBar
	what     string
	total    int
	done     int
	shown    int // plain mode: the last count printed
}

// New returns a Reporter writing to w; terminal selects the bar.
func New(w io.Writer, terminal bool) *Reporter {
	return &Reporter{w: w, terminal: terminal}
}

// Start begins a task of total steps.
func (r *Reporter) Start(what string, total int) {
	r.what, r.total, r.done, r.shown = what, total, 0, 0
	if total <= 0 {
		return
	}
	if r.terminal {
		r.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(r.w),
			progressbar.OptionSetDescription(what),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
		return
	}
	fmt.Fprintf(r.w, "%s: 0/%d\n", what, total)
}

// Add records n more steps done.
func (r *Reporter) Add(n int) {
	r.done += n
	if r.bar != nil {
		_ = r.bar.Add(n)
		return
	}
	step := max(r.total/10, 1)
	if r.total > 0 && (r.done-r.shown >= step || r.done == r.total) && r.done != r.shown {
		r.shown = r.done
		fmt.Fprintf(r.w, "%s: %d/%d\n", r.what, r.done, r.total)
	}
}

// Done ends the task.
func (r *Reporter) Done() {
	if r.bar != nil {
		_ = r.bar.Finish()
		r.bar = nil
	}
}
