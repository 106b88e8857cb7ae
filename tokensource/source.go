package tokensource

import (
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"github.com/cloudtokens/cloudtokens/observe"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// Keys of oauth2.Token.Extra in the tokens a Source returns.
const (
	// ExtraAPIDomain is the API host the provider returned with the token
	// (Zoho's api_domain), a string.
	ExtraAPIDomain = "api_domain"
	// ExtraTokenID is the ID of the token's record in the store, a string.
	ExtraTokenID = "token_id"
)

// Source is an oauth2.TokenSource that keeps its token in a
// tokenstore.Store: it exchanges the grant code, refreshes the token
// before it expires, and saves every new token before returning it. See
// the package documentation. A Source is safe for concurrent use.
type Source struct {
	store   tokenstore.Store
	leaser  tokenstore.Leaser // nil: best effort
	saver   tokenstore.LeaseSaver
	partial *tokenstore.Token // the caller's partial token, client fields filled
	client  client
	o       options
	holder  string
	group   singleflight.Group

	// endpoint is what the process knows about cfg.TokenURL and the
	// partial token's client; lifetime the access token lifetime of this
	// Source's last token answer (nanoseconds, 0 until one).
	endpoint     *endpointInfo
	lifetime     atomic.Int64
	marginWarned atomic.Bool

	mu      sync.Mutex
	id      string            // the record's ID, once known
	cur     *tokenstore.Token // the last token read or obtained, saved
	unsaved *tokenstore.Token // a new token whose save failed, to save first
	fail    *failure          // the last failed token request
	own     *ownership        // the lease this Source's last save wrote
	// grantUsed: the partial token's grant code has been exchanged, seen
	// in the record, or rejected while a record exists; a grant code is
	// single-use, so it is ignored from then on.
	grantUsed bool
	// exchanged: this Source exchanged a grant code (a login).
	exchanged bool
	// seen: the refresh tokens this Source has seen, oldest first; a
	// read that returns one of the older ones is stale.
	seen seenTokens
}

var _ oauth2.TokenSource = (*Source)(nil)

// failure remembers a failed token request for the backoff.
type failure struct {
	err   error
	count int
	until time.Time
	// The credentials that failed: a store change of any of them (a new
	// login, another process's refresh) ends the backoff.
	grant, refresh, access string
}

// New returns a Source for the token identified by partial: its ID, its
// user name, its grant code or its refresh token (with the client ID and
// secret, from partial or cfg), as in Zoho's SDKs. partial is copied;
// its blank ClientID, ClientSecret and RedirectURL are taken from cfg.
//
// New does not contact the store or the provider; the first Token call
// does. A nil store, a bad cfg or a nil or bad option gives an error
// wrapping [ErrInvalidConfig]; a partial token that identifies nothing,
// one wrapping [tokenstore.ErrInvalidToken].
//
// A program that serves many users, or one user from many requests,
// should keep its Sources rather than make one per request, which costs a
// store read per request: a [Pool] does that.
func New(store tokenstore.Store, partial *tokenstore.Token, cfg Config, opts ...Option) (*Source, error) {
	o, err := applyOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("tokensource: %w", err)
	}
	return newSource(store, partial, cfg, o)
}

