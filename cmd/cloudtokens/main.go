// Command cloudtokens operates token stores: it lists, shows, checks,
// repairs, deletes, exports, imports, migrates and revokes the OAuth
// tokens that the cloudtokens library keeps in AWS Secrets Manager, GCP
// Secret Manager and Vault, and imports the token stores of the Zoho
// SDKs.
//
// Usage:
//
//	cloudtokens list    URL [--json]
//	cloudtokens show    URL ID | --user NAME [--client ID] [--json]
//	cloudtokens check   URL [--json]
//	cloudtokens repair  URL [--dry-run] [--json]
//	cloudtokens delete  URL ID [--yes]
//	cloudtokens delete-all URL [--yes]
//	cloudtokens export  URL [-o FILE] [--force]
//	cloudtokens import  --from SOURCE --to URL [--new-ids] [--overwrite] [--dry-run] [--json]
//	cloudtokens migrate --from URL --to URL [--overwrite] [--dry-run] [--json]
//	cloudtokens revoke  URL ID --revoke-url URL [--client-id ID] [--client-secret S] [--yes]
//
// Store URLs are aws://PREFIX, gcp://PROJECT/PREFIX and
// vault://MOUNT/PREFIX; import sources are jsonl:PATH, zoho-csv:PATH and
// zoho-sql:DSN. README.md documents every command, the exit codes and
// the JSON output, and has a runbook.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/cloudtokens/cloudtokens/cmd/cloudtokens/internal/storeurl"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// Exit codes; README.md documents them.
const (
	exitOK          = 0   // success
	exitError       = 1   // the operation failed (network, permission, a store error), or was declined
	exitUsage       = 2   // bad arguments, flags or URL; a refusal (no --yes, no --force)
	exitProblems    = 3   // check found problems; repair --dry-run would change something; repair left problems
	exitNotFound    = 4   // no token with that ID (or user): see notFound
	exitPartial     = 5   // import/migrate: some records were not copied (see the problems listed)
	exitVerify      = 6   // import/migrate: the final verification found a record different from the one written
	exitInterrupted = 130 // interrupted (SIGINT, SIGTERM)
)

// codeError carries an exit code with an error (err may be nil: the
// command reported already).
type codeError struct {
	code int
	err  error
}

func (e *codeError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *codeError) Unwrap() error { return e.err }

func withCode(code int, err error) error { return &codeError{code: code, err: err} }

// notFound gives a lookup's error exit code 4 when it is
// tokenstore.ErrNotFound (other store errors that wrap ErrNotFound, such
// as a lost index, keep exit code 1).
func notFound(err error) error {
	if errors.Is(err, tokenstore.ErrNotFound) {
		return withCode(exitNotFound, err)
	}
	return err
}

func usageError(format string, args ...any) error {
	return withCode(exitUsage, fmt.Errorf(format, args...))
}

// app is one run of the command: its standard streams and whether they
// are terminals.
type app struct {
	stdin                          io.Reader
	stdout, stderr                 io.Writer
	stdinTTY, stdoutTTY, stderrTTY bool
	getenv                         func(string) string
	cancel                         context.CancelFunc // of the --timeout context
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	a := &app{
		stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr,
		stdinTTY:  term.IsTerminal(int(os.Stdin.Fd())),
		stdoutTTY: term.IsTerminal(int(os.Stdout.Fd())),
		stderrTTY: term.IsTerminal(int(os.Stderr.Fd())),
		getenv:    os.Getenv,
	}
	code := a.run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// run executes the command line args and returns the exit code.
func (a *app) run(ctx context.Context, args []string) int {
	// Store warnings (stale index entries, corrupt documents) go to
	// stderr; they never hold token values.
	slog.SetDefault(slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	err := root.ExecuteContext(ctx)
	if a.cancel != nil {
		a.cancel()
	}
	if err == nil {
		return exitOK
	}
	code := exitCode(ctx, err)
	var ce *codeError
	if !errors.As(err, &ce) || ce.err != nil {
		fmt.Fprintf(a.stderr, "cloudtokens: %v\n", err)
	}
	if code == exitUsage {
		fmt.Fprintln(a.stderr, "Run 'cloudtokens --help' for usage.")
	}
	return code
}

func exitCode(ctx context.Context, err error) int {
	var ce *codeError
	switch {
	case errors.As(err, &ce):
		return ce.code
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.Is(err, context.DeadlineExceeded):
		return exitError
	case errors.Is(err, storeurl.ErrInvalidURL), errors.Is(err, tokenstore.ErrInvalidToken):
		// A bad URL; a malformed ID, or a user name that needs --client.
		return exitUsage
	}
	return exitError
}
