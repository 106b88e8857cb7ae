package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/cloudtokens/cloudtokens/cmd/cloudtokens/internal/storeurl"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/index"
)

// checker and repairer are the maintenance methods of the casstore
// engine, which every cloud store embeds.
type checker interface {
	Check(ctx context.Context) (*casstore.Report, error)
}

type repairer interface {
	Repair(ctx context.Context) (casstore.RepairReport, error)
	Migrate(ctx context.Context) (bool, error)
}

// checkOutput is the JSON form of a casstore.Report: "store", "ok", and
// every field of the report under its snake_case name (so a field the
// engine adds appears without a change here), lists never null.
type checkOutput map[string]any

// fieldsOf returns the exported fields of struct v by snake_case name,
// with nil slices as empty ones.
func fieldsOf(v any) map[string]any {
	out := map[string]any{}
	rv := reflect.ValueOf(v)
	for i := range rv.NumField() {
		f := rv.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		fv := rv.Field(i)
		if fv.Kind() == reflect.Slice && fv.IsNil() {
			fv = reflect.MakeSlice(fv.Type(), 0, 0)
		}
		out[snake(f.Name)] = fv.Interface()
	}
	return out
}

// snake turns a Go field name into snake_case: MissingKeys -> missing_keys.
func snake(name string) string {
	var b strings.Builder
	for i, r := range name {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

func checkOutputOf(st *storeurl.Store, r *casstore.Report) checkOutput {
	c := checkOutput(fieldsOf(*r))
	c["store"] = st.URL.String()
	c["ok"] = r.OK()
	return c
}

func (c checkOutput) ok() bool { ok, _ := c["ok"].(bool); return ok }

// repairActions says, for each list of a check report, what it means and
// what repair does about it. Lists not named here are reported with a
// generic line; "tombstones" and "shard_sizes" are not problems.
var repairActions = []struct{ key, what, action string }{
	{"unindexed", "token documents not in the index (orphans of a crashed insert, or a lost index)", "repair adds their index entries"},
	{"missing", "index entries whose token document is gone", "repair removes the entries"},
	{"missing_keys", "token keys missing from the index", "repair adds the keys"},
	{"duplicates", "keys held by more than one token", "repair keeps one record per key and deletes the others"},
	{"stale_entries", "dead index entries", "repair removes them"},
	{"pending_claims", "claims of saves that have not finished (a crash, or a save under way)", "repair fences and drops those that stay"},
	{"missing_buckets", "index buckets that are gone", "repair rebuilds them from the token documents"},
	{"corrupt", "token documents that do not decode", "repair leaves them alone: inspect them in the console, then delete them"},
	{"unfinished_deletes", "deleted token documents whose delete stopped half way (earlier versions remain)", "repair finishes the deletes"},
}

var notProblems = map[string]bool{"tombstones": true, "shard_sizes": true}

// maxListed is how many IDs of one kind of problem the text output lists.
const maxListed = 20

// findings describes every problem of a check, and what repair does
// about it.
func (c checkOutput) findings() []string {
	var out []string
	known := map[string]bool{}
	add := func(key, what, action string) {
		v := reflect.ValueOf(c[key])
		if v.Kind() != reflect.Slice || v.Len() == 0 {
			return
		}
		var items []string
		for i := range min(v.Len(), maxListed) {
			items = append(items, fmt.Sprint(v.Index(i).Interface()))
		}
		if v.Len() > maxListed {
			items = append(items, fmt.Sprintf("... %d more (--json lists all)", v.Len()-maxListed))
		}
		out = append(out, fmt.Sprintf("%d %s [%s]: %s", v.Len(), what, strings.Join(items, ", "), action))
	}
	for _, a := range repairActions {
		known[a.key] = true
		add(a.key, a.what, a.action)
	}
	for _, k := range slices.Sorted(maps.Keys(c)) {
		if !known[k] && !notProblems[k] {
			add(k, strings.ReplaceAll(k, "_", " "), "see the casstore package documentation")
		}
	}
	return out
}

func (a *app) printCheck(c checkOutput) {
	fmt.Fprintf(a.stdout, "%s: %v tokens, index sizes %v bytes\n", c["store"], c["tokens"], c["shard_sizes"])
	if c.ok() {
		fmt.Fprintln(a.stdout, "ok: the index and the token documents agree")
		return
	}
	for _, f := range c.findings() {
		fmt.Fprintln(a.stdout, "problem: "+f)
	}
}

func (a *app) runCheck(ctx context.Context, st *storeurl.Store) (checkOutput, error) {
	c, ok := st.Store.(checker)
	if !ok {
		return nil, fmt.Errorf("%s cannot be checked: it is not a casstore-based store", st.URL)
	}
	r, err := c.Check(ctx)
	if err != nil {
		return nil, fmt.Errorf("checking %s: %w", st.URL, err)
	}
	return checkOutputOf(st, r), nil
}

func (a *app) checkCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check URL",
		Short: "Compare a store's index with its token documents (exit 3 on problems)",
		Long: `Check compares the store's index with the token documents it lists and
reports every disagreement: orphaned documents, index entries without a
document, missing keys, duplicate keys and corrupt documents. It only
reads. Run it while no application writes, or expect transient findings.
Exit status 3 means problems were found; "repair" fixes most of them.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: a.withStore(func(ctx context.Context, st *storeurl.Store, _ []string) error {
			c, err := a.runCheck(ctx, st)
			if err != nil {
				return err
			}
			if asJSON {
				if err := a.printJSON(c); err != nil {
					return err
				}
			} else {
				a.printCheck(c)
			}
			if !c.ok() {
				return withCode(exitProblems, nil)
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (schema in README.md)")
	return cmd
}

// repairOutput is the JSON output of repair.
type repairOutput struct {
	Store  string `json:"store"`
	DryRun bool   `json:"dry_run"`
	// Repair is what repair changed: every field of casstore.RepairReport
	// by snake_case name (null for a dry run).
	Repair map[string]any `json:"repair"`
	// Check is the check before a dry run, or after the repair.
	Check checkOutput `json:"check"`
	// Actions lists what repair does (dry run) or what problems remain.
	Actions []string `json:"actions"`
}

func (a *app) repairCmd() *cobra.Command {
	var asJSON, dryRun bool
	cmd := &cobra.Command{
		Use:   "repair URL",
		Short: "Rebuild a store's index from its token documents",
		Long: `Repair rebuilds the store's index from the token documents: it adds the
entries of orphaned documents, drops entries whose document is gone,
expires the claims of operations that crashed, and resolves duplicate
keys. Corrupt documents are left alone and reported. An index made by an
earlier version with a power-of-two number of fixed shards is first
moved, in place, to the layout that grows by itself. After repairing it
checks the store again; exit status 3 means problems remain.

With --dry-run it changes nothing: it runs check and prints what repair
would do (exit status 3 when there is something to do).`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: a.withStore(func(ctx context.Context, st *storeurl.Store, _ []string) error {
			var err error
			out := repairOutput{Store: st.URL.String(), DryRun: dryRun, Actions: []string{}}
			if !dryRun {
				r, ok := st.Store.(repairer)
				if !ok {
					return fmt.Errorf("%s cannot be repaired: it is not a casstore-based store", st.URL)
				}
				if moved, err := r.Migrate(ctx); err != nil && !errors.Is(err, index.ErrLayout) {
					return fmt.Errorf("moving %s to the growing index layout: %w", st.URL, err)
				} else if moved && !asJSON {
					fmt.Fprintf(a.stdout, "moved %s to the index layout that grows by itself\n", st.URL)
				}
				rep, err := r.Repair(ctx)
				if errors.Is(err, errors.ErrUnsupported) {
					return fmt.Errorf("repairing %s: this build's store engine cannot repair yet: %w", st.URL, err)
				}
				if err != nil {
					return fmt.Errorf("repairing %s: %w", st.URL, err)
				}
				out.Repair = fieldsOf(rep)
				if !asJSON {
					fmt.Fprintf(a.stdout, "repaired %s: %s\n", st.URL, rep)
				}
			}
			if out.Check, err = a.runCheck(ctx, st); err != nil {
				return err
			}
			if f := out.Check.findings(); f != nil {
				out.Actions = f
			}
			if asJSON {
				if err := a.printJSON(out); err != nil {
					return err
				}
			} else {
				if dryRun {
					fmt.Fprintln(a.stdout, "dry run: nothing was changed")
				} else if !out.Check.ok() {
					fmt.Fprintln(a.stdout, "after the repair, check still finds:")
				}
				a.printCheck(out.Check)
			}
			if !out.Check.ok() {
				return withCode(exitProblems, nil)
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (schema in README.md)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "change nothing: check and print what repair would do")
	return cmd
}