func newSource(store tokenstore.Store, partial *tokenstore.Token, cfg Config, o options) (*Source, error) {
	if store == nil {
		return nil, fmt.Errorf("tokensource: %w: nil store", ErrInvalidConfig)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("tokensource: %w", err)
	}
	if partial == nil {
		return nil, fmt.Errorf("tokensource: %w: nil partial token", tokenstore.ErrInvalidToken)
	}
	p := partial.Clone()
	accessOnly := p.ID == "" && p.UserName == "" && p.GrantToken == "" && p.RefreshToken == "" &&
		p.AccessToken != "" && p.ClientID == "" && p.ClientSecret == ""
	if !accessOnly {
		// An access-token query must not carry client fields (see
		// tokenstore.RuleAccessToken); every other one may.
		fill(&p.ClientID, cfg.ClientID)
		fill(&p.ClientSecret, cfg.ClientSecret)
	}
	fill(&p.RedirectURL, cfg.RedirectURL)
	if p.ID != "" {
		if err := tokenstore.ValidateID(p.ID); err != nil {
			return nil, fmt.Errorf("tokensource: partial token: %w", err)
		}
	} else if _, err := tokenstore.QueryRuleOf(p); err != nil {
		return nil, fmt.Errorf("tokensource: the partial token identifies no token (give an ID, a user name, or a grant or refresh token with the client ID and secret): %w", err)
	}
	s := &Source{
		store:    store,
		partial:  p,
		client:   client{cfg: cfg, http: o.http},
		o:        o,
		holder:   "tokensource-" + randomHex(8),
		endpoint: endpointOf(cfg.TokenURL, p.ClientID),
	}
	if l, ok := store.(tokenstore.Leaser); ok && !o.disableLease {
		s.leaser = l
		s.saver, _ = store.(tokenstore.LeaseSaver)
	}
	return s, nil
}

func fill(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}

// ID returns the ID of the token's record once a Token call has found or
// created it, else the partial token's ID (possibly "").
func (s *Source) ID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.id != "" {
		return s.id
	}
	return s.partial.ID
}

// Token implements oauth2.TokenSource: TokenContext with
// context.Background().
func (s *Source) Token() (*oauth2.Token, error) {
	return s.TokenContext(context.Background())
}

// TokenContext returns a valid access token. It serves the token it
// holds while more than the refresh margin of validity is left, without
// reading the store. Otherwise it reads the stored token (merged with the
// partial token), exchanges the grant code when there is neither an
// access nor a refresh token, refreshes when the margin is reached,
// saves the new token, and returns it. Concurrent calls share one read
// and one refresh; processes sharing the store share one refresh (see the
// package documentation).
//
// The returned token has AccessToken, TokenType and Expiry set, and the
// Extra values ExtraAPIDomain and ExtraTokenID; not the refresh token,
// which stays in the store.
func (s *Source) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	if t := s.cached(); s.usable(t, "") && !s.refreshDue(t) {
		return s.oauth2Token(t), nil
	}
	t, err := s.shared(ctx, "")
	if err != nil {
		return nil, err
	}
	return s.oauth2Token(t), nil
}

// RefreshRejected is for a caller whose request the API refused with
// accessToken (an HTTP 401): it returns a valid token other than
// accessToken, refreshing once for all goroutines and processes unless
// one of them already has. Transport calls it.
func (s *Source) RefreshRejected(ctx context.Context, accessToken string) (*oauth2.Token, error) {
	if accessToken == "" {
		return s.TokenContext(ctx)
	}
	if t := s.cached(); s.usable(t, accessToken) {
		return s.oauth2Token(t), nil
	}
	t, err := s.shared(ctx, accessToken)
	if err != nil {
		return nil, err
	}
	return s.oauth2Token(t), nil
}

func (s *Source) oauth2Token(t *tokenstore.Token) *oauth2.Token {
	tok := &oauth2.Token{AccessToken: t.AccessToken, TokenType: s.o.tokenType, Expiry: t.Expiry}
	return tok.WithExtra(map[string]any{ExtraAPIDomain: t.APIDomain, ExtraTokenID: t.ID})
}

func (s *Source) cached() *tokenstore.Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// usable reports whether t has an access token other than rejected with
// at least the refresh margin of validity left. An unknown expiry counts
// as valid.
func (s *Source) usable(t *tokenstore.Token, rejected string) bool {
	if t == nil || t.AccessToken == "" || t.AccessToken == rejected {
		return false
	}
	return t.Expiry.IsZero() || t.Expiry.Sub(s.o.now()) >= s.margin(t.ID)
}

