package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/mod/modfile"
)

// repoModule is the module path of the repository root; every other
// module's path is repoModule/<its directory>.
const repoModule = "github.com/cloudtokens/cloudtokens"

// unreleasedDirs are the top directories whose modules are never tagged:
// examples are copied, not imported, and integration holds tests and
// build-only tools. Every other module is released.
var unreleasedDirs = []string{"examples", "integration"}

// A goModule is one go.mod of the repository.
type goModule struct {
	Dir      string // slash path from the repository root, "." for the root
	Path     string // the module path its go.mod declares
	Released bool   // tagged and served by the proxy
	GoMod    string // slash path of its go.mod
	File     *modfile.File
}

// A tree is a view of the repository's files.
type tree interface {
	// goModFiles lists the slash paths of the go.mod files, sorted.
	goModFiles() ([]string, error)
	read(name string) ([]byte, error)
	exists(name string) bool
}

// gitTree reads the files of one git revision.
type gitTree struct {
	root string // the work tree
	rev  string // e.g. HEAD
}

func (t gitTree) git(args ...string) ([]byte, error) {
	return git(t.root, args...)
}

func git(dir string, args ...string) ([]byte, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func (t gitTree) goModFiles() ([]string, error) {
	out, err := t.git("ls-tree", "-r", "-z", "--name-only", t.rev)
	if err != nil {
		return nil, err
	}
	return goMods(strings.Split(string(out), "\x00")), nil
}

func (t gitTree) read(name string) ([]byte, error) {
	return t.git("cat-file", "blob", t.rev+":"+name)
}

func (t gitTree) exists(name string) bool {
	_, err := t.git("cat-file", "-e", t.rev+":"+name)
	return err == nil
}

// workTree reads and writes the checked-out files, tracked or not
// (ignored files aside).
type workTree struct {
	root string
}

func (t workTree) goModFiles() ([]string, error) {
	out, err := git(t.root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	if err != nil {
		return nil, err
	}
	var present []string
	for _, name := range goMods(strings.Split(string(out), "\x00")) {
		if t.exists(name) { // ls-files --cached lists deleted files too
			present = append(present, name)
		}
	}
	return present, nil
}

func (t workTree) read(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(t.root, filepath.FromSlash(name)))
}

func (t workTree) exists(name string) bool {
	_, err := os.Stat(filepath.Join(t.root, filepath.FromSlash(name)))
	return err == nil
}

func (t workTree) write(name string, data []byte) error {
	return os.WriteFile(filepath.Join(t.root, filepath.FromSlash(name)), data, 0o644)
}

// goMods keeps the go.mod files of names outside directories the go
// command ignores (testdata, vendor, names starting with . or _), sorted
// and without duplicates.
func goMods(names []string) []string {
	var mods []string
	for _, n := range names {
		if path.Base(n) != "go.mod" || ignoredDir(path.Dir(n)) {
			continue
		}
		mods = append(mods, n)
	}
	slices.Sort(mods)
	return slices.Compact(mods)
}

func ignoredDir(dir string) bool {
	if dir == "." {
		return false
	}
	for _, elem := range strings.Split(dir, "/") {
		if elem == "testdata" || elem == "vendor" || strings.HasPrefix(elem, ".") || strings.HasPrefix(elem, "_") {
			return true
		}
	}
	return false
}

// loadModules parses every go.mod of t.
func loadModules(t tree) ([]*goModule, error) {
	files, err := t.goModFiles()
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no go.mod file found")
	}
	var mods []*goModule
	for _, name := range files {
		data, err := t.read(name)
		if err != nil {
			return nil, err
		}
		f, err := modfile.Parse(name, data, nil)
		if err != nil {
			return nil, err
		}
		if f.Module == nil {
			return nil, fmt.Errorf("%s: no module line", name)
		}
		dir := path.Dir(name)
		mods = append(mods, &goModule{
			Dir:      dir,
			Path:     f.Module.Mod.Path,
			Released: released(dir),
			GoMod:    name,
			File:     f,
		})
	}
	// By directory: the root (".") first.
	slices.SortFunc(mods, func(a, b *goModule) int { return strings.Compare(a.Dir, b.Dir) })
	return mods, nil
}

func released(dir string) bool {
	top, _, _ := strings.Cut(dir, "/")
	return !slices.Contains(unreleasedDirs, top)
}

// wantPath is the module path of the module in dir.
func wantPath(dir string) string {
	if dir == "." {
		return repoModule
	}
	return repoModule + "/" + dir
}

// isSibling reports whether a module path belongs to this repository.
func isSibling(p string) bool {
	return p == repoModule || strings.HasPrefix(p, repoModule+"/")
}
