package main

// Tests that need a terminal: the confirmation prompts, the refusal to
// print secrets on a terminal, the progress bar. They run the binary on
// a real pseudo-terminal (/dev/ptmx).

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY returns the two ends of a new pseudo-terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminal: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("opening the pty: %v", err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// ttyRun runs the binary with the streams named in onTTY ("stdin",
// "stdout", "stderr") on a pseudo-terminal, types input on it, and
// returns what the terminal showed in terminal and the rest in r.
func ttyRun(t *testing.T, input string, onTTY []string, args ...string) (r result, terminal string) {
	t.Helper()
	master, slave := openPTY(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, &out, &errb
	for _, s := range onTTY {
		switch s {
		case "stdin":
			cmd.Stdin = slave
		case "stdout":
			cmd.Stdout = slave
		case "stderr":
			cmd.Stderr = slave
		}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close() // the child has its own
	var shown bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&shown, master); close(done) }() // ends with EIO when the child exits
	if input != "" {
		master.Write([]byte(input))
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the terminal did not close")
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String()}, shown.String()
}

func TestConfirmOnTerminal(t *testing.T) {
	st := vaultStore(t)
	seeded := seed(t, st, 3)
	ctx := context.Background()
	id := seeded[0].ID

	r, _ := ttyRun(t, "no\n", []string{"stdin"}, "delete", st.url, id)
	wantCode(t, r, exitError)
	if !strings.Contains(r.stderr, "Type \"yes\"") || !strings.Contains(r.stderr, id) || !strings.Contains(r.stderr, "aborted") {
		t.Fatalf("prompt:\n%s", r)
	}
	if _, err := st.FindTokenByID(ctx, id); err != nil {
		t.Fatalf("a declined delete deleted: %v", err)
	}
	r, _ = ttyRun(t, "yes\n", []string{"stdin"}, "delete", st.url, id)
	wantCode(t, r, exitOK)
	if _, err := st.FindTokenByID(ctx, id); !tokenstoreNotFound(err) {
		t.Fatalf("confirmed delete did not delete: %v", err)
	}
	r, _ = ttyRun(t, "y\n", []string{"stdin"}, "delete-all", st.url)
	wantCode(t, r, exitError) // only "yes" confirms
	if !strings.Contains(r.stderr, "ALL 2 tokens") || len(sorted(t, st)) != 2 {
		t.Fatalf("delete-all prompt:\n%s", r)
	}
	r, _ = ttyRun(t, "yes\n", []string{"stdin"}, "delete-all", st.url)
	wantCode(t, r, exitOK)
	if len(sorted(t, st)) != 0 {
		t.Fatal("confirmed delete-all left tokens")
	}
}

func TestExportRefusesTerminal(t *testing.T) {
	st := vaultStore(t)
	seeded := seed(t, st, 3)
	r, shown := ttyRun(t, "", []string{"stdout"}, "export", st.url)
	wantCode(t, r, exitUsage)
	noSecrets(t, shown+r.stderr, seeded...)
	if !strings.Contains(r.stderr, "terminal") {
		t.Fatalf("refusal:\n%s", r)
	}
	r, shown = ttyRun(t, "", []string{"stdout"}, "export", st.url, "--force")
	wantCode(t, r, exitOK)
	if !strings.Contains(shown, seeded[0].RefreshToken) {
		t.Fatalf("export --force on a terminal showed:\n%s", shown)
	}
}

// On a terminal the progress is a bar; elsewhere, plain lines.
func TestProgress(t *testing.T) {
	path, _ := writeZohoCSVRows(t, 100) // the first bad row is row 100: all good
	st := vaultStore(t)
	r, shown := ttyRun(t, "", []string{"stderr"}, "import", "--from", "zoho-csv:"+path, "--to", st.url, "--new-ids")
	wantCode(t, r, exitOK)
	if strings.Contains(shown, "copying: ") || !strings.Contains(shown, "/100)") || !strings.Contains(shown, "% |") {
		t.Fatalf("the terminal showed no progress bar:\n%q", shown)
	}
	r = cli(t, "import", "--from", "zoho-csv:"+path, "--to", st.url, "--new-ids")
	wantCode(t, r, exitOK)
	for _, line := range []string{"copying: 0/100\n", "copying: 10/100\n", "copying: 50/100\n", "copying: 100/100\n"} {
		if !strings.Contains(r.stderr, line) {
			t.Fatalf("plain progress lacks %q:\n%s", line, r.stderr)
		}
	}
}

// An import interrupted half way (SIGINT) exits 130; run again, it
// copies only what is missing and verifies everything.
func TestImportInterruptedResumes(t *testing.T) {
	path, _ := writeZohoCSV(t)
	for _, mode := range []string{"--new-ids", "--overwrite"} { // --overwrite: keep IDs (needs ImportToken)
		t.Run(strings.TrimPrefix(mode, "--"), func(t *testing.T) {
			st := vaultStore(t)
			cmd := exec.Command(binary, "import", "--from", "zoho-csv:"+path, "--to", st.url, "--json", mode)
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			cmd.Stdout = &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(stderr)
			var seen []string
			interrupted := false
			for sc.Scan() {
				seen = append(seen, sc.Text())
				// The first progress past 0 (a record, or a batch of them
				// for stores that import in batches): interrupt.
				var done int
				if _, err := fmt.Sscanf(sc.Text(), "copying: %d/495", &done); err == nil && done > 0 && !interrupted {
					cmd.Process.Signal(os.Interrupt)
					interrupted = true
				}
			}
			cmd.Wait()
			if code := cmd.ProcessState.ExitCode(); code != exitInterrupted {
				t.Fatalf("exit %d after SIGINT; stderr:\n%s\nstdout:\n%s", code, strings.Join(seen, "\n"), out.String())
			}
			first := decode[transferOutput](t, result{stdout: out.String()}).Result
			if first.Inserted == 0 || first.Inserted >= 495 {
				t.Fatalf("interrupted import inserted %d", first.Inserted)
			}
			r := cli(t, "import", "--from", "zoho-csv:"+path, "--to", st.url, "--json", mode)
			wantCode(t, r, exitPartial)
			second := decode[transferOutput](t, r).Result
			if second.Inserted+second.Unchanged+second.Updated != 495 || second.Inserted > 495-first.Inserted || second.Verified != 495 {
				t.Fatalf("resumed import: %+v (first inserted %d)", second, first.Inserted)
			}
			if n := len(sorted(t, st)); n != 495 {
				t.Fatalf("%d tokens after the resumed import", n)
			}
		})
	}
}
