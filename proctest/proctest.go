// Package proctest runs a test across several OS processes: the test
// binary re-executes itself as children that run only the calling test,
// and the processes meet at file barriers, hand back results through
// files, keep an fsynced journal of what they acknowledged, and can be
// killed with SIGKILL at any moment.
//
// The test function runs in the parent and in every child. [Self] tells
// them apart:
//
//	func TestAcrossProcesses(t *testing.T) {
//		if c, ok := proctest.Self(t); ok {
//			// a child: do one worker's share, then return
//			_ = proctest.WriteResult(c.Dir, c.Worker, result)
//			return
//		}
//		dir := t.TempDir()
//		var ps []*proctest.Process
//		for w := range 4 {
//			ps = append(ps, proctest.Start(t.Context(), t, proctest.Options{Dir: dir, Worker: w}))
//		}
//		for _, p := range ps {
//			if err := p.Wait(); err != nil {
//				t.Errorf("worker %d: %v\n%s", p.Worker(), err, p.Output())
//			}
//		}
//	}
//
// A child gets the parent's environment (so endpoints such as
// CLOUDTOKENS_AWS_ENDPOINT reach it) plus Options.Env. Setup that only the
// parent must do, such as starting a server, has to be skipped when
// [IsChild] is true; the same holds for a TestMain.
//
// The packages stress (integration), tokensourcetest and the reliability
// tests are built on it.
package proctest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Environment variables that make a test binary a child.
const (
	envTest   = "CLOUDTOKENS_PROCTEST_TEST"   // the test's t.Name()
	envWorker = "CLOUDTOKENS_PROCTEST_WORKER" // the worker number
	envDir    = "CLOUDTOKENS_PROCTEST_DIR"    // the shared directory
)

// Child describes this process when it is a child started by Start.
type Child struct {
	// Test is the name of the test the parent runs (t.Name()).
	Test string
	// Worker is the number the parent gave this child (Options.Worker).
	Worker int
	// Dir is the directory shared by the parent and its children
	// (Options.Dir).
	Dir string
}

// IsChild reports whether this process is a child started by Start.
func IsChild() bool { return os.Getenv(envTest) != "" }

// Self returns this process's Child description and true in a child, and
// false in the parent. In a child of another test than t (a -test.run
// pattern that matched more than the parent meant) it fails t.
func Self(t testing.TB) (Child, bool) {
	t.Helper()
	name := os.Getenv(envTest)
	if name == "" {
		return Child{}, false
	}
	if name != t.Name() {
		t.Fatalf("proctest: a child process of test %q runs test %q", name, t.Name())
	}
	w, err := strconv.Atoi(os.Getenv(envWorker))
	if err != nil {
		t.Fatalf("proctest: bad %s: %v", envWorker, err)
	}
	return Child{Test: name, Worker: w, Dir: os.Getenv(envDir)}, true
}

// Options describe one child.
type Options struct {
	// Dir is the directory shared with the child (Child.Dir), typically
	// t.TempDir() of the parent; required.
	Dir string
	// Worker is the child's number (Child.Worker).
	Worker int
	// Env holds "KEY=value" pairs added to the child's environment; they
	// override the parent's values of the same keys.
	Env []string
	// Timeout is the child's -test.timeout (default 10 minutes).
	Timeout time.Duration
	// Verbose runs the child with -test.v, so that its t.Log output is
	// in Output.
	Verbose bool
}

// Process is a running or finished child.
type Process struct {
	worker int
	cmd    *exec.Cmd
	out    lockedBuffer
	done   chan struct{}
	err    error
}

// Start re-executes the test binary (os.Executable) as a child that runs
// only t (its -test.run pattern matches t.Name() exactly). The child ends
// when ctx does (it is killed), and at the latest when t's cleanup runs.
// Start fails t if the child cannot be started.
func Start(ctx context.Context, t testing.TB, o Options) *Process {
	t.Helper()
	if o.Dir == "" {
		t.Fatal("proctest: Options.Dir is required")
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	args := []string{"-test.run=" + RunPattern(t.Name()), "-test.count=1", "-test.timeout=" + o.Timeout.String()}
	if o.Verbose {
		args = append(args, "-test.v=true")
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(Environ(os.Environ(), o.Env),
		envTest+"="+t.Name(), envWorker+"="+strconv.Itoa(o.Worker), envDir+"="+o.Dir)
	p := &Process{worker: o.Worker, cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("proctest: starting worker %d: %v", o.Worker, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.Kill()
		<-p.done
	})
	return p
}

// Worker returns the child's number.
func (p *Process) Worker() int { return p.worker }

// Pid returns the child's process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Kill sends SIGKILL to the child at once: it gets no chance to clean up,
// as when a serverless platform ends an instance. Killing a child that
// has exited does nothing.
func (p *Process) Kill() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

// Done is closed when the child has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits for the child to exit and returns its exit error (nil for a
// passing test, an *exec.ExitError for a failed or killed one).
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// Killed reports whether the child was ended by a signal (a Kill, or the
// end of the Start context).
func (p *Process) Killed() bool {
	select {
	case <-p.done:
	default:
		return false
	}
	var ee *exec.ExitError
	return errors.As(p.err, &ee) && !ee.Exited()
}

// Output returns what the child has written to stdout and stderr so far.
func (p *Process) Output() string { return p.out.String() }

// WaitAll waits for every process and returns their exit errors, in
// order.
func WaitAll(ps []*Process) []error {
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p.Wait()
	}
	return errs
}

// UniqueName returns prefix followed by 12 random characters of [a-z0-9]:
// a name for the data that one run shares between its processes (a
// secret prefix, a directory), valid as it is in an AWS secret name, a GCP
// secret ID and a Vault path.
func UniqueName(prefix string) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return prefix + string(b[:])
}

// RunPattern returns the -test.run pattern that selects exactly the test
// (or subtest) name.
func RunPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

// Environ returns environ without this package's variables and without
// the keys that extra sets, followed by extra, sorted by key. extra holds
// "KEY=value" pairs; an entry without "=" is dropped.
func Environ(environ, extra []string) []string {
	set := map[string]string{}
	for _, kv := range extra {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			set[k] = v
		}
	}
	var out []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if _, overridden := set[k]; overridden || strings.HasPrefix(k, "CLOUDTOKENS_PROCTEST_") {
			continue
		}
		out = append(out, kv)
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		out = append(out, k+"="+set[k])
	}
	return out
}

// lockedBuffer collects a child's output from two pipes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
