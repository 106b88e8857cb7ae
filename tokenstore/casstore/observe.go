package casstore

import (
	"context"
	"strings"
	"time"

	"github.com/cloudtokens/cloudtokens/observe"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// Observability: with Options.Observer set, every exported method of a
// Store is an operation (observe.LayerStore), every request to the
// backend one nested in it (observe.LayerBackend, reported by the
// decorator below, which New puts around the backend), and the engine
// reports its retries, lost bucket writes, fences and splits as events.

// start reports the start of store operation kind on token id ("" for
// none) to the Observer, if any.
func (s *Store) start(ctx context.Context, kind observe.Kind, id string) (context.Context, observe.Span) {
	return observe.Start(ctx, s.opts.Observer, observe.Op{Kind: kind, TokenID: id})
}

// emit reports ev to the Observer, if any.
func (s *Store) emit(ctx context.Context, ev observe.Event) {
	observe.Emit(ctx, s.opts.Observer, ev)
}

// keyKind names an index key kind for observe.Event.Key: "user_name",
// "grant_token", "refresh_token", "access_token" or "id".
func keyKind(kind string) string { return strings.ReplaceAll(keyName(kind), " ", "_") }

// observeBackend returns b with every request reported to o. The result
// implements Lister exactly when b does (New reads b's Quotas itself).
func observeBackend(b Backend, o observe.Observer) Backend {
	ob := observedBackend{b: b, o: o}
	if l, ok := b.(Lister); ok {
		return observedLister{ob, l}
	}
	return ob
}

type observedBackend struct {
	b Backend
	o observe.Observer
}

func (ob observedBackend) Read(ctx context.Context, name string) (_ Object, err error) {
	ctx, span := observe.Start(ctx, ob.o, observe.Op{Kind: observe.Read, Document: name, TokenID: tokenIDOf(name)})
	defer span.End(&err)
	return ob.b.Read(ctx, name)
}

func (ob observedBackend) ReadMany(ctx context.Context, names []string) (_ []Result, err error) {
	ctx, span := observe.Start(ctx, ob.o, observe.Op{Kind: observe.ReadMany, Documents: len(names)})
	defer span.End(&err)
	return ob.b.ReadMany(ctx, names)
}

func (ob observedBackend) Create(ctx context.Context, name string, value []byte) (_ string, err error) {
	ctx, span := observe.Start(ctx, ob.o, observe.Op{Kind: observe.Create, Document: name, TokenID: tokenIDOf(name)})
	defer span.End(&err)
	return ob.b.Create(ctx, name, value)
}

func (ob observedBackend) Update(ctx context.Context, name string, value []byte, version string) (_ string, err error) {
	ctx, span := observe.Start(ctx, ob.o, observe.Op{Kind: observe.Update, Document: name, TokenID: tokenIDOf(name)})
	defer span.End(&err)
	return ob.b.Update(ctx, name, value, version)
}

func (ob observedBackend) Delete(ctx context.Context, name string) (err error) {
	ctx, span := observe.Start(ctx, ob.o, observe.Op{Kind: observe.Delete, Document: name, TokenID: tokenIDOf(name)})
	defer span.End(&err)
	return ob.b.Delete(ctx, name)
}

type observedLister struct {
	observedBackend
	l Lister
}

func (ol observedLister) List(ctx context.Context) (_ []string, err error) {
	ctx, span := observe.Start(ctx, ol.o, observe.Op{Kind: observe.List})
	defer span.End(&err)
	return ol.l.List(ctx)
}

type observedVersionLeaser struct {
	l VersionLeaser
	o observe.Observer
}

func (ol observedVersionLeaser) LeaseVersion(ctx context.Context, name, version string) (_ bool, _ time.Time, err error) {
	ctx, span := observe.Start(ctx, ol.o, observe.Op{Kind: observe.LeaseVersion, Document: name, TokenID: tokenIDOf(name)})
	defer span.End(&err)
	return ol.l.LeaseVersion(ctx, name, version)
}

// tokenIDOf returns the token ID of a token document's name, else "".
func tokenIDOf(name string) string {
	const p = "token-"
	if len(name) > len(p) && name[:len(p)] == p {
		return name[len(p):]
	}
	return ""
}

// tokenIDOfToken returns t's ID, or "" for a nil t.
func tokenIDOfToken(t *tokenstore.Token) string {
	if t == nil {
		return ""
	}
	return t.ID
}