// margin returns the refresh margin in effect: the configured one, or a
// tenth of the token lifetime when the configured one is at least half of
// it (it would refresh at least twice per lifetime; a margin above the
// lifetime, on every call). The lifetime is this Source's last token
// answer's, else the last one this process saw for the same token URL
// and client. The first clamp is logged once per Source.
func (s *Source) margin(id string) time.Duration {
	m := s.o.margin
	life := time.Duration(s.lifetime.Load())
	if life <= 0 {
		life = s.endpoint.knownLifetime()
	}
	if life <= 0 || 2*m < life {
		return m
	}
	if s.marginWarned.CompareAndSwap(false, true) {
		s.o.logger.Warn("tokensource: the refresh margin is at least half the token lifetime; using a tenth of the lifetime",
			"id", id, "margin", m, "lifetime", life, "margin_used", life/10)
	}
	return life / 10
}

// logArgs returns the log attributes that identify t: its record ID, and
// its user name only with WithLogUserNames.
func (s *Source) logArgs(t *tokenstore.Token, more ...any) []any {
	args := make([]any, 0, 4+len(more))
	args = append(args, "id", t.ID)
	if s.o.logUserNames {
		args = append(args, "user_name", t.UserName)
	}
	return append(args, more...)
}

// shared runs obtain once for all concurrent callers with the same
// rejected token. A caller whose own context is still live retries when
// the flight failed only because the leading caller's context ended.
func (s *Source) shared(ctx context.Context, rejected string) (*tokenstore.Token, error) {
	key := "token"
	if rejected != "" {
		key = "rejected:" + rejected
	}
	for {
		ch := s.group.DoChan(key, func() (any, error) { return s.obtain(ctx, rejected) })
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case r := <-ch:
			if r.Err != nil {
				if ctx.Err() == nil && (errors.Is(r.Err, context.Canceled) || errors.Is(r.Err, context.DeadlineExceeded)) {
					continue // the leader's context ended, not ours
				}
				return nil, r.Err
			}
			return r.Val.(*tokenstore.Token), nil
		}
	}
}

// obtain is the body of a flight: it returns a usable token, reading,
// exchanging or refreshing as needed.
func (s *Source) obtain(ctx context.Context, rejected string) (*tokenstore.Token, error) {
	if t := s.cached(); s.usable(t, rejected) && !s.refreshDue(t) {
		return t, nil // a flight that just ended got it
	}
	if err := s.saveUnsaved(ctx); err != nil {
		return nil, err
	}
	if t := s.cached(); s.usable(t, rejected) && !s.refreshDue(t) {
		return t, nil
	}
	for attempt := 0; ; attempt++ {
		t, stored, err := s.load(ctx)
		if err != nil {
			return nil, err
		}
		if s.newLogin(stored) {
			if err := s.backingOff(ctx, t); err != nil {
				return nil, err
			}
			nt, err := s.exchange(ctx, t)
			if err == nil {
				return nt, nil
			}
			if attempt == 0 && errors.Is(err, ErrRefreshRevoked) && ctx.Err() == nil {
				// The code is used or expired. If a record exists now
				// (another process exchanged this very code, or the code
				// is left over from an older login), carry on with it.
				if _, st, lerr := s.load(ctx); lerr == nil && st != nil {
					s.mu.Lock()
					s.grantUsed = true
					s.mu.Unlock()
					s.o.logger.WarnContext(ctx, "tokensource: the grant code was rejected; using the stored token", s.logArgs(st)...)
					continue
				}
			}
			return nil, s.failed(ctx, t, err)
		}
		own := s.owned(stored)
		if s.usable(t, rejected) {
			if own != nil && !s.o.now().Before(own.from) {
				return s.refreshOwned(ctx, t, rejected) // early, without a lease write
			}
			s.succeed(t)
			return t, nil
		}
		if err := s.backingOff(ctx, t); err != nil {
			return nil, err
		}
		switch {
		case t.AccessToken == "" && t.RefreshToken == "":
			if t.GrantToken == "" {
				if stored == nil {
					return nil, fmt.Errorf("%w: no stored token matches and the partial token has no grant code: %w", ErrNoToken, tokenstore.ErrNotFound)
				}
				return nil, fmt.Errorf("%w: token %q has no access, refresh or grant token", ErrNoToken, t.ID)
			}
			nt, err := s.exchange(ctx, t) // a record holding a grant code only
			if err != nil {
				return nil, s.failed(ctx, t, err)
			}
			return nt, nil
		case t.RefreshToken == "":
			return nil, fmt.Errorf("%w: the access token of token %q has expired or was rejected and there is no refresh token", ErrNoToken, t.ID)
		case own != nil:
			return s.refreshOwned(ctx, t, rejected) // a rejected token: no lease write either
		case s.leaser != nil && t.ID != "":
			return s.refreshLeased(ctx, t, rejected)
		default:
			return s.refreshBestEffort(ctx, t, rejected)
		}
	}
}

