package tokensource

import (
	"context"
	"net/url"

	"github.com/cloudtokens/cloudtokens/observe"
)

// Observability (WithObserver): a Source reports its refreshes and grant
// code exchanges as operations (observe.Refresh, observe.Exchange), the
// provider calls inside them (observe.TokenRequest) and the waits for
// another process's lease (observe.LeaseWait), and emits lease, backoff
// and Pool events. Without an Observer each costs a nil check.

// start reports the start of op to the Observer, if any.
func (s *Source) start(ctx context.Context, op observe.Op) (context.Context, observe.Span) {
	return observe.Start(ctx, s.o.observer, op)
}

// emit reports ev to the Observer, if any.
func (s *Source) emit(ctx context.Context, ev observe.Event) {
	observe.Emit(ctx, s.o.observer, ev)
}

// leaseTaken reports that this Source holds the lease on token id, after
// a wait (a takeover) or not.
func (s *Source) leaseTaken(ctx context.Context, id string, waited bool) {
	kind := observe.LeaseAcquire
	if waited {
		kind = observe.LeaseTakeover
	}
	s.emit(ctx, observe.Event{Kind: kind, TokenID: id})
}

// requestToken is client.callToken reported as an observe.TokenRequest of
// token id (its grant type is form's).
func (s *Source) requestToken(ctx context.Context, id, op string, form url.Values, clientID, clientSecret string, secrets ...string) (_ *tokenAnswer, err error) {
	ctx, span := s.start(ctx, observe.Op{Kind: observe.TokenRequest, TokenID: id, Grant: form.Get("grant_type")})
	defer span.End(&err)
	return s.client.callToken(ctx, op, form, clientID, clientSecret, secrets...)
}
