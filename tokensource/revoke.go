package tokensource

import (
	"context"
	"errors"
	"fmt"

	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// Revoke logs the Source's user out: it revokes the stored token at the
// provider's revoke endpoint and deletes its record (see the package
// function Revoke). Afterwards the Source holds no token; a Token call
// looks the partial token up again.
func (s *Source) Revoke(ctx context.Context) error {
	t, stored, err := s.load(ctx)
	if err != nil {
		return err
	}
	if stored == nil {
		return fmt.Errorf("tokensource: revoke: no stored token matches: %w", tokenstore.ErrNotFound)
	}
	if err := revokeToken(ctx, &s.client, s.store, t); err != nil {
		return err
	}
	s.mu.Lock()
	s.id, s.cur, s.unsaved, s.fail = "", nil, nil, nil
	s.mu.Unlock()
	return nil
}

// Revoke logs out the token with the given ID: it reads the record by ID
// (not by a lookup rule; Zoho's revoke looks it up by the wrong key),
// revokes its refresh token, or its access token when it has none, at
// cfg.RevokeURL, and then deletes the record. A token the provider
// reports as already invalid counts as revoked. When the provider
// refuses for another reason, or cannot be reached, the record is kept
// and the error returned, so that the call can be repeated. A record
// with neither token is just deleted. The client credentials are the
// record's, else cfg's. Of the options, only WithHTTPClient matters; a
// nil or bad option is an error wrapping [ErrInvalidConfig].
func Revoke(ctx context.Context, store tokenstore.Store, cfg Config, id string, opts ...Option) error {
	o, err := applyOptions(opts)
	if err != nil {
		return fmt.Errorf("tokensource: revoke: %w", err)
	}
	if store == nil {
		return fmt.Errorf("tokensource: revoke: %w: nil store", ErrInvalidConfig)
	}
	t, err := store.FindTokenByID(ctx, id)
	if err != nil {
		return fmt.Errorf("tokensource: revoke: %w", err)
	}
	fill(&t.ClientID, cfg.ClientID)
	fill(&t.ClientSecret, cfg.ClientSecret)
	return revokeToken(ctx, &client{cfg: cfg, http: o.http}, store, t)
}

func revokeToken(ctx context.Context, c *client, store tokenstore.Store, t *tokenstore.Token) error {
	tok, hint := t.RefreshToken, "refresh_token"
	if tok == "" {
		tok, hint = t.AccessToken, "access_token"
	}
	if tok != "" {
		if err := c.revoke(ctx, tok, hint, t.ClientID, t.ClientSecret); err != nil && !errors.Is(err, ErrRefreshRevoked) {
			return err
		}
	}
	if err := store.DeleteToken(ctx, t.ID); err != nil && !errors.Is(err, tokenstore.ErrNotFound) {
		return fmt.Errorf("tokensource: revoke: the token is revoked at the provider, deleting the record failed: %w", err)
	}
	return nil
}