// newLogin reports whether the partial token's grant code is a new login
// to exchange: the record (nil: none) does not hold it, and it has not
// been used.
func (s *Source) newLogin(stored *tokenstore.Token) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.partial.GrantToken != "" && !s.grantUsed && (stored == nil || stored.GrantToken != s.partial.GrantToken)
}

// load reads the record: by the known ID, else by the partial token's ID
// or lookup rule. It returns the partial token merged with the record
// (see mergeStored) and the record itself, or, when there is none, a copy
// of the partial token and nil.
//
// A record whose refresh token this Source has seen replaced by a newer
// one is a stale read (an eventually consistent store): load reads again,
// pacing the reads as a lease waiter does, for up to WithStaleReadWait,
// and then fails with ErrStaleRead. It never returns such a record, so
// nothing refreshes with a superseded refresh token.
func (s *Source) load(ctx context.Context) (*tokenstore.Token, *tokenstore.Token, error) {
	var deadline time.Time
	delay := s.o.pollInitial
	for reads := 1; ; reads++ {
		t, stored, err := s.loadOnce(ctx)
		if err != nil || stored == nil {
			return t, stored, err
		}
		s.mu.Lock()
		stale := s.seen.superseded(stored.RefreshToken)
		if !stale {
			s.seen.observe(stored.RefreshToken)
		}
		s.mu.Unlock()
		if !stale {
			return t, stored, nil
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(s.o.staleWait)
		}
		s.o.logger.DebugContext(ctx, "tokensource: the store returned a superseded refresh token; reading again", s.logArgs(stored, "reads", reads)...)
		if time.Now().After(deadline) {
			return nil, nil, fmt.Errorf("%w: token %q, %d reads in %s", ErrStaleRead, stored.ID, reads, s.o.staleWait)
		}
		if err := sleep(ctx, delay); err != nil {
			return nil, nil, err
		}
		delay = min(2*delay, s.o.pollMax)
	}
}

// loadOnce is one read of load.
func (s *Source) loadOnce(ctx context.Context) (*tokenstore.Token, *tokenstore.Token, error) {
	s.mu.Lock()
	id := s.id
	partial := s.partial.Clone()
	if s.grantUsed {
		partial.GrantToken = ""
	}
	s.mu.Unlock()
	if id == "" {
		id = partial.ID
	}
	var stored *tokenstore.Token
	var err error
	if id != "" {
		stored, err = s.store.FindTokenByID(ctx, id)
		if errors.Is(err, tokenstore.ErrNotFound) && s.partial.ID == "" {
			// Deleted since; a new login may have saved it anew.
			stored, err = s.store.FindToken(ctx, s.partial)
		}
	} else {
		stored, err = s.store.FindToken(ctx, s.partial)
	}
	if errors.Is(err, tokenstore.ErrNotFound) {
		s.mu.Lock()
		s.id, s.cur = "", nil
		s.mu.Unlock()
		partial.ID = ""
		return partial, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("tokensource: reading the stored token: %w", err)
	}
	s.mu.Lock()
	s.id = stored.ID
	if s.partial.GrantToken != "" && stored.GrantToken == s.partial.GrantToken {
		s.grantUsed = true
	}
	s.mu.Unlock()
	return mergeStored(partial, stored), stored, nil
}

