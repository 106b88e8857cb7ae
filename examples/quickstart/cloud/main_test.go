package main

// The command against the servers of scripts/backends.sh (the endpoints
// scripts/test.sh exports: skipped without them on a laptop, failed in
// CI), its errors when the command line names another server or token
// than the running one, and the READMEs' command lines against the
// values that scripts/backends.sh prints.

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func ci() bool { return os.Getenv("CI") == "true" || os.Getenv("CI") == "1" }

// needEnv skips (fails in CI) without the backend variable v.
func needEnv(t *testing.T, v string) {
	t.Helper()
	if os.Getenv(v) != "" {
		return
	}
	if ci() {
		t.Fatalf("%s is not set (CI=true: start the servers with scripts/backends.sh)", v)
	}
	t.Skipf("%s is not set; ./scripts/test.sh starts the servers", v)
}

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// usageText is a line of the flag usage.
const usageText = "-backend string"

func TestLifecycleOnEachBackend(t *testing.T) {
	for _, tc := range []struct{ backend, env string }{
		{"gcp-emulator", ""},
		{"aws", "CLOUDTOKENS_AWS_ENDPOINT"},
		{"vault", "CLOUDTOKENS_VAULT_ADDR"},
	} {
		t.Run(tc.backend, func(t *testing.T) {
			if tc.env != "" {
				needEnv(t, tc.env)
			}
			code, out, errOut := runCmd(t, "-backend", tc.backend)
			if code != 0 || !strings.Contains(out, "Done: 1 login, 1 refresh, 1 logout.") {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
		})
	}
}

// A command line mistake is the only error that prints the flag usage.
func TestUsageOnlyForCommandLineMistakes(t *testing.T) {
	for _, args := range [][]string{{"-backend", "azure"}, {}, {"-nosuchflag"}} {
		code, _, errOut := runCmd(t, args...)
		if code != 2 || !strings.Contains(errOut, usageText) {
			t.Errorf("%q: exit %d, want 2 with the usage; stderr:\n%s", args, code, errOut)
		}
	}
	t.Setenv("GOOGLE_CLOUD_PROJECT", "")
	t.Setenv("CLOUDTOKENS_GCP_ENDPOINT", "")
	// -backend gcp without a project: usage, before any client is made.
	if code, _, errOut := runCmd(t, "-backend", "gcp", "-gcp-project", ""); code == 0 || (code == 2) != strings.Contains(errOut, usageText) {
		t.Errorf("-backend gcp without a project: exit %d, stderr:\n%s", code, errOut)
	}
}

// Issue 14: the README's Vault line with another token than the running
// server's printed "permission denied" followed by the flag usage. Now it
// prints the error and what to check, and no usage.
func TestWrongVaultTokenSaysWhatToCheck(t *testing.T) {
	needEnv(t, "CLOUDTOKENS_VAULT_ADDR")
	t.Setenv("CLOUDTOKENS_VAULT_TOKEN", "root") // the token the README used to name
	t.Setenv("VAULT_TOKEN", "root")
	code, _, errOut := runCmd(t, "-backend", "vault")
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, errOut)
	}
	for _, want := range []string{"permission denied", "hint: CLOUDTOKENS_VAULT_TOKEN", "scripts/backends.sh"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(errOut, usageText) {
		t.Errorf("stderr has the flag usage:\n%s", errOut)
	}
}

func TestNoServerSaysWhatToCheck(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	t.Setenv("CLOUDTOKENS_VAULT_ADDR", "http://"+addr)
	t.Setenv("CLOUDTOKENS_VAULT_TOKEN", "cloudtokens-dev")
	t.Setenv("VAULT_MAX_RETRIES", "0") // api.DefaultConfig: no retries with backoff
	code, _, errOut := runCmd(t, "-backend", "vault")
	if code != 1 || !strings.Contains(errOut, "hint: no server answers") || strings.Contains(errOut, usageText) {
		t.Errorf("exit %d, want 1 with the connection hint and no usage; stderr:\n%s", code, errOut)
	}
}

// repoRoot is the repository's root directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "scripts", "backends.sh")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no scripts/backends.sh above the test's directory")
		}
		dir = parent
	}
}

var (
	backendsLine = regexp.MustCompile(`CLOUDTOKENS_MOTO_PORT=(\d+) CLOUDTOKENS_VAULT_PORT=(\d+) CLOUDTOKENS_VAULT_ROOT_TOKEN=(\S+) \./scripts/backends\.sh`)
	// What a command line in a README sets, and which documented value
	// it must equal.
	settings = []struct {
		re   *regexp.Regexp
		want int // index into the documented values: moto port, vault port, token
	}{
		{regexp.MustCompile(`CLOUDTOKENS_MOTO_PORT=(\S+)`), 0},
		{regexp.MustCompile(`CLOUDTOKENS_AWS_ENDPOINT=https?://(?:127\.0\.0\.1|localhost):(\d+)`), 0},
		{regexp.MustCompile(`CLOUDTOKENS_VAULT_PORT=(\S+)`), 1},
		{regexp.MustCompile(`(?:^|[^A-Za-z0-9_])(?:CLOUDTOKENS_)?VAULT_ADDR=https?://(?:127\.0\.0\.1|localhost):(\d+)`), 1},
		{regexp.MustCompile(`CLOUDTOKENS_VAULT_ROOT_TOKEN=(\S+)`), 2},
		{regexp.MustCompile(`(?:^|[^A-Za-z0-9_])(?:CLOUDTOKENS_)?VAULT_TOKEN=(\S+)`), 2},
	}
	// Servers started by hand get other ports and tokens than the lines
	// around them name; the READMEs start them with scripts/backends.sh.
	byHand = regexp.MustCompile(`^\s*(moto_server\b|\S*vault server\b)`)
)

// TestReadmeCommandsMatchBackendsScript: every command line in the
// repository's Markdown files that names a local server's port or root
// token uses the values of README.md's scripts/backends.sh line, which
// the script prints back (scripts/backends.sh reads those settings).
func TestReadmeCommandsMatchBackendsScript(t *testing.T) {
	root := repoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := backendsLine.FindSubmatch(readme)
	if m == nil {
		t.Fatalf("README.md has no line %q", backendsLine)
	}
	want := []string{string(m[1]), string(m[2]), string(m[3])}
	script, err := os.ReadFile(filepath.Join(root, "scripts", "backends.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"CLOUDTOKENS_MOTO_PORT", "CLOUDTOKENS_VAULT_PORT", "CLOUDTOKENS_VAULT_ROOT_TOKEN"} {
		if !bytes.Contains(script, []byte("${"+v)) {
			t.Errorf("scripts/backends.sh does not read %s", v)
		}
	}

	checked := 0
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".md") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		inCode := false
		for n := 1; sc.Scan(); n++ {
			line := sc.Text()
			if strings.HasPrefix(strings.TrimSpace(line), "```") {
				inCode = !inCode
				continue
			}
			if !inCode {
				continue
			}
			if byHand.MatchString(line) {
				t.Errorf("%s:%d starts a server by hand, with its own port and token: use scripts/backends.sh\n\t%s", rel, n, line)
			}
			for _, s := range settings {
				for _, sm := range s.re.FindAllStringSubmatch(line, -1) {
					checked++
					if sm[1] != want[s.want] {
						t.Errorf("%s:%d: %s, but README.md's scripts/backends.sh line gives %s\n\t%s", rel, n, sm[0], want[s.want], line)
					}
				}
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 10 {
		t.Errorf("checked only %d settings in the Markdown files: did the READMEs' server lines move?", checked)
	}
}
