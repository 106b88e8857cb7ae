package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/module"
)

// fixture is a repository shaped like cloudtokens: a root module, a
// released adapter, an example and an integration module. Each file's
// content follows its name.
var fixture = map[string]string{
	"LICENSE": "Apache License 2.0 (fixture)\n",
	"go.mod":  "module github.com/cloudtokens/cloudtokens\n\ngo 1.26.0\n",
	"core.go": "package cloudtokens\n\n// Name is read by the adapter.\nconst Name = \"core\"\n",
	"awssm/go.mod": `module github.com/cloudtokens/cloudtokens/awssm

go 1.26.0

require github.com/cloudtokens/cloudtokens v0.1.0

replace github.com/cloudtokens/cloudtokens => ../
`,
	"awssm/awssm.go": "package awssm\n\nimport \"github.com/cloudtokens/cloudtokens\"\n\n// Name names the adapter.\nconst Name = cloudtokens.Name + \"/awssm\"\n",
	"examples/lambda/go.mod": `module github.com/cloudtokens/cloudtokens/examples/lambda

go 1.26.0

require (
	github.com/cloudtokens/cloudtokens v0.1.0
	github.com/cloudtokens/cloudtokens/awssm v0.1.0
)

replace (
	github.com/cloudtokens/cloudtokens => ../../
	github.com/cloudtokens/cloudtokens/awssm => ../../awssm
)
`,
	"examples/lambda/main.go": "package main\n\nimport \"github.com/cloudtokens/cloudtokens/awssm\"\n\nfunc main() { println(awssm.Name) }\n",
	"integration/go.mod":      "module github.com/cloudtokens/cloudtokens/integration\n\ngo 1.26.0\n",
	// Not a module: the go command ignores testdata.
	"scripts/consume/testdata/go.mod": "module example.com/consumer\n",
}

