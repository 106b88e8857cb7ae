package tokensourcetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/cloudtokens/cloudtokens/oauthtest"
	"github.com/cloudtokens/cloudtokens/tokensource"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// LifecycleOptions describe a Lifecycle run.
type LifecycleOptions struct {
	// StoreName describes the store in the output ("memory",
	// "AWS Secrets Manager, prefix ...").
	StoreName string
	// User is the user name to log in (default "alice@example.com").
	User string
	// Keep leaves the token in the store at the end instead of revoking
	// and deleting it.
	Keep bool
}

// Lifecycle runs a token's whole lifecycle on store against a local
// OAuth server (package oauthtest, Zoho-like: rotation on, Zoho's older
// millisecond expires_in with expires_in_sec) and narrates it to w, with
// every secret value redacted: first login with a grant code, save, a
// simulated expiry, a refresh by a new Source (a new process), the
// refreshed token read back, an API call, the list of tokens, and the
// logout (revoke and delete). It returns an error as soon as a step does
// not do what it should, so it doubles as a smoke test of a store; the
// quickstart examples run it on the memory store and on the cloud stores.
// Tokens lists the whole store: use an empty one (a fresh prefix).
func Lifecycle(ctx context.Context, w io.Writer, store tokenstore.Store, o LifecycleOptions) error {
	if o.User == "" {
		o.User = "alice@example.com"
	}
	p := &printer{w: w}
	// Zoho-like provider: rotation on, Zoho's older expires_in (ms) with
	// expires_in_sec, api_domain in the answers.
	provider := oauthtest.NewServer(oauthtest.WithRotation(true), oauthtest.WithExpiresStyle(oauthtest.ExpiresInMillis))
	defer provider.Close()
	cfg := tokensource.Config{
		TokenURL:     provider.TokenURL,
		RevokeURL:    provider.RevokeURL,
		ClientID:     provider.ClientID(),
		ClientSecret: provider.ClientSecret(),
		RedirectURL:  "http://localhost:8080/oauth/callback",
	}
	p.line("cloudtokens quickstart")
	p.line("  store:    %s", o.StoreName)
	p.line("  provider: local OAuth server at %s (behaves like Zoho's accounts server)", provider.URL)
	p.line("  secrets are never printed: %s stands for a redacted value, with a fingerprint", fp("example"))

	// 1. First login.
	p.step("First login with a grant token")
	grant := provider.IssueGrant(o.User)
	p.line("The user %s consents; the provider hands the app a grant token %s.", o.User, fp(grant))
	src, err := tokensource.New(store, &tokenstore.Token{UserName: o.User, GrantToken: grant}, cfg)
	if err != nil {
		return err
	}
	tok, err := src.TokenContext(ctx)
	if err != nil {
		return fmt.Errorf("first login: %w", err)
	}
	p.line("Token() exchanged it (grant_type=authorization_code): access token %s, valid until %s:",
		fp(tok.AccessToken), tok.Expiry.Local().Format(time.TimeOnly))
	p.line("the answer said expires_in=%d (milliseconds, Zoho's older form) with expires_in_sec=%d.",
		provider.Lifetime().Milliseconds(), int(provider.Lifetime().Seconds()))
	p.line("Provider: %d exchange, %d refreshes.", provider.Exchanges(), provider.Refreshes())

	// 2. Saved.
	p.step("Saved in the store before Token() returned")
	first, err := store.FindToken(ctx, &tokenstore.Token{UserName: o.User})
	if err != nil {
		return fmt.Errorf("reading the saved token: %w", err)
	}
	p.record(first)

	// 3. Simulated expiry.
	p.step("Simulated expiry")
	expired := first.Clone()
	expired.Expiry = time.Now().Add(-time.Minute)
	if err := store.SaveToken(ctx, expired); err != nil {
		return err
	}
	p.line("The stored access token is now marked expired (1 minute ago), as if the app")
	p.line("came back an hour later. The first process is gone; a new one starts with only")
	p.line("the user name: no second login.")

	// 4. Refresh.
	p.step("Refresh")
	src2, err := tokensource.New(store, &tokenstore.Token{UserName: o.User}, cfg)
	if err != nil {
		return err
	}
	tok2, err := src2.TokenContext(ctx)
	if err != nil {
		return fmt.Errorf("refresh: %w", err)
	}
	p.line("Token() found the expired token and refreshed it (grant_type=refresh_token):")
	p.line("  access token  %s -> %s, valid until %s", fp(first.AccessToken), fp(tok2.AccessToken),
		tok2.Expiry.Local().Format(time.TimeOnly))
	p.line("Provider: %d exchange, %d refresh.", provider.Exchanges(), provider.Refreshes())

	// 5. Read back.
	p.step("The refreshed token, read back from the store")
	back, err := store.FindTokenByID(ctx, src2.ID())
	if err != nil {
		return err
	}
	p.record(back)
	p.line("Same access token as Token() returned: %v. Refresh token rotated by the provider: %v,",
		back.AccessToken == tok2.AccessToken, back.RefreshToken != first.RefreshToken)
	p.line("and the old one no longer works: %v.", !provider.RefreshTokenValid(first.RefreshToken))
	if back.AccessToken != tok2.AccessToken || back.RefreshToken == first.RefreshToken || provider.Refreshes() != 1 {
		return fmt.Errorf("the store does not hold the refreshed token")
	}

	// 6. Use it.
	p.step("An API call with the token")
	resp, err := src2.Client(ctx).Get(provider.APIURL)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	resp.Body.Close()
	p.line("GET %s -> %s %s", provider.APIURL, resp.Status, strings.TrimSpace(string(body)))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("API call: %s", resp.Status)
	}

	// 7. List.
	p.step("List")
	if err := p.list(ctx, store); err != nil {
		return err
	}

	if o.Keep {
		p.step("Kept")
		p.line("The token stays in the store (ID %s).", back.ID)
		return nil
	}
	// 8. Logout.
	p.step("Logout: revoke and delete")
	if err := src2.Revoke(ctx); err != nil {
		return err
	}
	p.line("Revoked at the provider (%d revocation; refresh token valid: %v) and deleted from the store.",
		provider.Revocations(), provider.RefreshTokenValid(back.RefreshToken))
	if _, err := store.FindTokenByID(ctx, back.ID); err == nil {
		return fmt.Errorf("token %s still in the store after revoke", back.ID)
	}
	if err := p.list(ctx, store); err != nil {
		return err
	}
	p.line("")
	p.line("Done: 1 login, 1 refresh, 1 logout.")
	return nil
}