// mergeStored merges the partial token with the stored record. The
// caller's identity and client values win, as in tokenstore.Merge (the
// Zoho SDKs' merge); the stored access token, expiry, refresh token and
// API domain win over the partial token's, because the store holds the
// newest generation: another process may have refreshed the token and
// rotated the refresh token since the caller got its copy.
func mergeStored(partial, stored *tokenstore.Token) *tokenstore.Token {
	t := partial.Clone()
	tokenstore.Merge(t, stored)
	if stored.AccessToken != "" {
		t.AccessToken, t.Expiry = stored.AccessToken, stored.Expiry
	}
	if stored.RefreshToken != "" {
		t.RefreshToken = stored.RefreshToken
	}
	if stored.APIDomain != "" {
		t.APIDomain = stored.APIDomain
	}
	t.ID = stored.ID
	return t
}

// exchange trades the grant code for a token and saves it. The caller
// records a failure.
func (s *Source) exchange(ctx context.Context, t *tokenstore.Token) (_ *tokenstore.Token, err error) {
	ctx, span := s.start(ctx, observe.Op{Kind: observe.Exchange, TokenID: t.ID})
	defer span.End(&err)
	form := url.Values{"grant_type": {"authorization_code"}, "code": {t.GrantToken}}
	if t.RedirectURL != "" {
		form.Set("redirect_uri", t.RedirectURL)
	}
	a, err := s.requestToken(ctx, t.ID, "exchange", form, t.ClientID, t.ClientSecret, t.GrantToken)
	if err != nil {
		return nil, err
	}
	nt := s.apply(t, a)
	s.mu.Lock()
	s.exchanged = true
	if t.GrantToken == s.partial.GrantToken {
		s.grantUsed = true // single-use: never again, even if a later login replaces it in the record
	}
	s.mu.Unlock()
	if err := s.save(ctx, nt); err != nil {
		return nil, err
	}
	span.SetTokenID(nt.ID)
	s.o.logger.DebugContext(ctx, "tokensource: exchanged the grant code", s.logArgs(nt)...)
	return nt, nil
}

// refreshLeased refreshes under the store's lease on the token, or waits
// for the process that holds it to store its result.
func (s *Source) refreshLeased(ctx context.Context, t *tokenstore.Token, rejected string) (_ *tokenstore.Token, err error) {
	ctx, span := s.start(ctx, observe.Op{Kind: observe.Refresh, TokenID: t.ID})
	defer span.End(&err)
	waiting, wctx, wait := false, ctx, observe.Span{} // the LeaseWait, once this Source waits
	defer wait.End(&err)
	stale := t.AccessToken
	deadline := time.Now().Add(2 * s.o.leaseTTL)
	delay := s.o.pollInitial
	s.disown() // the lease this takes replaces the one a save gave
	for {
		ok, err := s.leaser.AcquireLease(wctx, t.ID, s.holder, s.o.leaseTTL)
		if err != nil {
			return nil, fmt.Errorf("tokensource: taking the refresh lease on token %q: %w", t.ID, err)
		}
		if ok {
			s.leaseTaken(wctx, t.ID, waiting)
			wait.End(nil)
			return s.refreshHoldingLease(ctx, t.ID, rejected)
		}
		if t.AccessToken != "" && t.AccessToken != rejected && !t.Expiry.IsZero() && t.Expiry.Sub(s.o.now()) > 2*s.o.leaseTTL {
			// Valid for longer than this wait could last: another
			// process owns the next refresh (a larger margin than
			// its own brought this one here early). Use the token.
			s.succeed(t)
			return t, nil
		}
		// Another process is refreshing: wait for its token.
		if !waiting {
			waiting = true
			wctx, wait = s.start(ctx, observe.Op{Kind: observe.LeaseWait, TokenID: t.ID})
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w (token %q, lease TTL %s)", ErrLeaseTimeout, t.ID, s.o.leaseTTL)
		}
		if err := sleep(wctx, delay); err != nil {
			return nil, err
		}
		delay = min(2*delay, s.o.pollMax)
		t2, st, err := s.load(wctx)
		if err != nil {
			return nil, err
		}
		if st == nil {
			return nil, fmt.Errorf("%w: token %q was deleted while waiting for its refresh: %w", ErrNoToken, t.ID, tokenstore.ErrNotFound)
		}
		if s.usable(t2, rejected) || (t2.AccessToken != "" && t2.AccessToken != stale && t2.AccessToken != rejected) {
			s.succeed(t2)
			s.o.logger.DebugContext(ctx, "tokensource: using the token another process refreshed", s.logArgs(t2)...)
			return t2, nil
		}
		t = t2
	}
}

