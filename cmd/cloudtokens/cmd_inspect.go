package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cloudtokens/cloudtokens/cmd/cloudtokens/internal/storeurl"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// listOutput is the JSON output of list.
type listOutput struct {
	Store  string      `json:"store"`
	Count  int         `json:"count"`
	Tokens []tokenView `json:"tokens"`
}

func (a *app) listCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list URL",
		Short: "List the tokens of a store: ID, user, client, expiry and which credentials are present",
		Long: `List the tokens of a store, sorted by ID: ID, user name, client ID, expiry
and which credentials are present (access, refresh, grant token, client
secret). Secret values are never shown.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: a.withStore(func(ctx context.Context, st *storeurl.Store, _ []string) error {
			tokens, err := tokensOf(ctx, st)
			if err != nil {
				return err
			}
			slices.SortFunc(tokens, func(x, y *tokenstore.Token) int { return strings.Compare(x.ID, y.ID) })
			now := time.Now()
			out := listOutput{Store: st.URL.String(), Count: len(tokens), Tokens: []tokenView{}}
			for _, t := range tokens {
				out.Tokens = append(out.Tokens, viewOf(t, now))
			}
			if asJSON {
				return a.printJSON(out)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tUSER\tCLIENT\tEXPIRY\tCREDENTIALS")
			for _, v := range out.Tokens {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.ID, orDash(v.UserName), orDash(v.ClientID), v.expiryText(), v.Present)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "%d tokens in %s\n", out.Count, out.Store)
			return nil
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (schema in README.md)")
	return cmd
}

// showOutput is the JSON output of show.
type showOutput struct {
	Store string    `json:"store"`
	Token tokenView `json:"token"`
}

func (a *app) showCmd() *cobra.Command {
	var (
		asJSON         bool
		user, clientID string
	)
	cmd := &cobra.Command{
		Use:   "show URL [ID | --user NAME [--client ID]]",
		Short: "Show one token, by ID or by user name, with its secrets redacted",
		Long: `Show one token, found by its ID or, with --user, by the lookup rules
(user name, and client ID when given). Secret values are shown as
[redacted] when present. A missing token exits with status 4.`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) == 2 && user != "":
				return usageError("give an ID or --user, not both")
			case len(args) == 1 && user == "":
				return usageError("give an ID or --user NAME")
			case clientID != "" && user == "":
				return usageError("--client needs --user")
			case len(args) == 2:
				return urlAndID(cmd, args)
			}
			return usageArgs(cobra.ExactArgs(1))(cmd, args)
		},
		RunE: a.withStore(func(ctx context.Context, st *storeurl.Store, args []string) error {
			var (
				t   *tokenstore.Token
				err error
			)
			if user != "" {
				if t, err = st.FindToken(ctx, &tokenstore.Token{UserName: user, ClientID: clientID}); err != nil {
					err = notFound(fmt.Errorf("%s: %w", st.URL, err))
				}
			} else {
				t, err = tokenByID(ctx, st, args[0])
			}
			if err != nil {
				return err
			}
			v := viewOf(t, time.Now())
			if asJSON {
				return a.printJSON(showOutput{Store: st.URL.String(), Token: v})
			}
			secret := func(present bool) string {
				if present {
					return "[redacted]"
				}
				return "-"
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			for _, row := range [][2]string{
				{"id", v.ID}, {"user_name", orDash(v.UserName)}, {"client_id", orDash(v.ClientID)},
				{"client_secret", secret(v.Present.ClientSecret)}, {"refresh_token", secret(v.Present.RefreshToken)},
				{"access_token", secret(v.Present.AccessToken)}, {"grant_token", secret(v.Present.GrantToken)},
				{"expiry", v.expiryText()}, {"redirect_url", orDash(v.RedirectURL)}, {"api_domain", orDash(v.APIDomain)},
			} {
				fmt.Fprintf(tw, "%s:\t%s\n", row[0], row[1])
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (schema in README.md)")
	cmd.Flags().StringVar(&user, "user", "", "find the token by user name")
	cmd.Flags().StringVar(&clientID, "client", "", "with --user: the client ID (needed when the user has tokens of several clients)")
	return cmd
}
