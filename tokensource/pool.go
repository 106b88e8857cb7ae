package tokensource

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"

	"golang.org/x/oauth2"

	"github.com/cloudtokens/cloudtokens/observe"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// Pool keeps one [Source] per token, so that a server or a serverless
// function that is asked for the same users' tokens again and again pays
// the store and the provider only when a token has to be refreshed: a
// warm token costs no store call and no provider call. Make one Pool per
// process (in a Lambda function, a package-level variable or one built in
// main, outside the handler) and share it between goroutines; it is safe
// for concurrent use.
//
// A call names the token with who, a partial token as [New] takes it: the
// record ID, the user name (and client ID), or a grant or refresh token
// with the client. The first call for an identity makes a Source (with
// the Pool's Config and options) and the Source's first Token call reads
// the store; later calls reuse it. Once a Source has found its record,
// other identities of the same record (its ID, the user name) share that
// Source, so one record has one Source, one in-memory token and one
// refresh per expiry in the process (and one per fleet, with the store's
// [tokenstore.Leaser]). A who with a grant code is a login: it gets its
// own Source, which exchanges the code and then replaces the record's
// previous Source.
//
// The Pool holds at most [WithPoolSize] Sources ([DefaultPoolSize],
// 1024) and drops the least recently used one first. Dropping loses
// nothing: the store holds every token (a Source whose last save failed
// is kept until it has saved). A dropped identity costs one store read on
// its next call. A Source or client the Pool handed out keeps working
// after it was dropped, only no longer shared.
type Pool struct {
	store tokenstore.Store
	cfg   Config
	o     options

	mu   sync.Mutex
	lru  list.List             // of *poolEntry, most recently used first
	keys map[string]*poolEntry // identity key -> entry
	ids  map[string]*poolEntry // record ID -> entry
}

// poolEntry is one Source and the identity keys that lead to it.
type poolEntry struct {
	src     *Source
	elem    *list.Element
	keys    []string
	base    string // the login's identity without its grant code, "" if none
	id      string // the record ID once known
	removed bool   // dropped or merged into another entry
}

// maxKeysPerSource bounds the identity keys that lead to one Source
// (its ID, user name, logins...); the oldest goes first.
const maxKeysPerSource = 8

// NewPool returns an empty Pool of Sources on store with cfg and opts
// (every option of [New], plus [WithPoolSize]). A nil store, a bad cfg or
// a nil or bad option gives an error wrapping [ErrInvalidConfig]. NewPool
// does not contact the store or the provider.
func NewPool(store tokenstore.Store, cfg Config, opts ...Option) (*Pool, error) {
	o, err := applyOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("tokensource: %w", err)
	}
	if store == nil {
		return nil, fmt.Errorf("tokensource: %w: nil store", ErrInvalidConfig)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("tokensource: %w", err)
	}
	return &Pool{store: store, cfg: cfg, o: o, keys: map[string]*poolEntry{}, ids: map[string]*poolEntry{}}, nil
}

// Token returns a valid access token for who, as [Source.TokenContext]
// does, through the Pool's Source for who.
func (p *Pool) Token(ctx context.Context, who *tokenstore.Token) (*oauth2.Token, error) {
	_, tok, err := p.get(ctx, who)
	return tok, err
}

// Source returns the Pool's Source for who, once it holds a valid token
// (it calls TokenContext, so a user without a token gives [ErrNoToken]
// here). Use it for Revoke or RefreshRejected; Token and Client cover the
// rest.
func (p *Pool) Source(ctx context.Context, who *tokenstore.Token) (*Source, error) {
	src, _, err := p.get(ctx, who)
	return src, err
}

// get returns who's Source and a valid token from it, and records the
// record ID the Source found.
func (p *Pool) get(ctx context.Context, who *tokenstore.Token) (*Source, *oauth2.Token, error) {
	e, id, err := p.entry(ctx, who)
	if err != nil {
		return nil, nil, err
	}
	tok, err := e.src.TokenContext(ctx)
	if err != nil {
		return nil, nil, err
	}
	if got, _ := tok.Extra(ExtraTokenID).(string); got != id {
		return p.learn(e, got), tok, nil
	}
	return e.src, tok, nil
}

// Client returns an HTTP client whose requests carry who's token and are
// retried once on a rejected token ([Source.Client]), once the Pool's
// Source for who holds a valid token.
func (p *Pool) Client(ctx context.Context, who *tokenstore.Token) (*http.Client, error) {
	src, err := p.Source(ctx, who)
	if err != nil {
		return nil, err
	}
	return src.Client(ctx), nil
}

// Len returns the number of Sources the Pool holds.
func (p *Pool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lru.Len()
}

// entry returns who's entry, made if needed, and the record ID it knows.
func (p *Pool) entry(ctx context.Context, who *tokenstore.Token) (*poolEntry, string, error) {
	if who == nil {
		return nil, "", fmt.Errorf("tokensource: %w: nil partial token", tokenstore.ErrInvalidToken)
	}
	key := identityKey(who, p.cfg)
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.keys[key]; e != nil {
		p.lru.MoveToFront(e.elem)
		observe.Emit(ctx, p.o.observer, observe.Event{Kind: observe.PoolHit, TokenID: e.id})
		return e, e.id, nil
	}
	observe.Emit(ctx, p.o.observer, observe.Event{Kind: observe.PoolMiss})
	src, err := newSource(p.store, who, p.cfg, p.o)
	if err != nil {
		return nil, "", err // not kept: New refuses who every time
	}
	e := &poolEntry{src: src}
	if who.GrantToken != "" && (who.ID != "" || who.UserName != "") {
		plain := who.Clone()
		plain.GrantToken = ""
		e.base = identityKey(plain, p.cfg)
	}
	e.elem = p.lru.PushFront(e)
	p.addKey(e, key)
	p.trim()
	return e, "", nil
}