type printer struct {
	w io.Writer
	n int
}

func (p *printer) line(format string, args ...any) {
	fmt.Fprintf(p.w, format+"\n", args...)
}

func (p *printer) step(title string) {
	p.n++
	fmt.Fprintf(p.w, "\n%d. %s\n", p.n, title)
}

func (p *printer) record(t *tokenstore.Token) {
	p.line("  id             %s", t.ID)
	p.line("  user_name      %s", t.UserName)
	p.line("  client_id      %s", t.ClientID)
	p.line("  access_token   %s", fp(t.AccessToken))
	p.line("  refresh_token  %s", fp(t.RefreshToken))
	p.line("  grant_token    %s", fp(t.GrantToken))
	p.line("  client_secret  %s", fp(t.ClientSecret))
	p.line("  expiry         %s", t.Expiry.Local().Format(time.DateTime))
	p.line("  api_domain     %s", t.APIDomain)
}

func (p *printer) list(ctx context.Context, store tokenstore.Store) error {
	all, err := store.Tokens(ctx)
	if err != nil {
		return err
	}
	p.line("Tokens() lists %d token(s):", len(all))
	for _, t := range all {
		p.line("  %s  %-20s access %s  expires %s", t.ID, t.UserName, fp(t.AccessToken), t.Expiry.Local().Format(time.TimeOnly))
	}
	return nil
}

// fp shows a secret as "[redacted #1a2b3c]": a short SHA-256 fingerprint
// that tells values apart without revealing them.
func fp(v string) string {
	if v == "" {
		return "(none)"
	}
	sum := sha256.Sum256([]byte(v))
	return "[redacted #" + hex.EncodeToString(sum[:3]) + "]"
}
