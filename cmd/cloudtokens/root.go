package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cloudtokens/cloudtokens/cmd/cloudtokens/internal/progress"
	"github.com/cloudtokens/cloudtokens/cmd/cloudtokens/internal/storeurl"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

const rootLong = `cloudtokens operates the token stores of the cloudtokens library.

Store URLs:
  aws://PREFIX            AWS Secrets Manager (standard AWS configuration; ?region= ?endpoint=)
  gcp://PROJECT/PREFIX    GCP Secret Manager (Application Default Credentials; ?endpoint= for an emulator)
  vault://MOUNT/PREFIX    Vault KV v2 (VAULT_ADDR, VAULT_TOKEN, ...; ?addr= ?namespace=)
  every URL: ?shards=N    the index shard count the store's applications use (default 1)

Exit codes:
  0 ok   1 error   2 usage or refusal   3 check found problems   4 not found
  5 import/migrate left records behind   6 verification failed   130 interrupted`

func (a *app) rootCmd() *cobra.Command {
	var timeout time.Duration
	root := &cobra.Command{
		Use:           "cloudtokens",
		Short:         "Operate cloudtokens token stores: list, check, repair, export, import, migrate",
		Long:          rootLong,
		Version:       version(),
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_ = cmd.Help()
			return withCode(exitUsage, nil)
		},
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if timeout > 0 {
				ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
				a.cancel = cancel
				cmd.SetContext(ctx)
			}
			return nil
		},
	}
	root.PersistentFlags().DurationVar(&timeout, "timeout", 0, "give up after this long (e.g. 10m); 0: no limit")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return withCode(exitUsage, err) })
	root.AddCommand(
		a.listCmd(), a.showCmd(), a.checkCmd(), a.repairCmd(),
		a.deleteCmd(), a.deleteAllCmd(), a.exportCmd(),
		a.importCmd(), a.migrateCmd(), a.revokeCmd(),
	)
	root.CompletionOptions.DisableDefaultCmd = true
	return root
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// usageArgs makes an argument check's failure a usage error (exit 2).
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return withCode(exitUsage, err)
		}
		return nil
	}
}

// open parses and opens a store URL.
func (a *app) open(ctx context.Context, raw string) (*storeurl.Store, error) {
	u, err := storeurl.Parse(raw)
	if err != nil {
		return nil, err
	}
	return storeurl.Open(ctx, u)
}

// withStore returns a RunE that opens the store URL of the command's
// first argument, calls run with it and the other arguments, and closes
// it.
func (a *app) withStore(run func(ctx context.Context, st *storeurl.Store, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		st, err := a.open(ctx, args[0])
		if err != nil {
			return err
		}
		defer st.Close()
		return run(ctx, st, args[1:])
	}
}

// tokensOf returns every token of st.
func tokensOf(ctx context.Context, st *storeurl.Store) ([]*tokenstore.Token, error) {
	tokens, err := st.Tokens(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", st.URL, err)
	}
	return tokens, nil
}

// tokenByID returns the token id of st; a missing one exits with 4.
func tokenByID(ctx context.Context, st *storeurl.Store, id string) (*tokenstore.Token, error) {
	t, err := st.FindTokenByID(ctx, id)
	if err != nil {
		return nil, notFound(fmt.Errorf("%s: %w", st.URL, err))
	}
	return t, nil
}

// urlAndID checks the arguments URL ID: a malformed ID is a usage error.
func urlAndID(cmd *cobra.Command, args []string) error {
	if err := cobra.ExactArgs(2)(cmd, args); err != nil {
		return withCode(exitUsage, err)
	}
	if err := tokenstore.ValidateID(args[1]); err != nil {
		return withCode(exitUsage, err)
	}
	return nil
}

// progress returns the progress reporter: a bar when stderr is a
// terminal, plain lines otherwise.
func (a *app) progress() *progress.Reporter { return progress.New(a.stderr, a.stderrTTY) }

func (a *app) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(a.stdout, "%s\n", b)
	return err
}

// confirm asks the user to type "yes" before a destructive action. With
// yes set it does not ask. When stdin is not a terminal it refuses
// (a usage error), so a script never deletes by accident.
func (a *app) confirm(action string, yes bool) error {
	if yes {
		return nil
	}
	if !a.stdinTTY {
		return usageError("refusing to %s without --yes: standard input is not a terminal to confirm on", action)
	}
	fmt.Fprintf(a.stderr, "About to %s.\nType \"yes\" to continue: ", action)
	line, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil && line == "" {
		return withCode(exitError, errors.New("aborted: no answer; nothing was changed"))
	}
	if strings.TrimSpace(line) != "yes" {
		return withCode(exitError, errors.New("aborted: nothing was changed"))
	}
	return nil
}

// tokenView is the JSON form of a token in list and show: everything but
// the secret values, and which of them are present. It is part of the
// stable output.
type tokenView struct {
	ID          string   `json:"id"`
	UserName    string   `json:"user_name"`
	ClientID    string   `json:"client_id"`
	ExpiryTime  int64    `json:"expiry_time"` // epoch ms; 0: unknown
	Expiry      string   `json:"expiry"`      // RFC 3339 UTC; "": unknown
	Expired     bool     `json:"expired"`
	RedirectURL string   `json:"redirect_url"`
	APIDomain   string   `json:"api_domain"`
	Present     presence `json:"present"`
}

type presence struct {
	AccessToken  bool `json:"access_token"`
	RefreshToken bool `json:"refresh_token"`
	GrantToken   bool `json:"grant_token"`
	ClientSecret bool `json:"client_secret"`
}

func viewOf(t *tokenstore.Token, now time.Time) tokenView {
	v := tokenView{
		ID: t.ID, UserName: t.UserName, ClientID: t.ClientID, RedirectURL: t.RedirectURL, APIDomain: t.APIDomain,
		Present: presence{
			AccessToken: t.AccessToken != "", RefreshToken: t.RefreshToken != "",
			GrantToken: t.GrantToken != "", ClientSecret: t.ClientSecret != "",
		},
	}
	if !t.Expiry.IsZero() {
		v.ExpiryTime = t.Expiry.UnixMilli()
		v.Expiry = t.Expiry.UTC().Format(time.RFC3339)
		v.Expired = !now.Before(t.Expiry)
	}
	return v
}

// credentials lists the secrets present, for text output.
func (p presence) String() string {
	var out []string
	for _, c := range []struct {
		on   bool
		name string
	}{{p.AccessToken, "access"}, {p.RefreshToken, "refresh"}, {p.GrantToken, "grant"}, {p.ClientSecret, "secret"}} {
		if c.on {
			out = append(out, c.name)
		}
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, ",")
}

func (v tokenView) expiryText() string {
	switch {
	case v.Expiry == "":
		return "-"
	case v.Expired:
		return v.Expiry + " (expired)"
	}
	return v.Expiry
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
