package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cloudtokens/cloudtokens/cmd/cloudtokens/internal/jsonl"
	"github.com/cloudtokens/cloudtokens/cmd/cloudtokens/internal/storeurl"
	"github.com/cloudtokens/cloudtokens/cmd/cloudtokens/internal/transfer"
	"github.com/cloudtokens/cloudtokens/cmd/cloudtokens/internal/zoho"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

func (a *app) exportCmd() *cobra.Command {
	var (
		output string
		force  bool
	)
	cmd := &cobra.Command{
		Use:   "export URL",
		Short: "Write every token of a store, secrets included, as JSON Lines",
		Long: `Export writes every token of the store as JSON Lines: one token document
per line (the format of the tokenstore package), sorted by ID, secrets
included. "import --from jsonl:FILE" reads it back, keeping the IDs.

With -o FILE the export is written to a new file of mode 0600 (created
beside FILE and renamed into place, so a failed export never leaves a
partial file); an existing FILE is replaced only with --force. Without
-o it goes to standard output, which is refused when that is a terminal
unless --force. Treat the file like the secrets it holds.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		PreRunE: func(*cobra.Command, []string) error {
			if output == "" && a.stdoutTTY && !force {
				return usageError("refusing to print secrets to a terminal: use -o FILE, a pipe, or --force")
			}
			if output != "" && !force {
				if _, err := os.Lstat(output); err == nil {
					return usageError("%s exists; use --force to replace it", output)
				}
			}
			return nil
		},
		RunE: a.withStore(func(ctx context.Context, st *storeurl.Store, _ []string) error {
			return a.export(ctx, st, output)
		}),
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to FILE (mode 0600) instead of standard output")
	cmd.Flags().BoolVar(&force, "force", false, "write to a terminal, or replace an existing FILE")
	return cmd
}

// export writes the tokens of st to the file output, or to stdout.
func (a *app) export(ctx context.Context, st *storeurl.Store, output string) error {
	tokens, err := tokensOf(ctx, st)
	if err != nil {
		return err
	}
	h := sha256.New()
	write := func(w io.Writer) error { return jsonl.Write(io.MultiWriter(w, h), tokens) }
	dest := "standard output"
	if output == "" {
		err = write(a.stdout)
	} else {
		dest = output
		err = writePrivateFile(output, write)
	}
	if err != nil {
		return fmt.Errorf("writing the export to %s: %w", dest, err)
	}
	fmt.Fprintf(a.stderr, "exported %d tokens from %s to %s (sha256 %s)\n", len(tokens), st.URL, dest, hex.EncodeToString(h.Sum(nil)))
	return nil
}

// writePrivateFile writes a file of mode 0600 through a temporary file in
// the same directory, renamed into place once complete.
func writePrivateFile(path string, write func(io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*") // mode 0600
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return err
	}
	if err = write(f); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

const sourceForms = `import sources:
  jsonl:PATH       an export written by "cloudtokens export" (PATH "-": standard input)
  zoho-csv:PATH    a Zoho SDK FileStore CSV file (PATH "-": standard input)
  zoho-sql:DSN     a Zoho SDK DBStore table, DSN one of:
` + zoho.DSNForms

// readSource reads the records of an import source; it returns them and
// a description of the source without passwords.
func (a *app) readSource(ctx context.Context, spec string) ([]transfer.Item, string, error) {
	kind, arg, ok := strings.Cut(spec, ":")
	if !ok || arg == "" {
		return nil, "", usageError("bad --from %q\n%s", spec, sourceForms)
	}
	readFile := func(read func(io.Reader) ([]transfer.Item, error)) ([]transfer.Item, string, error) {
		if arg == "-" {
			items, err := read(a.stdin)
			return items, kind + ":-", err
		}
		f, err := os.Open(arg)
		if err != nil {
			return nil, "", err
		}
		defer f.Close()
		items, err := read(f)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", arg, err)
		}
		return items, spec, nil
	}
	switch kind {
	case "jsonl":
		return readFile(jsonl.Read)
	case "zoho-csv":
		return readFile(zoho.ReadCSV)
	case "zoho-sql":
		db, err := zoho.OpenDB(arg)
		if err != nil {
			return nil, "", withCode(exitUsage, err)
		}
		defer db.Close()
		items, err := db.Read(ctx)
		return items, "zoho-sql:" + db.String(), err
	}
	return nil, "", usageError("unknown source kind %q\n%s", kind, sourceForms)
}

// transferOutput is the JSON output of import and migrate.
type transferOutput struct {
	Source string `json:"source"`
	Target string `json:"target"`
	// Mode is "keep-ids" or "new-ids".
	Mode   string           `json:"mode"`
	Result *transfer.Result `json:"result"`
}

type transferFlags struct {
	from, to                          string
	newIDs, overwrite, dryRun, asJSON bool
	workers                           int
}

// add defines the flags of import (newIDs) or migrate on cmd, and checks
// that --from and --to are given.
func (f *transferFlags) add(cmd *cobra.Command, fromHelp string, newIDs bool) {
	fl := cmd.Flags()
	fl.StringVar(&f.from, "from", "", fromHelp)
	fl.StringVar(&f.to, "to", "", "the target store URL")
	cmd.PreRunE = func(cmd *cobra.Command, _ []string) error {
		if f.from == "" || f.to == "" {
			return usageError("%s needs --from and --to", cmd.Name())
		}
		return nil
	}
	if newIDs {
		fl.BoolVar(&f.newIDs, "new-ids", false, "let the store assign new IDs (SaveToken) instead of keeping the source's")
	}
	fl.BoolVar(&f.overwrite, "overwrite", false, "replace records of the target that differ without being older")
	fl.BoolVar(&f.dryRun, "dry-run", false, "validate and count, write nothing")
	fl.BoolVar(&f.asJSON, "json", false, "print the summary as JSON (schema in README.md)")
	fl.IntVar(&f.workers, "workers", 4, "writes in flight at once when keeping IDs (with --new-ids: 1)")
}

// copyInto copies items into the store st and reports the result.
func (a *app) copyInto(ctx context.Context, items []transfer.Item, source string, st *storeurl.Store, f transferFlags) error {
	if f.workers < 1 || f.workers > 64 {
		return usageError("--workers %d: want 1 to 64", f.workers)
	}
	opts := transfer.Options{Overwrite: f.overwrite, DryRun: f.dryRun, Progress: a.progress(), Workers: f.workers}
	mode := "keep-ids"
	if f.newIDs {
		opts.Mode, mode = transfer.NewIDs, "new-ids"
	}
	// The adapter itself, not the storeurl wrapper: Copy looks for its
	// tokenstore.Importer method.
	res, cerr := transfer.Copy(ctx, st.Store, items, opts)
	out := transferOutput{Source: source, Target: st.URL.String(), Mode: mode, Result: res}
	if errors.Is(cerr, transfer.ErrNoImporter) {
		return fmt.Errorf("%s: %w", st.URL, cerr)
	}
	if f.asJSON {
		if err := a.printJSON(out); err != nil {
			return err
		}
	} else {
		a.printSummary(out)
	}
	switch {
	case cerr != nil:
		return fmt.Errorf("copy into %s stopped: %w (run the same command again to resume)", st.URL, cerr)
	case res.Count(transfer.KindMismatch) > 0:
		return withCode(exitVerify, fmt.Errorf("verification failed for %d records", res.Count(transfer.KindMismatch)))
	case len(res.Problems) > 0:
		return withCode(exitPartial, fmt.Errorf("%d of %d records were not copied (listed above)", len(res.Problems), res.Read))
	}
	return nil
}

func (a *app) printSummary(o transferOutput) {
	r := o.Result
	w := a.stdout
	verb := "copied"
	if r.DryRun {
		verb = "dry run, nothing written"
	}
	fmt.Fprintf(w, "%s -> %s (%s): %s\n", o.Source, o.Target, o.Mode, verb)
	fmt.Fprintf(w, "  read        %6d\n", r.Read)
	fmt.Fprintf(w, "  inserted    %6d\n", r.Inserted)
	fmt.Fprintf(w, "  updated     %6d\n", r.Updated)
	fmt.Fprintf(w, "  unchanged   %6d\n", r.Unchanged)
	fmt.Fprintf(w, "  kept newer  %6d   (the target's record expires later)\n", r.KeptNewer)
	fmt.Fprintf(w, "  problems    %6d\n", len(r.Problems))
	if !r.DryRun {
		fmt.Fprintf(w, "  verified    %6d   (digest %s)\n", r.Verified, r.Digest)
	}
	if len(r.Problems) > 0 {
		fmt.Fprintln(w, "problems:")
		for _, p := range r.Problems {
			fmt.Fprintf(w, "  %s: %s: %s\n", p.Pos, p.Kind, p.Reason)
		}
	}
}

func (a *app) importCmd() *cobra.Command {
	var f transferFlags
	cmd := &cobra.Command{
		Use:   "import --from SOURCE --to URL",
		Short: "Import tokens from an export or a Zoho SDK store (FileStore CSV, DBStore table)",
		Long: `Import copies the tokens of SOURCE into the store URL.

` + sourceForms + `

Every record is validated on its own; a bad one is reported with its line
or id and skipped, and the others are imported. Records keep their IDs
(Zoho row ids included; they need a store that can import with IDs),
unless --new-ids lets the store assign new ones and find existing
records by the lookup rules instead. The import is idempotent: a rerun
writes only records that are missing or newer (a later expiry) and
reports the rest as unchanged or kept. At the end every record is read
back and compared by SHA-256. Exit status 5 means some records were not
imported (listed), 6 that verification failed.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			items, source, err := a.readSource(ctx, f.from)
			if err != nil {
				return err
			}
			st, err := a.open(ctx, f.to)
			if err != nil {
				return err
			}
			defer st.Close()
			return a.copyInto(ctx, items, source, st, f)
		},
	}
	f.add(cmd, "the source (jsonl:PATH, zoho-csv:PATH, zoho-sql:DSN)", true)
	return cmd
}

