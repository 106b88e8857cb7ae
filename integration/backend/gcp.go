package backend

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// GCPEmulatorPackage is the command GCPEmulatorProcess builds and runs.
const GCPEmulatorPackage = "github.com/cloudtokens/cloudtokens/integration/cmd/gcpemulator"

var gcpEmulator struct {
	once  sync.Once
	addr  string
	stdin io.WriteCloser // held open: the emulator stops when it closes
	err   error
}

// GCPEmulatorProcess returns the address of a gcpsmtest emulator running
// in a process of its own (cmd/gcpemulator, built with the go command on
// first use), shared by every test of the test binary and by their child
// processes, which keep their data there across a SIGKILL of any of them.
// It stops when the test binary's Main ends, or when the test binary
// exits (it watches its standard input). Tests that need no separate
// process use gcpsmtest.Start.
func GCPEmulatorProcess(t testing.TB) string {
	t.Helper()
	gcpEmulator.once.Do(func() {
		dir, err := os.MkdirTemp("", "gcpemulator-")
		if err != nil {
			gcpEmulator.err = err
			return
		}
		bin := filepath.Join(dir, "gcpemulator")
		build := exec.Command("go", "build", "-o", bin, GCPEmulatorPackage)
		if out, err := build.CombinedOutput(); err != nil {
			gcpEmulator.err = fmt.Errorf("go build %s: %v\n%s", GCPEmulatorPackage, err, out)
			return
		}
		cmd := exec.Command(bin, "-stdin")
		stdin, err := cmd.StdinPipe()
		if err != nil {
			gcpEmulator.err = err
			return
		}
		gcpEmulator.stdin = stdin // open until this process exits
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			gcpEmulator.err = err
			return
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			gcpEmulator.err = err
			return
		}
		line := make(chan string, 1)
		go func() {
			s := bufio.NewScanner(stdout)
			if s.Scan() {
				line <- strings.TrimSpace(s.Text())
			}
			close(line)
		}()
		select {
		case addr, ok := <-line:
			if !ok || addr == "" {
				gcpEmulator.err = fmt.Errorf("gcpemulator exited without an address: %v", cmd.Wait())
				return
			}
			gcpEmulator.addr = addr
			keepProcess(cmd, dir)
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			gcpEmulator.err = fmt.Errorf("gcpemulator printed no address within a minute")
		}
	})
	if gcpEmulator.err != nil {
		t.Fatalf("backend GCP emulator process: %v", gcpEmulator.err)
	}
	return gcpEmulator.addr
}

// processes holds the servers this package started, stopped by Main.
var processes struct {
	mu   sync.Mutex
	cmds []*exec.Cmd
	dirs []string
}

func keepProcess(cmd *exec.Cmd, dir string) {
	processes.mu.Lock()
	defer processes.mu.Unlock()
	processes.cmds = append(processes.cmds, cmd)
	processes.dirs = append(processes.dirs, dir)
}

func stopProcesses(ctx context.Context) {
	processes.mu.Lock()
	defer processes.mu.Unlock()
	for _, cmd := range processes.cmds {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			_ = cmd.Process.Kill()
		}
	}
	for _, d := range processes.dirs {
		_ = os.RemoveAll(d)
	}
	processes.cmds, processes.dirs = nil, nil
}