// learn records that e's Source found record id. If another Source
// already serves that record, one of the two takes the other's
// identities: e if it has just logged in (exchanged a grant code: its
// token chain is the newest), else the other, which has served the record
// longer. A Source with an unsaved token is not merged away yet. learn
// returns the Source that serves e's identities afterwards.
func (p *Pool) learn(e *poolEntry, id string) *Source {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.removed || e.id == id {
		return e.src
	}
	if e.id != "" && p.ids[e.id] == e {
		delete(p.ids, e.id) // the record was deleted and saved anew
	}
	e.id = id
	other := p.ids[id]
	switch {
	case id == "" || other == nil || other == e:
	case e.src.loggedIn():
		if other.src.pending() {
			return e.src
		}
		e.src.supersede(other.src)
		p.merge(other, e)
	default:
		if e.src.pending() {
			return e.src
		}
		p.merge(e, other)
		return other.src
	}
	if id != "" {
		p.ids[id] = e
		p.addKey(e, idKey(id))
		if e.base != "" {
			// A login serves the user's plain identity from now on.
			p.addKey(e, e.base)
		}
	}
	return e.src
}

// merge gives from's identity keys to into and drops from.
func (p *Pool) merge(from, into *poolEntry) {
	for _, k := range from.keys {
		if p.keys[k] == from {
			p.addKey(into, k)
		}
	}
	if from.base != "" {
		p.addKey(into, from.base)
	}
	p.drop(from)
}

// addKey makes key lead to e.
func (p *Pool) addKey(e *poolEntry, key string) {
	if p.keys[key] == e {
		return
	}
	p.keys[key] = e
	e.keys = append(e.keys, key)
	if len(e.keys) > maxKeysPerSource {
		if old := e.keys[0]; p.keys[old] == e {
			delete(p.keys, old)
		}
		e.keys = e.keys[1:]
	}
}

// trim drops least recently used entries beyond the pool size, skipping
// Sources with an unsaved token and the entry just used.
func (p *Pool) trim() {
	for el := p.lru.Back(); el != nil && el != p.lru.Front() && p.lru.Len() > p.o.poolSize; {
		prev := el.Prev()
		if e := el.Value.(*poolEntry); !e.src.pending() {
			p.drop(e)
		}
		el = prev
	}
}

// drop removes e and the keys and ID that lead to it.
func (p *Pool) drop(e *poolEntry) {
	for _, k := range e.keys {
		if p.keys[k] == e {
			delete(p.keys, k)
		}
	}
	if e.id != "" && p.ids[e.id] == e {
		delete(p.ids, e.id)
	}
	p.lru.Remove(e.elem)
	e.keys, e.removed = nil, true
}

// identityKey returns the Pool key of who: its ID, else the lookup rule
// it would be found by (user name and client; access token; grant or
// refresh token and client), plus its grant code if it carries one (a
// login, which must be exchanged by its own Source). Secret values enter
// only as SHA-256 digests. A who that identifies nothing gets a key of its
// own; New then refuses it.
func identityKey(who *tokenstore.Token, cfg Config) string {
	client := who.ClientID
	accessOnly := who.ID == "" && who.UserName == "" && who.GrantToken == "" && who.RefreshToken == "" &&
		who.AccessToken != "" && who.ClientID == "" && who.ClientSecret == ""
	if client == "" && !accessOnly {
		client = cfg.ClientID
	}
	var key string
	switch {
	case who.ID != "":
		key = idKey(who.ID)
	case who.UserName != "":
		key = "user:" + strconv.Itoa(len(client)) + ":" + client + ":" + who.UserName
	case accessOnly:
		key = "access:" + digest(who.AccessToken)
	case who.GrantToken != "":
		return "grant:" + strconv.Itoa(len(client)) + ":" + client + ":" + digest(who.GrantToken)
	case who.RefreshToken != "":
		key = "refresh:" + strconv.Itoa(len(client)) + ":" + client + ":" + digest(who.RefreshToken)
	default:
		return "none"
	}
	if who.GrantToken != "" {
		key += "+grant:" + digest(who.GrantToken)
	}
	return key
}

func idKey(id string) string { return "id:" + id }

func digest(v string) string {
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:])
}

// pending reports whether the Source holds a token whose save failed.
func (s *Source) pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unsaved != nil
}

// loggedIn reports whether this Source exchanged a grant code.
func (s *Source) loggedIn() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exchanged
}

// supersede records that this Source's login replaced old's token chain:
// every refresh token old has seen counts as superseded here, so that a
// stale read returning one is read again rather than refreshed.
func (s *Source) supersede(old *Source) {
	old.mu.Lock()
	prev := slices.Clone(old.seen.d)
	old.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen.prepend(prev)
}
