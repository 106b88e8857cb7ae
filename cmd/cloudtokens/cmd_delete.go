package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cloudtokens/cloudtokens/cmd/cloudtokens/internal/storeurl"
	"github.com/cloudtokens/cloudtokens/tokensource"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// describe names a token for a confirmation prompt: its ID, user and
// client, never a secret.
func describe(t *tokenstore.Token) string {
	s := fmt.Sprintf("token %s", t.ID)
	if t.UserName != "" {
		s += fmt.Sprintf(" of user %q", t.UserName)
	}
	if t.ClientID != "" {
		s += fmt.Sprintf(" (client %s)", t.ClientID)
	}
	return s
}

func (a *app) deleteCmd() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete URL ID",
		Short: "Delete one token (asks for confirmation unless --yes)",
		Long: `Delete the token with the given ID. On a terminal it shows the token and
asks you to type "yes"; without a terminal it refuses unless --yes is
given. A missing ID exits with status 4. Deleting does not revoke the
token at the provider: use "revoke" for that.`,
		Args: urlAndID,
		RunE: a.withStore(func(ctx context.Context, st *storeurl.Store, args []string) error {
			id := args[0]
			t, err := tokenByID(ctx, st, id)
			if err != nil {
				return err
			}
			if err := a.confirm(fmt.Sprintf("delete %s from %s", describe(t), st.URL), yes); err != nil {
				return err
			}
			if err := st.DeleteToken(ctx, id); err != nil {
				return fmt.Errorf("deleting token %s from %s: %w", id, st.URL, err)
			}
			fmt.Fprintf(a.stdout, "deleted token %s from %s\n", id, st.URL)
			return nil
		}),
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

func (a *app) deleteAllCmd() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete-all URL",
		Short: "Delete every token of a store (asks for confirmation unless --yes)",
		Long: `Delete every token of the store and its index. On a terminal it says how
many tokens will go and asks you to type "yes"; without a terminal it
refuses unless --yes is given. Take an export first.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: a.withStore(func(ctx context.Context, st *storeurl.Store, _ []string) error {
			tokens, err := tokensOf(ctx, st)
			if err != nil {
				return err
			}
			if len(tokens) == 0 {
				fmt.Fprintf(a.stdout, "%s holds no tokens; nothing to delete\n", st.URL)
				return nil
			}
			if err := a.confirm(fmt.Sprintf("delete ALL %d tokens of %s", len(tokens), st.URL), yes); err != nil {
				return err
			}
			if err := st.DeleteTokens(ctx); err != nil {
				return fmt.Errorf("deleting the tokens of %s: %w", st.URL, err)
			}
			fmt.Fprintf(a.stdout, "deleted %d tokens from %s\n", len(tokens), st.URL)
			return nil
		}),
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

// Environment variables of revoke; flags win over them.
const (
	envTokenURL     = "CLOUDTOKENS_TOKEN_URL"
	envRevokeURL    = "CLOUDTOKENS_REVOKE_URL"
	envClientID     = "CLOUDTOKENS_CLIENT_ID"
	envClientSecret = "CLOUDTOKENS_CLIENT_SECRET"
)

func (a *app) revokeCmd() *cobra.Command {
	var (
		yes bool
		cfg tokensource.Config
	)
	cmd := &cobra.Command{
		Use:   "revoke URL ID",
		Short: "Revoke a token at the OAuth provider and delete it (asks for confirmation unless --yes)",
		Long: `Revoke the token with the given ID at the provider's revoke endpoint (its
refresh token, else its access token) and then delete the record: the
user is logged out everywhere. If the provider refuses or cannot be
reached, the record is kept and the command fails, so it can be run
again; a token the provider already considers invalid counts as revoked.

The OAuth settings come from flags or the environment:
  --revoke-url     $CLOUDTOKENS_REVOKE_URL   (default: --token-url + "/revoke", Zoho's layout)
  --token-url      $CLOUDTOKENS_TOKEN_URL    e.g. https://accounts.zoho.com/oauth/v2/token
  --client-id      $CLOUDTOKENS_CLIENT_ID    used when the record has no client ID
  --client-secret  $CLOUDTOKENS_CLIENT_SECRET used when the record has no client secret
                                             (prefer the variable: a flag shows in the process list)`,
		Args: urlAndID,
		PreRunE: func(*cobra.Command, []string) error {
			fill := func(v *string, env string) {
				if *v == "" {
					*v = a.getenv(env)
				}
			}
			fill(&cfg.TokenURL, envTokenURL)
			fill(&cfg.RevokeURL, envRevokeURL)
			fill(&cfg.ClientID, envClientID)
			fill(&cfg.ClientSecret, envClientSecret)
			if cfg.RevokeURL == "" && cfg.TokenURL != "" {
				cfg.RevokeURL = strings.TrimSuffix(cfg.TokenURL, "/") + "/revoke"
			}
			if cfg.RevokeURL == "" {
				return usageError("revoke needs the provider's revoke endpoint: --revoke-url or --token-url (or $%s, $%s)", envRevokeURL, envTokenURL)
			}
			return nil
		},
		RunE: a.withStore(func(ctx context.Context, st *storeurl.Store, args []string) error {
			id := args[0]
			t, err := tokenByID(ctx, st, id)
			if err != nil {
				return err
			}
			if err := a.confirm(fmt.Sprintf("revoke %s at %s and delete it from %s", describe(t), cfg.RevokeURL, st.URL), yes); err != nil {
				return err
			}
			if err := tokensource.Revoke(ctx, st, cfg, id); err != nil {
				return fmt.Errorf("revoking token %s: %w", id, err)
			}
			fmt.Fprintf(a.stdout, "revoked and deleted token %s from %s\n", id, st.URL)
			return nil
		}),
	}
	f := cmd.Flags()
	f.BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	f.StringVar(&cfg.TokenURL, "token-url", "", "the provider's token endpoint (env "+envTokenURL+")")
	f.StringVar(&cfg.RevokeURL, "revoke-url", "", "the provider's revoke endpoint (env "+envRevokeURL+")")
	f.StringVar(&cfg.ClientID, "client-id", "", "OAuth client ID, when the record has none (env "+envClientID+")")
	f.StringVar(&cfg.ClientSecret, "client-secret", "", "OAuth client secret, when the record has none (env "+envClientSecret+")")
	return cmd
}
