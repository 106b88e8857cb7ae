package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/cloudtokens/cloudtokens/tokensource"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// Event is the handler's input: whose token to call the API with.
type Event struct {
	// UserName is the user whose token is used (required).
	UserName string `json:"user_name"`
	// ClientID narrows the lookup to one OAuth client, for users with
	// tokens of several clients.
	ClientID string `json:"client_id,omitempty"`
}

// Response is what the API answered, and which token record was used;
// never a token value.
type Response struct {
	// ID is the token's record ID in the store.
	ID string `json:"id"`
	// Status is the HTTP status of the API's answer.
	Status int `json:"status"`
}

// Handler calls the provider's API on behalf of the event's user. Build
// it once per execution environment (in main, outside the handler
// function): its Pool keeps each user's token in memory, so a warm
// invocation whose token is still valid makes no Secrets Manager request
// and no token request.
type Handler struct {
	// Pool gives the users' tokens.
	Pool *tokensource.Pool
	// APIURL is the API endpoint to call (GET) with the user's token.
	APIURL string
}

// ErrBadEvent: the event names no user.
var ErrBadEvent = errors.New("lambda example: the event needs a user_name")

// maxBody bounds how much of the API's answer is read (and discarded).
const maxBody = 1 << 20

// Handle gets a valid token for the event's user (refreshing it if it
// expires, once across all instances), calls the API with it and returns
// the API's status and the token's record ID. A user without a token
// gives an error wrapping tokensource.ErrNoToken; errors name the record
// ID at most, never the user name or a token.
func (h *Handler) Handle(ctx context.Context, ev Event) (*Response, error) {
	if ev.UserName == "" {
		return nil, ErrBadEvent
	}
	src, err := h.Pool.Source(ctx, &tokenstore.Token{UserName: ev.UserName, ClientID: ev.ClientID})
	if err != nil {
		return nil, fmt.Errorf("getting the user's token: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.APIURL, nil)
	if err != nil {
		return nil, err
	}
	// The client refreshes once and retries when the API rejects a token
	// that looked valid (401 INVALID_OAUTHTOKEN or invalid_token).
	resp, err := src.Client(ctx).Do(req)
	if err != nil {
		return nil, fmt.Errorf("calling the API with token %s: %w", src.ID(), err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody)); err != nil {
		return nil, fmt.Errorf("reading the API's answer: %w", err)
	}
	return &Response{ID: src.ID(), Status: resp.StatusCode}, nil
}