// refreshHoldingLease re-reads the token (the previous holder may have
// refreshed it), refreshes it if still needed and saves it, which
// releases the lease.
func (s *Source) refreshHoldingLease(ctx context.Context, id, rejected string) (tok *tokenstore.Token, err error) {
	release := true
	defer func() {
		if release {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.o.saveTimeout)
			defer cancel()
			if rerr := s.leaser.ReleaseLease(rctx, id, s.holder); rerr != nil {
				s.o.logger.WarnContext(ctx, "tokensource: could not release the refresh lease", "id", id, "error", rerr)
			}
		}
	}()
	t, st, err := s.load(ctx)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, fmt.Errorf("%w: token %q was deleted: %w", ErrNoToken, id, tokenstore.ErrNotFound)
	}
	if s.usable(t, rejected) {
		s.succeed(t)
		return t, nil
	}
	if t.RefreshToken == "" {
		return nil, fmt.Errorf("%w: token %q has no refresh token", ErrNoToken, t.ID)
	}
	nt, err := s.refresh(ctx, t)
	if err != nil {
		if t2, ok := s.rotatedElsewhere(ctx, t, rejected, err, 0); ok {
			return t2, nil
		}
		return nil, s.failed(ctx, t, err)
	}
	if err := s.save(ctx, nt); err != nil {
		return nil, err
	}
	release = false // saving the token released the lease
	return nt, nil
}

// refreshBestEffort refreshes without a lease: for stores that are not
// Leasers, and for a refresh token that has no record yet.
func (s *Source) refreshBestEffort(ctx context.Context, t *tokenstore.Token, rejected string) (_ *tokenstore.Token, err error) {
	ctx, span := s.start(ctx, observe.Op{Kind: observe.Refresh, TokenID: t.ID})
	defer span.End(&err)
	nt, err := s.refresh(ctx, t)
	if err != nil {
		if t2, ok := s.rotatedElsewhere(ctx, t, rejected, err, 5); ok {
			return t2, nil
		}
		return nil, s.failed(ctx, t, err)
	}
	if nt.RefreshToken == t.RefreshToken && t.ID != "" {
		// Conditional save: keep a token another process stored
		// meanwhile rather than overwrite it (both are valid; without
		// rotation nothing is lost).
		if t2, st, lerr := s.load(ctx); lerr == nil && st != nil && t2.AccessToken != t.AccessToken && s.usable(t2, rejected) {
			s.succeed(t2)
			return t2, nil
		}
	}
	if err := s.save(ctx, nt); err != nil {
		return nil, err
	}
	span.SetTokenID(nt.ID)
	return nt, nil
}

