package main

import (
	"archive/zip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"
)

// writeProxy writes a file-based GOPROXY (the layout of `go help
// goproxy`) into out: every released module of t at the version its
// siblings require, its zip made from t's revision by
// golang.org/x/mod/zip exactly as the go command makes it from a tag.
// It checks the release rules first. It returns one line per module.
func writeProxy(t gitTree, out string) ([]string, error) {
	mods, err := loadModules(t)
	if err != nil {
		return nil, err
	}
	version, err := requiredVersion(mods)
	if err != nil {
		return nil, err
	}
	if err := check(t, mods, version); err != nil {
		return nil, err
	}
	commit, err := t.git("rev-parse", "--verify", t.rev+"^{commit}")
	if err != nil {
		return nil, err
	}
	vcs, cleanup, err := borrowObjects(t.root)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	zipTree := gitTree{root: vcs, rev: strings.TrimSpace(string(commit))}
	stamp, err := t.git("log", "-1", "--format=%cI", t.rev)
	if err != nil {
		return nil, err
	}
	when, err := time.Parse(time.RFC3339, strings.TrimSpace(string(stamp)))
	if err != nil {
		return nil, fmt.Errorf("commit time of %s: %w", t.rev, err)
	}
	info, err := json.Marshal(struct {
		Version string
		Time    time.Time
	}{version, when.UTC()})
	if err != nil {
		return nil, err
	}
	var written []string
	for _, m := range mods {
		if !m.Released {
			continue
		}
		line, err := writeModule(zipTree, out, m, version, info)
		if err != nil {
			return nil, fmt.Errorf("%s@%s: %w", m.Path, version, err)
		}
		written = append(written, line)
	}
	return written, nil
}

// borrowObjects returns a new git repository that reads the objects of
// the repository at root (git alternates), and a function that removes
// it. modzip.CreateFromVCS accepts only a directory whose git directory
// is <dir>/.git, which a git worktree's is not; this one's always is.
func borrowObjects(root string) (string, func(), error) {
	objects, err := git(root, "rev-parse", "--path-format=absolute", "--git-common-dir")
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "release-vcs-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	if _, err := git(dir, "init", "-q"); err != nil {
		cleanup()
		return "", nil, err
	}
	alt := filepath.Join(strings.TrimSpace(string(objects)), "objects") + "\n"
	if err := os.WriteFile(filepath.Join(dir, ".git", "objects", "info", "alternates"), []byte(alt), 0o644); err != nil {
		cleanup()
		return "", nil, err
	}
	return dir, cleanup, nil
}

// writeModule writes module m at version into the proxy directory out,
// its zip and go.mod from t (the revision's commit, in a repository
// modzip.CreateFromVCS accepts).
func writeModule(t gitTree, out string, m *goModule, version string, info []byte) (string, error) {
	esc, err := module.EscapePath(m.Path)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(out, filepath.FromSlash(esc), "@v")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	mv := module.Version{Path: m.Path, Version: version}
	zipPath := filepath.Join(dir, version+".zip")
	f, err := os.Create(zipPath)
	if err != nil {
		return "", err
	}
	subdir := m.Dir
	if subdir == "." {
		subdir = ""
	}
	err = modzip.CreateFromVCS(f, mv, t.root, t.rev, subdir)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	files, err := zipFiles(mv, zipPath)
	if err != nil {
		return "", err
	}
	if !slices.Contains(files, "LICENSE") {
		return "", fmt.Errorf("%s has no LICENSE", zipPath)
	}
	gomod, err := t.read(m.GoMod)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, version+".mod"), gomod, 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, version+".info"), info, 0o644); err != nil {
		return "", err
	}
	if err := addToList(filepath.Join(dir, "list"), version); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s@%s\t%d files\t%s", m.Path, version, len(files), zipPath), nil
}

// zipFiles checks a module zip as the go command does when it extracts
// one and returns its file names, without the module@version/ prefix.
func zipFiles(mv module.Version, zipPath string) ([]string, error) {
	cf, err := modzip.CheckZip(mv, zipPath)
	if err != nil {
		return nil, err
	}
	if err := cf.Err(); err != nil {
		return nil, err
	}
	r, err := zip.OpenReader(zipPath)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	prefix := mv.Path + "@" + mv.Version + "/"
	var names []string
	for _, f := range r.File {
		names = append(names, strings.TrimPrefix(f.Name, prefix))
	}
	return names, nil
}

// addToList adds version to a proxy's list file.
func addToList(name, version string) error {
	data, err := os.ReadFile(name)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	versions := strings.Fields(string(data))
	if slices.Contains(versions, version) {
		return nil
	}
	versions = append(versions, version)
	return os.WriteFile(name, []byte(strings.Join(versions, "\n")+"\n"), 0o644)
}
