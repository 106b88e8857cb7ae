package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// Event is the handler's input: whose token to load.
type Event struct {
	// UserName is the user whose token is loaded (required).
	UserName string `json:"user_name"`
	// ClientID narrows the lookup to one OAuth client, for users with
	// tokens of several clients.
	ClientID string `json:"client_id,omitempty"`
}

// Response describes the token found, without any secret value: it says
// which secrets the token holds, not what they are.
type Response struct {
	ID              string     `json:"id"`
	UserName        string     `json:"user_name"`
	ClientID        string     `json:"client_id,omitempty"`
	APIDomain       string     `json:"api_domain,omitempty"`
	Expiry          *time.Time `json:"expiry,omitempty"`
	Expired         bool       `json:"expired"`
	HasAccessToken  bool       `json:"has_access_token"`
	HasRefreshToken bool       `json:"has_refresh_token"`
}

// Handler loads tokens from a store. Build it once per Lambda execution
// environment (outside the handler function), so that warm invocations
// reuse the store's index cache: one GetSecretValue call per lookup.
type Handler struct {
	Store tokenstore.Store
	// Now returns the current time (default time.Now).
	Now func() time.Time
}

// ErrBadEvent: the event names no user.
var ErrBadEvent = errors.New("lambda example: the event needs a user_name")

// Handle looks the event's user up and describes the token. A user
// without a token gives an error wrapping tokenstore.ErrNotFound.
func (h *Handler) Handle(ctx context.Context, ev Event) (*Response, error) {
	if ev.UserName == "" {
		return nil, ErrBadEvent
	}
	tok, err := h.Store.FindToken(ctx, &tokenstore.Token{UserName: ev.UserName, ClientID: ev.ClientID})
	if err != nil {
		return nil, fmt.Errorf("loading the token of %q: %w", ev.UserName, err)
	}
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	r := &Response{
		ID:              tok.ID,
		UserName:        tok.UserName,
		ClientID:        tok.ClientID,
		APIDomain:       tok.APIDomain,
		HasAccessToken:  tok.AccessToken != "",
		HasRefreshToken: tok.RefreshToken != "",
	}
	if !tok.Expiry.IsZero() {
		exp := tok.Expiry.UTC()
		r.Expiry = &exp
		r.Expired = !now().Before(exp)
	}
	return r, nil
}