// rotatedElsewhere handles a refresh that the provider rejected as
// ErrRefreshRevoked: with rotation, another process (one without the
// lease, or whose lease lapsed) may have used the refresh token first and
// stored its result. It returns that token if so. Without a lease the
// other process may not have saved yet: it re-reads up to polls more
// times, waiting as a lease waiter does.
func (s *Source) rotatedElsewhere(ctx context.Context, t *tokenstore.Token, rejected string, err error, polls int) (*tokenstore.Token, bool) {
	if !errors.Is(err, ErrRefreshRevoked) {
		return nil, false
	}
	delay := s.o.pollInitial
	for i := 0; ctx.Err() == nil; i++ {
		t2, st, lerr := s.load(ctx)
		if lerr == nil && st != nil && t2.RefreshToken != t.RefreshToken && s.usable(t2, rejected) {
			s.succeed(t2)
			return t2, true
		}
		if lerr != nil || i >= polls || sleep(ctx, delay) != nil {
			break
		}
		delay = min(2*delay, s.o.pollMax)
	}
	return nil, false
}

// refresh calls the token endpoint with t's refresh token, unless this
// Source has seen it replaced (the last guard against refresh token
// reuse; load already refuses such records).
func (s *Source) refresh(ctx context.Context, t *tokenstore.Token) (*tokenstore.Token, error) {
	s.mu.Lock()
	stale := s.seen.superseded(t.RefreshToken)
	s.mu.Unlock()
	if stale {
		return nil, fmt.Errorf("%w: token %q: not refreshing with a refresh token this Source has seen replaced", ErrStaleRead, t.ID)
	}
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {t.RefreshToken}}
	a, err := s.requestToken(ctx, t.ID, "refresh", form, t.ClientID, t.ClientSecret, t.RefreshToken, t.AccessToken)
	if err != nil {
		return nil, err
	}
	nt := s.apply(t, a)
	s.o.logger.DebugContext(ctx, "tokensource: refreshed the token",
		s.logArgs(nt, "rotated", a.refreshToken != "" && a.refreshToken != t.RefreshToken)...)
	return nt, nil
}

// apply returns t updated with a token answer: the new access token and
// expiry, the refresh token if the answer has one (a refresh answer
// without one keeps t's), the API domain if the answer has one.
func (s *Source) apply(t *tokenstore.Token, a *tokenAnswer) *tokenstore.Token {
	nt := t.Clone()
	nt.AccessToken = a.accessToken
	if a.refreshToken != "" {
		nt.RefreshToken = a.refreshToken
	}
	if a.apiDomain != "" {
		nt.APIDomain = a.apiDomain
	}
	life := a.lifetime
	if life <= 0 {
		life = DefaultLifetime
	}
	s.lifetime.Store(int64(life))
	if nt.ClientID == s.partial.ClientID {
		s.endpoint.setLifetime(life)
	} else {
		endpointOf(s.client.cfg.TokenURL, nt.ClientID).setLifetime(life)
	}
	nt.Expiry = s.o.now().Add(life).UTC()
	return nt
}

// save stores a new token, even if ctx ends meanwhile (the provider may
// have rotated the refresh token: losing the new one would lock every
// process out). On failure the token is kept and saved first by the
// next call; it is not returned before it is saved.
func (s *Source) save(ctx context.Context, nt *tokenstore.Token) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.o.saveTimeout)
	defer cancel()
	if err := s.saveToken(sctx, nt); err != nil {
		s.mu.Lock()
		s.unsaved = nt
		s.mu.Unlock()
		return fmt.Errorf("tokensource: saving the new token: %w", err)
	}
	s.mu.Lock()
	s.unsaved = nil
	s.mu.Unlock()
	s.succeed(nt)
	return nil
}

// saveUnsaved retries the save of a token whose save failed.
func (s *Source) saveUnsaved(ctx context.Context) error {
	s.mu.Lock()
	nt := s.unsaved
	s.mu.Unlock()
	if nt == nil {
		return nil
	}
	return s.save(ctx, nt)
}

// succeed records t as the current token and ends any backoff.
func (s *Source) succeed(t *tokenstore.Token) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = t.Clone()
	if t.ID != "" {
		s.id = t.ID
	}
	s.seen.observe(t.RefreshToken)
	s.fail = nil
}

