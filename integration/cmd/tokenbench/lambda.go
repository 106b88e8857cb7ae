package main

import (
	"bufio"
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

//go:embed testdata/hello-sm/main.go testdata/hello-lambda/main.go
var helloSources embed.FS

// Binary is one Lambda-style program, built once per build variant.
type Binary struct {
	Name    string
	Source  string
	Sizes   []int64 // per variant of lambdaVariants
	Modules []Module
	Err     string
}

// variant is one way to build the binaries.
type variant struct {
	Name string
	Env  []string
	Args []string
}

// lambdaVariants: the command of the issue, and the static build without
// aws-lambda-go's net/rpc entry point that examples/lambda/README.md
// recommends.
var lambdaVariants = []variant{
	{Name: "GOOS=linux GOARCH=amd64 go build -trimpath -ldflags='-s -w'", Env: []string{"GOOS=linux", "GOARCH=amd64"}},
	{Name: "CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -ldflags='-s -w' -tags lambda.norpc", Env: []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64"}, Args: []string{"-tags", "lambda.norpc"}},
}

// Module is a dependency recorded in a binary's build information.
type Module struct {
	Path, Version string
}

// LambdaResult compares the Lambda example with bare hello-worlds.
type LambdaResult struct {
	Variants []variant
	Binaries []*Binary
	Err      string
}

// Versions of the hello-worlds' dependencies when the example's binary
// does not say (the project's pinned versions).
var helloDeps = map[string]string{
	"github.com/aws/aws-sdk-go-v2":                        "v1.47.7",
	"github.com/aws/aws-sdk-go-v2/config":                 "v1.33.15",
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager": "v1.50.10",
	"github.com/aws/aws-lambda-go":                        "v1.55.1",
}

// buildLambda builds the Lambda example and the two hello-worlds in
// every variant and reads their sizes and modules.
func buildLambda(ctx context.Context, dir string) *LambdaResult {
	res := &LambdaResult{Variants: lambdaVariants}
	tmp, err := os.MkdirTemp("", "tokenbench-lambda-")
	if err != nil {
		res.Err = err.Error()
		return res
	}
	defer os.RemoveAll(tmp)

	example := &Binary{Name: "examples/lambda (cloudtokens)"}
	res.Binaries = append(res.Binaries, example)
	if dir == "" {
		dir, err = defaultLambdaDir(ctx)
	}
	switch {
	case err != nil:
		example.Err = err.Error()
	default:
		example.Source = dir
		if err := example.build(ctx, dir, filepath.Join(tmp, "example")); err != nil {
			example.Err = err.Error()
		}
	}
	// Pin the hello-worlds to the example's versions of the shared
	// dependencies, so that only cloudtokens differs.
	deps := map[string]string{}
	for k, v := range helloDeps {
		deps[k] = v
	}
	for _, m := range example.Modules {
		if _, ok := deps[m.Path]; ok && strings.HasPrefix(m.Version, "v") {
			deps[m.Path] = m.Version
		}
	}
	for _, h := range []struct{ name, dir string }{
		{"hello-world: secretsmanager GetSecretValue", "hello-sm"},
		{"hello-world: aws-lambda-go + secretsmanager GetSecretValue", "hello-lambda"},
	} {
		b := &Binary{Name: h.name, Source: "cmd/tokenbench/testdata/" + h.dir}
		res.Binaries = append(res.Binaries, b)
		if err := buildHello(ctx, filepath.Join(tmp, h.dir), h.dir, deps, b); err != nil {
			b.Err = err.Error()
		}
	}
	return res
}

func buildHello(ctx context.Context, dir, name string, deps map[string]string, b *Binary) error {
	src, err := helloSources.ReadFile("testdata/" + name + "/main.go")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var mod strings.Builder
	mod.WriteString("module tokenbench.example/" + name + "\n\ngo 1.26.0\n\nrequire (\n")
	for path, v := range deps {
		if path == "github.com/aws/aws-lambda-go" && !bytes.Contains(src, []byte(path)) {
			continue
		}
		fmt.Fprintf(&mod, "\t%s %s\n", path, v)
	}
	mod.WriteString(")\n")
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(mod.String()), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), src, 0o644); err != nil {
		return err
	}
	// Resolve go.sum and the indirect requirements (module proxy or cache).
	if err := run(ctx, dir, nil, "go", "mod", "tidy"); err != nil {
		return err
	}
	return b.build(ctx, dir, filepath.Join(dir, name))
}

// build builds the package in dir in every variant, records the sizes,
// and the modules of the first variant's binary.
func (b *Binary) build(ctx context.Context, dir, out string) error {
	for i, v := range lambdaVariants {
		file := fmt.Sprintf("%s-%d", out, i)
		args := append([]string{"build", "-trimpath", "-ldflags=-s -w"}, v.Args...)
		args = append(args, "-o", file, ".")
		if err := run(ctx, dir, v.Env, "go", args...); err != nil {
			return err
		}
		st, err := os.Stat(file)
		if err != nil {
			return err
		}
		b.Sizes = append(b.Sizes, st.Size())
		if i == 0 {
			if err := b.modules(ctx, file); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *Binary) modules(ctx context.Context, file string) error {
	out, err := exec.CommandContext(ctx, "go", "version", "-m", file).Output()
	if err != nil {
		return fmt.Errorf("go version -m: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 3 && f[0] == "dep":
			b.Modules = append(b.Modules, Module{Path: f[1], Version: f[2]})
		case len(f) >= 2 && f[0] == "=>" && len(b.Modules) > 0:
			b.Modules[len(b.Modules)-1].Version += " => " + strings.Join(f[1:], " ")
		}
	}
	return nil
}

func run(ctx context.Context, dir string, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s in %s: %w\n%s", name, strings.Join(args, " "), dir, err, strings.TrimSpace(out.String()))
	}
	return nil
}

// defaultLambdaDir finds examples/lambda beside the integration module
// that the current directory belongs to.
func defaultLambdaDir(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside a Go module; pass -lambda-dir")
	}
	root := filepath.Dir(filepath.Dir(gomod))
	for _, cand := range []string{
		filepath.Join(root, "examples", "lambda"),
		filepath.Join(root, "examples", "cmd", "lambda"),
	} {
		if st, err := os.Stat(cand); err == nil && st.IsDir() {
			return cand, nil
		}
	}
	return "", fmt.Errorf("no examples/lambda under %s; pass -lambda-dir", root)
}