// newRepo commits files into a new git repository and returns its root.
func newRepo(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	gitIn(t, dir, "init", "-q")
	writeFiles(t, dir, files)
	gitIn(t, dir, "add", "-A")
	gitIn(t, dir, "commit", "-q", "-m", "fixture")
	return dir
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func gitIn(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=test", "-c", "user.email=test@example.com"}, args...)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// runRelease runs the command and returns its exit status and output.
func runRelease(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func with(files map[string]string, changes map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range files {
		out[k] = v
	}
	for k, v := range changes {
		if v == "" {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

func TestModulesAndTags(t *testing.T) {
	root := newRepo(t, fixture)
	code, out, errOut := runRelease(t, "-root", root, "modules")
	if code != 0 {
		t.Fatalf("modules: exit %d: %s", code, errOut)
	}
	want := ".\tgithub.com/cloudtokens/cloudtokens\treleased\n" +
		"awssm\tgithub.com/cloudtokens/cloudtokens/awssm\treleased\n" +
		"examples/lambda\tgithub.com/cloudtokens/cloudtokens/examples/lambda\tunreleased\n" +
		"integration\tgithub.com/cloudtokens/cloudtokens/integration\tunreleased\n"
	if out != want {
		t.Errorf("modules:\n%s\nwant:\n%s", out, want)
	}
	code, out, errOut = runRelease(t, "-root", root, "check", "v0.1.0")
	if code != 0 {
		t.Fatalf("check v0.1.0: exit %d: %s", code, errOut)
	}
	if want := "v0.1.0\nawssm/v0.1.0\n"; out != want {
		t.Errorf("check printed tags %q, want %q", out, want)
	}
	code, out, _ = runRelease(t, "-root", root, "version")
	if code != 0 || out != "v0.1.0\n" {
		t.Errorf("version: exit %d, %q; want v0.1.0", code, out)
	}
}

func TestCheckReportsEveryProblem(t *testing.T) {
	root := newRepo(t, with(fixture, map[string]string{
		"LICENSE": "",
		// the zero pseudo-version consumers cannot resolve, and no replace
		"awssm/go.mod": "module github.com/cloudtokens/cloudtokens/awssm\n\ngo 1.26.0\n\nrequire github.com/cloudtokens/cloudtokens v0.0.0-00010101000000-000000000000\n",
		// a replace to the wrong directory, and a require of an unreleased module
		"examples/lambda/go.mod": `module github.com/cloudtokens/cloudtokens/examples/lambda

go 1.26.0

require (
	github.com/cloudtokens/cloudtokens/awssm v0.1.0
	github.com/cloudtokens/cloudtokens/integration v0.1.0
)

replace (
	github.com/cloudtokens/cloudtokens/awssm => ../awssm
	github.com/cloudtokens/cloudtokens/integration => ../../integration
)
`,
		"integration/go.mod": "module github.com/cloudtokens/cloudtokens/tests\n\ngo 1.26.0\n",
	}))
	code, out, errOut := runRelease(t, "-root", root, "check", "v0.1.0")
	if code != 1 || out != "" {
		t.Fatalf("check: exit %d, stdout %q; want 1 and no tags", code, out)
	}
	for _, want := range []string{
		"no LICENSE at the repository root",
		"awssm/go.mod: requires github.com/cloudtokens/cloudtokens v0.0.0-00010101000000-000000000000, want v0.1.0",
		"awssm/go.mod: requires github.com/cloudtokens/cloudtokens without `replace github.com/cloudtokens/cloudtokens => ../`",
		"examples/lambda/go.mod: replace github.com/cloudtokens/cloudtokens/awssm => ../awssm names examples/awssm, not the module's directory awssm (want => ../../awssm)",
		"integration/go.mod: module github.com/cloudtokens/cloudtokens/tests, want github.com/cloudtokens/cloudtokens/integration",
		"examples/lambda/go.mod: requires github.com/cloudtokens/cloudtokens/integration, which is no module of this repository",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("check output lacks %q:\n%s", want, errOut)
		}
	}
}

func TestCheckVersions(t *testing.T) {
	root := newRepo(t, fixture)
	for _, v := range []string{"0.1.0", "v0.1", "v0.1.0+build", "v2.0.0", "v0.0.0-00010101000000-000000000000", "v0.1.1-0.20260101000000-abcdefabcdef"} {
		code, _, errOut := runRelease(t, "-root", root, "check", v)
		if code != 1 || !strings.Contains(errOut, "version") {
			t.Errorf("check %s: exit %d, %q; want a version problem", v, code, errOut)
		}
	}
	if code, _, errOut := runRelease(t, "-root", root, "check", "v0.1.0-rc.1"); code != 1 || !strings.Contains(errOut, "want v0.1.0-rc.1") {
		t.Errorf("check v0.1.0-rc.1 against v0.1.0 requires: exit %d, %q", code, errOut)
	}
	if code, _, _ := runRelease(t, "-root", root, "check"); code != 2 {
		t.Errorf("check without a version: exit %d, want 2", code)
	}
}

// The check reads the revision, so an uncommitted edit is not what gets
// tagged and does not count.
func TestCheckReadsTheRevision(t *testing.T) {
	root := newRepo(t, fixture)
	writeFiles(t, root, map[string]string{"awssm/go.mod": "module github.com/cloudtokens/cloudtokens/awssm\n\ngo 1.26.0\n\nrequire github.com/cloudtokens/cloudtokens v0.9.0\n"})
	if code, _, errOut := runRelease(t, "-root", root, "check", "v0.1.0"); code != 0 {
		t.Fatalf("check of HEAD with a dirty work tree: exit %d: %s", code, errOut)
	}
	if code, out, _ := runRelease(t, "-root", root, "-rev", "HEAD", "version"); code != 0 || out != "v0.1.0\n" {
		t.Errorf("version: %d %q", code, out)
	}
}

func TestVersionDisagreement(t *testing.T) {
	root := newRepo(t, with(fixture, map[string]string{
		"awssm/go.mod": strings.Replace(fixture["awssm/go.mod"], "v0.1.0", "v0.2.0", 1),
	}))
	code, _, errOut := runRelease(t, "-root", root, "version")
	if code != 1 || !strings.Contains(errOut, "v0.1.0 (examples/lambda/go.mod)") || !strings.Contains(errOut, "v0.2.0 (awssm/go.mod)") {
		t.Errorf("version: exit %d, %q; want both versions named with their files", code, errOut)
	}
}

func TestBump(t *testing.T) {
	root := newRepo(t, fixture)
	code, out, errOut := runRelease(t, "-root", root, "bump", "v0.2.0")
	if code != 0 {
		t.Fatalf("bump: exit %d: %s", code, errOut)
	}
	if n := strings.Count(out, "-> v0.2.0"); n != 3 {
		t.Errorf("bump changed %d requires, want 3:\n%s", n, out)
	}
	data, err := os.ReadFile(filepath.Join(root, "examples/lambda/go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "v0.1.0") || !strings.Contains(string(data), "github.com/cloudtokens/cloudtokens/awssm => ../../awssm") {
		t.Errorf("examples/lambda/go.mod after bump:\n%s", data)
	}
	gitIn(t, root, "commit", "-q", "-am", "bump")
	if code, out, errOut := runRelease(t, "-root", root, "check", "v0.2.0"); code != 0 || out != "v0.2.0\nawssm/v0.2.0\n" {
		t.Errorf("check v0.2.0 after bump: exit %d, %q, %s", code, out, errOut)
	}
}

// TestProxyServesTheModules builds the proxy and lets the go command
// consume it from a module outside the repository, with no network.
func TestProxyServesTheModules(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	repo := newRepo(t, fixture)
	// From a git worktree, whose git directory is not <root>/.git (as
	// this project's developers work): modzip.CreateFromVCS alone
	// refuses those.
	root := filepath.Join(t.TempDir(), "wt")
	gitIn(t, repo, "worktree", "add", "-q", root)
	proxy := t.TempDir()
	code, out, errOut := runRelease(t, "-root", root, "proxy", "-o", proxy)
	if code != 0 {
		t.Fatalf("proxy: exit %d: %s", code, errOut)
	}
	if n := strings.Count(out, "@v0.1.0\t"); n != 2 {
		t.Errorf("proxy wrote %d modules, want 2 (root, awssm):\n%s", n, out)
	}
	rootZip := filepath.Join(proxy, "github.com/cloudtokens/cloudtokens/@v/v0.1.0.zip")
	files, err := zipFiles(modVersion("github.com/cloudtokens/cloudtokens"), rootZip)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	// The nested modules' files stay out of the root module's zip.
	if want := []string{"LICENSE", "core.go", "go.mod"}; !slices.Equal(files, want) {
		t.Errorf("root zip holds %v, want %v", files, want)
	}
	files, err = zipFiles(modVersion("github.com/cloudtokens/cloudtokens/awssm"), filepath.Join(proxy, "github.com/cloudtokens/cloudtokens/awssm/@v/v0.1.0.zip"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	if want := []string{"LICENSE", "awssm.go", "go.mod"}; !slices.Equal(files, want) {
		t.Errorf("awssm zip holds %v, want %v (the root LICENSE included)", files, want)
	}

	consumer := t.TempDir()
	writeFiles(t, consumer, map[string]string{
		"go.mod":  "module example.com/consumer\n\ngo 1.26.0\n",
		"main.go": "package main\n\nimport \"github.com/cloudtokens/cloudtokens/awssm\"\n\nfunc main() { println(awssm.Name) }\n",
	})
	env := append(os.Environ(),
		"GOPROXY=file://"+filepath.ToSlash(proxy)+",off", // no network
		"GONOSUMDB=github.com/cloudtokens", "GOPRIVATE=", "GONOPROXY=",
		"GOFLAGS=-modcacherw", "GOMODCACHE="+t.TempDir(), "GOWORK=off", "GOTOOLCHAIN=local")
	for _, args := range [][]string{
		{"get", "github.com/cloudtokens/cloudtokens/awssm@v0.1.0"},
		{"build", "-o", "consumer", "."},
	} {
		cmd := exec.Command("go", args...)
		cmd.Dir, cmd.Env = consumer, env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %v: %v\n%s", args, err, out)
		}
	}
	gosum, err := os.ReadFile(filepath.Join(consumer, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"github.com/cloudtokens/cloudtokens v0.1.0 h1:", "github.com/cloudtokens/cloudtokens/awssm v0.1.0 h1:"} {
		if !strings.Contains(string(gosum), want) {
			t.Errorf("consumer go.sum lacks %q:\n%s", want, gosum)
		}
	}
	got, err := exec.Command(filepath.Join(consumer, "consumer")).CombinedOutput()
	if err != nil || string(got) != "core/awssm\n" {
		t.Errorf("consumer printed %q (%v), want core/awssm", got, err)
	}
}

func modVersion(path string) module.Version {
	return module.Version{Path: path, Version: "v0.1.0"}
}
