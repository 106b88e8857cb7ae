// Command release holds the release mechanics of the cloudtokens
// repository, for scripts/release.sh and scripts/consume-check.sh (see
// RELEASING.md):
//
//	release [-root DIR] [-rev REV] modules         every module: dir, path, released or not
//	release [-root DIR] [-rev REV] version         the version the go.mod files require siblings at
//	release [-root DIR] [-rev REV] check VERSION   the rules below; prints the tags of VERSION
//	release [-root DIR] [-rev REV] proxy -o DIR    a file-based GOPROXY of the released modules
//	release [-root DIR] bump VERSION               rewrite the working tree's sibling requires
//
// The modules are the directories with a go.mod in the git tree of REV
// (default HEAD; testdata and vendor directories aside). Every module is
// released, that is tagged (VERSION for the root module, DIR/VERSION for
// the others) and served by the proxy, except those under examples/ and
// integration/: examples are copied, not imported, and integration holds
// tests and tools.
//
// check enforces, reading every go.mod of REV:
//   - a module's path is github.com/cloudtokens/cloudtokens followed by
//     its directory;
//   - a require of a sibling module names VERSION, and the sibling is
//     released;
//   - each such require has a replace with the sibling's relative
//     directory, so that the repository builds without a proxy;
//   - VERSION is canonical semantic versioning with major version v0 or
//     v1 (v2 would need a /v2 suffix on every module path);
//   - the repository root has a LICENSE, which every module zip carries.
//
// Exit status 1 on a broken rule (each one printed), 2 on bad usage.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage:
  release [-root DIR] [-rev REV] modules
  release [-root DIR] [-rev REV] version
  release [-root DIR] [-rev REV] check VERSION
  release [-root DIR] [-rev REV] proxy -o DIR
  release [-root DIR] bump VERSION
`

// errUsage marks a command line that cannot run.
var errUsage = errors.New("bad usage")

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("release", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	root := fs.String("root", ".", "the repository's work tree")
	rev := fs.String("rev", "HEAD", "the git revision whose files are read (not for bump, which edits the work tree)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	err := dispatch(*root, *rev, fs.Args(), stdout)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "release: %v\n", err)
		fs.Usage()
		return 2
	default:
		fmt.Fprintf(stderr, "release: %v\n", err)
		return 1
	}
}

func dispatch(root, rev string, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: no command", errUsage)
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "modules", "version", "check":
		if want := map[string]int{"check": 1}[cmd]; len(args) != want {
			return fmt.Errorf("%w: %s takes %d argument(s)", errUsage, cmd, want)
		}
		tree := gitTree{root: root, rev: rev}
		mods, err := loadModules(tree)
		if err != nil {
			return err
		}
		return readOnly(cmd, args, tree, mods, stdout)
	case "proxy":
		pfs := flag.NewFlagSet("proxy", flag.ContinueOnError)
		pfs.SetOutput(io.Discard)
		out := pfs.String("o", "", "the proxy directory to write (created)")
		if err := pfs.Parse(args); err != nil || *out == "" || pfs.NArg() != 0 {
			return fmt.Errorf("%w: proxy needs -o DIR and nothing else", errUsage)
		}
		written, err := writeProxy(gitTree{root: root, rev: rev}, *out)
		if err != nil {
			return err
		}
		for _, w := range written {
			fmt.Fprintln(stdout, w)
		}
		return nil
	case "bump":
		if len(args) != 1 {
			return fmt.Errorf("%w: bump takes one VERSION", errUsage)
		}
		changed, err := bump(workTree{root: root}, args[0])
		if err != nil {
			return err
		}
		for _, c := range changed {
			fmt.Fprintln(stdout, c)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown command %q", errUsage, cmd)
}

// readOnly runs the commands that only read the revision's go.mod files.
func readOnly(cmd string, args []string, tree gitTree, mods []*goModule, stdout io.Writer) error {
	switch cmd {
	case "modules":
		for _, m := range mods {
			state := "unreleased"
			if m.Released {
				state = "released"
			}
			fmt.Fprintf(stdout, "%s\t%s\t%s\n", m.Dir, m.Path, state)
		}
	case "version":
		v, err := requiredVersion(mods)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, v)
	case "check":
		if err := check(tree, mods, args[0]); err != nil {
			return err
		}
		for _, t := range tags(mods, args[0]) {
			fmt.Fprintln(stdout, t)
		}
	}
	return nil
}