func (a *app) migrateCmd() *cobra.Command {
	var f transferFlags
	cmd := &cobra.Command{
		Use:   "migrate --from URL --to URL",
		Short: "Copy every token of one store into another, keeping IDs",
		Long: `Migrate copies every token of the store --from into the store --to under
the same IDs. It is idempotent and resumable: a rerun copies only what
is missing or newer (a later expiry), so run it again after an
interruption, and once more after switching the applications over. At
the end every record is read back from the target and compared with the
source by SHA-256. The source is only read.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			src, err := a.open(ctx, f.from)
			if err != nil {
				return err
			}
			defer src.Close()
			dst, err := a.open(ctx, f.to)
			if err != nil {
				return err
			}
			defer dst.Close()
			if dst.URL.String() == src.URL.String() {
				return usageError("--from and --to name the same store")
			}
			tokens, err := tokensOf(ctx, src)
			if err != nil {
				return err
			}
			slices.SortFunc(tokens, func(x, y *tokenstore.Token) int { return strings.Compare(x.ID, y.ID) })
			items := make([]transfer.Item, len(tokens))
			for i, t := range tokens {
				items[i] = transfer.Item{Token: t, Pos: "id " + t.ID}
			}
			return a.copyInto(ctx, items, src.URL.String(), dst, f)
		},
	}
	f.add(cmd, "the source store URL", false)
	return cmd
}
