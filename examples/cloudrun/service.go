package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/cloudtokens/cloudtokens/tokensource"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// Event is the request body: whose token to call the API with.
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

// Service calls the provider's API on behalf of a request's user. Build
// it once per instance (in main): its Pool keeps each user's token in
// memory, so a request whose token is still valid makes no Secret Manager
// call and no token request. It is an http.Handler for POST / with an
// Event as JSON body; it answers a Response as JSON, or an error status:
//
//	400  the body is not an Event with a user_name
//	404  the user has no token (log them in)
//	401  the provider rejected the user's refresh token (log them in again)
//	429  the provider's token rate limit (Zoho: 10 per 10 minutes)
//	500  the provider rejected the service's client ID or secret
//	503  backing off after a failed token request, or the store is busy
//	     (lease, stale reads); try again later
//	502  the token endpoint, the store or the API could not be reached
type Service struct {
	// Pool gives the users' tokens.
	Pool *tokensource.Pool
	// APIURL is the API endpoint to call (GET) with the user's token.
	APIURL string
	// Logger logs failures with the record ID, never the user name or a
	// token (default slog.Default()).
	Logger *slog.Logger
}

// maxBody bounds how much of a request or API answer is read.
const maxBody = 1 << 20

// ErrBadEvent: the request names no user.
var ErrBadEvent = errors.New("cloudrun example: the body needs a JSON object with a user_name")

// ServeHTTP implements http.Handler.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	var ev Event
	if err := json.NewDecoder(io.LimitReader(r.Body, maxBody)).Decode(&ev); err != nil || ev.UserName == "" {
		http.Error(w, ErrBadEvent.Error(), http.StatusBadRequest)
		return
	}
	resp, err := s.Call(r.Context(), ev)
	if err != nil {
		status := statusOf(err)
		s.logger().WarnContext(r.Context(), "cloudrun example: request failed", "status", status, "error", err)
		http.Error(w, http.StatusText(status), status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// Call gets a valid token for the event's user (refreshing it if it
// expires, once across all instances), calls the API with it and returns
// the API's status and the token's record ID. Errors name the record ID
// at most, never the user name or a token.
func (s *Service) Call(ctx context.Context, ev Event) (*Response, error) {
	if ev.UserName == "" {
		return nil, ErrBadEvent
	}
	src, err := s.Pool.Source(ctx, &tokenstore.Token{UserName: ev.UserName, ClientID: ev.ClientID})
	if err != nil {
		return nil, fmt.Errorf("getting the user's token: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.APIURL, nil)
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

func (s *Service) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// statusOf maps an error of Call to the HTTP status of the answer.
func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrBadEvent):
		return http.StatusBadRequest
	case errors.Is(err, tokensource.ErrNoToken):
		return http.StatusNotFound
	case errors.Is(err, tokensource.ErrRefreshRevoked):
		return http.StatusUnauthorized // also while backing off: a new login is needed
	case errors.Is(err, tokensource.ErrInvalidClient):
		return http.StatusInternalServerError // the service's client credentials
	case errors.Is(err, tokensource.ErrAccessDenied):
		return http.StatusTooManyRequests // the provider's rate limit
	case errors.Is(err, tokensource.ErrBackingOff), errors.Is(err, tokensource.ErrLeaseTimeout),
		errors.Is(err, tokensource.ErrStaleRead), errors.Is(err, tokenstore.ErrConflict):
		return http.StatusServiceUnavailable
	}
	return http.StatusBadGateway
}