// failed records a failed token request for the backoff and returns err.
// A cancelled or expired context is not a failure of the provider.
func (s *Source) failed(ctx context.Context, t *tokenstore.Token, err error) error {
	if ctx.Err() != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.fail
	if f == nil || f.grant != t.GrantToken || f.refresh != t.RefreshToken || f.access != t.AccessToken {
		f = &failure{grant: t.GrantToken, refresh: t.RefreshToken, access: t.AccessToken}
	}
	f.count++
	f.err = err
	initial, limit := s.o.transient, s.o.maxTransient
	if permanent(err) {
		initial, limit = s.o.backoff, s.o.maxBackoff
	}
	d := limit
	if f.count-1 < 40 {
		d = min(initial<<(f.count-1), limit)
	}
	f.until = s.o.now().Add(d)
	s.fail = f
	s.emit(ctx, observe.Event{Kind: observe.Backoff, TokenID: t.ID, Attempt: f.count, Wait: d, Err: err})
	s.o.logger.WarnContext(ctx, "tokensource: token request failed; backing off",
		s.logArgs(t, "error", err, "failures", f.count, "retry_after", f.until)...)
	return err
}

// backingOff returns an ErrBackingOff error while the last failure's
// backoff lasts and t carries the credentials that failed; a changed
// token in the store (a new login, another process's refresh) ends the
// backoff at once.
func (s *Source) backingOff(ctx context.Context, t *tokenstore.Token) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.fail
	if f == nil {
		return nil
	}
	if f.grant != t.GrantToken || f.refresh != t.RefreshToken || f.access != t.AccessToken {
		s.fail = nil
		return nil
	}
	if !s.o.now().Before(f.until) {
		return nil // try again; failed keeps counting
	}
	err := fmt.Errorf("%w until %s (%d failures): %w", ErrBackingOff, f.until.UTC().Format(time.RFC3339), f.count, f.err)
	s.emit(ctx, observe.Event{Kind: observe.BackoffBlocked, TokenID: t.ID, Err: err})
	return err
}

// sleep waits d with ±25% jitter, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d > 0 {
		d = d*3/4 + rand.N(d/2+1)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := crand.Read(b); err != nil {
		panic("tokensource: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// maxSeen bounds the refresh tokens a Source remembers: enough for the
// rotations of one stale-read window.
const maxSeen = 16

// seenTokens holds SHA-256 digests of the refresh tokens a Source has
// seen, oldest first; the last is the newest.
type seenTokens struct{ d [][sha256.Size]byte }

// superseded reports whether rt is one of the refresh tokens seen before
// the newest.
func (h *seenTokens) superseded(rt string) bool {
	if rt == "" || len(h.d) < 2 {
		return false
	}
	d := sha256.Sum256([]byte(rt))
	for _, x := range h.d[:len(h.d)-1] {
		if x == d {
			return true
		}
	}
	return false
}

// observe records rt as the newest refresh token.
func (h *seenTokens) observe(rt string) {
	if rt == "" {
		return
	}
	d := sha256.Sum256([]byte(rt))
	if n := len(h.d); n > 0 && h.d[n-1] == d {
		return
	}
	h.d = slices.DeleteFunc(h.d, func(x [sha256.Size]byte) bool { return x == d })
	if len(h.d) == maxSeen {
		h.d = append(h.d[:0], h.d[1:]...)
	}
	h.d = append(h.d, d)
}

// prepend records older refresh tokens, seen before every one h holds
// (another Source's, whose chain this one's login replaced). When h is
// full, the oldest go first.
func (h *seenTokens) prepend(older [][sha256.Size]byte) {
	older = slices.DeleteFunc(older, func(x [sha256.Size]byte) bool { return slices.Contains(h.d, x) })
	h.d = append(older, h.d...)
	if n := len(h.d); n > maxSeen {
		h.d = append(h.d[:0:0], h.d[n-maxSeen:]...)
	}
}
