package main

import (
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// check applies the release rules (see the command documentation) to
// mods, read from t, for version. It reports every broken rule at once.
func check(t tree, mods []*goModule, version string) error {
	var probs []string
	add := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	if err := checkVersion(version); err != nil {
		add("%v", err)
	}
	if !t.exists("LICENSE") {
		add("no LICENSE at the repository root: every module zip carries it, and without one nobody may use the code")
	}
	byPath := map[string]*goModule{}
	for _, m := range mods {
		if want := wantPath(m.Dir); m.Path != want {
			add("%s: module %s, want %s (a module's tags DIR/VERSION resolve only if its path is the repository's plus DIR)", m.GoMod, m.Path, want)
		}
		byPath[m.Path] = m
	}
	for _, m := range mods {
		for _, r := range m.File.Require {
			if !isSibling(r.Mod.Path) {
				continue
			}
			s := byPath[r.Mod.Path]
			switch {
			case s == nil:
				add("%s: requires %s, which is no module of this repository", m.GoMod, r.Mod.Path)
				continue
			case !s.Released:
				add("%s: requires %s, which is never released (it is under %s/)", m.GoMod, r.Mod.Path, strings.Join(unreleasedDirs, "/ or "))
			}
			if r.Mod.Version != version {
				add("%s: requires %s %s, want %s (scripts/release.sh bump %s)", m.GoMod, r.Mod.Path, r.Mod.Version, version, version)
			}
			if msg := checkReplace(m, r, s); msg != "" {
				add("%s: %s", m.GoMod, msg)
			}
		}
	}
	if len(probs) > 0 {
		return fmt.Errorf("%d problem(s):\n  %s", len(probs), strings.Join(probs, "\n  "))
	}
	return nil
}

// checkVersion accepts canonical semantic versions of major version v0
// or v1.
func checkVersion(v string) error {
	if !semver.IsValid(v) || semver.Canonical(v) != v || semver.Build(v) != "" {
		return fmt.Errorf("version %q is not canonical semantic versioning (vMAJOR.MINOR.PATCH or vMAJOR.MINOR.PATCH-PRERELEASE)", v)
	}
	if module.IsPseudoVersion(v) {
		return fmt.Errorf("version %s is a pseudo-version, which names a commit and is never tagged: require siblings at the next release, e.g. v0.1.0", v)
	}
	if major := semver.Major(v); major != "v0" && major != "v1" {
		return fmt.Errorf("version %s: major version %s needs the suffix /%s on every module path first", v, major, major)
	}
	return nil
}

// checkReplace returns what is wrong with m's replace of its sibling
// require r (module s), or "".
func checkReplace(m *goModule, r *modfile.Require, s *goModule) string {
	for _, rep := range m.File.Replace {
		if rep.Old.Path != r.Mod.Path || (rep.Old.Version != "" && rep.Old.Version != r.Mod.Version) {
			continue
		}
		if rep.New.Version != "" {
			return fmt.Sprintf("replace %s => %s %s: want the directory %s", rep.Old.Path, rep.New.Path, rep.New.Version, relDir(m.Dir, s.Dir))
		}
		if got := path.Join(m.Dir, filepath.ToSlash(rep.New.Path)); got != s.Dir {
			return fmt.Sprintf("replace %s => %s names %s, not the module's directory %s (want => %s)", rep.Old.Path, rep.New.Path, got, s.Dir, relDir(m.Dir, s.Dir))
		}
		return ""
	}
	return fmt.Sprintf("requires %s without `replace %s => %s`: in-repo builds would fetch the release instead of the code beside it", r.Mod.Path, r.Mod.Path, relDir(m.Dir, s.Dir))
}

// relDir is the relative directory from module dir from to module dir
// to, as a replace directive spells it.
func relDir(from, to string) string {
	rel, err := filepath.Rel(filepath.FromSlash(from), filepath.FromSlash(to))
	if err != nil {
		return to
	}
	rel = filepath.ToSlash(rel)
	switch {
	case strings.HasSuffix(rel, ".."):
		rel += "/" // the repository's style: ../, ../../
	case !strings.HasPrefix(rel, "../"):
		rel = "./" + rel
	}
	return rel
}

// requiredVersion is the one version at which the go.mod files require
// sibling modules.
func requiredVersion(mods []*goModule) (string, error) {
	where := map[string][]string{}
	for _, m := range mods {
		for _, r := range m.File.Require {
			if isSibling(r.Mod.Path) {
				where[r.Mod.Version] = append(where[r.Mod.Version], m.GoMod)
			}
		}
	}
	switch len(where) {
	case 0:
		return "", fmt.Errorf("no go.mod requires a sibling module, so none names a version")
	case 1:
		for v := range where {
			return v, nil
		}
	}
	var parts []string
	for v, files := range where {
		slices.Sort(files)
		parts = append(parts, fmt.Sprintf("%s (%s)", v, strings.Join(slices.Compact(files), ", ")))
	}
	slices.Sort(parts)
	return "", fmt.Errorf("the go.mod files require siblings at %d versions: %s", len(where), strings.Join(parts, "; "))
}

// tags are the git tags of version: VERSION for the root module,
// DIR/VERSION for the other released modules, root first.
func tags(mods []*goModule, version string) []string {
	var out []string
	for _, m := range mods {
		switch {
		case !m.Released:
		case m.Dir == ".":
			out = append([]string{version}, out...)
		default:
			out = append(out, m.Dir+"/"+version)
		}
	}
	return out
}

// bump sets every sibling require in the work tree's go.mod files to
// version and returns one line per changed require.
func bump(t workTree, version string) ([]string, error) {
	if err := checkVersion(version); err != nil {
		return nil, err
	}
	mods, err := loadModules(t)
	if err != nil {
		return nil, err
	}
	var changed []string
	for _, m := range mods {
		n := len(changed)
		for _, r := range slices.Clone(m.File.Require) {
			if !isSibling(r.Mod.Path) || r.Mod.Version == version {
				continue
			}
			if err := m.File.AddRequire(r.Mod.Path, version); err != nil {
				return nil, fmt.Errorf("%s: %w", m.GoMod, err)
			}
			changed = append(changed, fmt.Sprintf("%s: %s %s -> %s", m.GoMod, r.Mod.Path, r.Mod.Version, version))
		}
		if len(changed) == n {
			continue
		}
		data, err := m.File.Format()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.GoMod, err)
		}
		if err := t.write(m.GoMod, data); err != nil {
			return nil, err
		}
	}
	return changed, nil
}
