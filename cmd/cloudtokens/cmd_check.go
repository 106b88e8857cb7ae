package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cloudtokens/cloudtokens/cmd/cloudtokens/internal/storeurl"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// checker and repairer are the maintenance methods of the casstore
// engine, which every cloud store embeds.
type checker interface {
	Check(ctx context.Context) (*casstore.Report, error)
}

type repairer interface {
	Repair(ctx context.Context) (casstore.RepairReport, error)
}

// checkOutput is the JSON form of a casstore.Report (part of the stable
// output of check and repair).
type checkOutput struct {
	Store       string   `json:"store"`
	OK          bool     `json:"ok"`
	Tokens      int      `json:"tokens"`
	Unindexed   []string `json:"unindexed"`
	Missing     []string `json:"missing"`
	MissingKeys []string `json:"missing_keys"`
	Duplicates  []string `json:"duplicates"`
	Corrupt     []string `json:"corrupt"`
	ShardSizes  []int    `json:"shard_sizes"`
}

func checkOutputOf(st *storeurl.Store, r *casstore.Report) checkOutput {
	nz := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	sizes := r.ShardSizes
	if sizes == nil {
		sizes = []int{}
	}
	return checkOutput{
		Store: st.URL.String(), OK: r.OK(), Tokens: r.Tokens,
		Unindexed: nz(r.Unindexed), Missing: nz(r.Missing), MissingKeys: nz(r.MissingKeys),
		Duplicates: nz(r.Duplicates), Corrupt: nz(r.Corrupt), ShardSizes: sizes,
	}
}

// findings describes every problem of a check, and what repair does
// about it.
func (c checkOutput) findings() []string {
	var out []string
	add := func(list []string, what, action string) {
		if len(list) > 0 {
			out = append(out, fmt.Sprintf("%d %s %v: %s", len(list), what, list, action))
		}
	}
	add(c.Unindexed, "token documents not in the index (orphans of a crashed insert, or a lost index)", "repair adds their index entries")
	add(c.Missing, "index entries whose token document is gone", "repair removes the entries")
	add(c.MissingKeys, "token keys missing from the index", "repair adds the keys")
	add(c.Duplicates, "keys held by more than one token", "repair keeps one record per key and deletes the others")
	add(c.Corrupt, "token documents that do not decode", "repair leaves them alone: inspect them in the console, then delete them")
	return out
}

func (a *app) printCheck(c checkOutput) {
	fmt.Fprintf(a.stdout, "%s: %d tokens, index shard sizes %v bytes\n", c.Store, c.Tokens, c.ShardSizes)
	if c.OK {
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
		return checkOutput{}, fmt.Errorf("%s cannot be checked: it is not a casstore-based store", st.URL)
	}
	r, err := c.Check(ctx)
	if err != nil {
		return checkOutput{}, fmt.Errorf("checking %s: %w", st.URL, err)
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
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := a.open(ctx, args[0])
			if err != nil {
				return err
			}
			defer st.Close()
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
			if !c.OK {
				return withCode(exitProblems, nil)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (schema in README.md)")
	return cmd
}

// repairOutput is the JSON output of repair.
type repairOutput struct {
	Store  string `json:"store"`
	DryRun bool   `json:"dry_run"`
	// Repair is what repair changed (null for a dry run).
	Repair *repairCounts `json:"repair"`
	// Check is the check before a dry run, or after the repair.
	Check checkOutput `json:"check"`
	// Actions lists what repair does (dry run) or what problems remain.
	Actions []string `json:"actions"`
}

type repairCounts struct {
	Tokens            int      `json:"tokens"`
	EntriesAdded      int      `json:"entries_added"`
	EntriesRemoved    int      `json:"entries_removed"`
	ClaimsExpired     int      `json:"claims_expired"`
	DuplicatesRemoved int      `json:"duplicates_removed"`
	TombstonesRemoved int      `json:"tombstones_removed"`
	Corrupt           []string `json:"corrupt"`
}

func (a *app) repairCmd() *cobra.Command {
	var asJSON, dryRun bool
	cmd := &cobra.Command{
		Use:   "repair URL",
		Short: "Rebuild a store's index from its token documents",
		Long: `Repair rebuilds the store's index from the token documents: it adds the
entries of orphaned documents, drops entries whose document is gone,
expires the claims of operations that crashed, and resolves duplicate
keys. Corrupt documents are left alone and reported. After repairing it
checks the store again; exit status 3 means problems remain.

With --dry-run it changes nothing: it runs check and prints what repair
would do (exit status 3 when there is something to do).`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := a.open(ctx, args[0])
			if err != nil {
				return err
			}
			defer st.Close()
			out := repairOutput{Store: st.URL.String(), DryRun: dryRun, Actions: []string{}}
			if !dryRun {
				r, ok := st.Store.(repairer)
				if !ok {
					return fmt.Errorf("%s cannot be repaired: it is not a casstore-based store", st.URL)
				}
				rep, err := r.Repair(ctx)
				if errors.Is(err, errors.ErrUnsupported) {
					return fmt.Errorf("repairing %s: this build's store engine cannot repair yet: %w", st.URL, err)
				}
				if err != nil {
					return fmt.Errorf("repairing %s: %w", st.URL, err)
				}
				corrupt := rep.Corrupt
				if corrupt == nil {
					corrupt = []string{}
				}
				out.Repair = &repairCounts{
					Tokens: rep.Tokens, EntriesAdded: rep.EntriesAdded, EntriesRemoved: rep.EntriesRemoved,
					ClaimsExpired: rep.ClaimsExpired, DuplicatesRemoved: rep.DuplicatesRemoved,
					TombstonesRemoved: rep.TombstonesRemoved, Corrupt: corrupt,
				}
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
				} else if !out.Check.OK {
					fmt.Fprintln(a.stdout, "after the repair, check still finds:")
				}
				a.printCheck(out.Check)
			}
			if !out.Check.OK {
				return withCode(exitProblems, nil)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (schema in README.md)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "change nothing: check and print what repair would do")
	return cmd
}
