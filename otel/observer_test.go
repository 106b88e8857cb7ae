package cloudtokensotel_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/oauth2"

	"github.com/cloudtokens/cloudtokens/oauthtest"
	"github.com/cloudtokens/cloudtokens/observe"
	cloudtokensotel "github.com/cloudtokens/cloudtokens/otel"
	"github.com/cloudtokens/cloudtokens/tokensource"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// The secrets and personal data of the tests: none may appear in any span
// or metric.
const (
	user         = "alice@example.com"
	clientID     = "client-1"
	clientSecret = "cs-SECRET-client"
	access1      = "at-SECRET-alice-1"
	access2      = "at-SECRET-alice-2"
	refresh1     = "rt-SECRET-alice-1"
)

var (
	opFind   = cloudtokensotel.AttrOperation.String("FindToken")
	opSave   = cloudtokensotel.AttrOperation.String("SaveToken")
	opRead   = cloudtokensotel.AttrOperation.String("Read")
	opUpdate = cloudtokensotel.AttrOperation.String("Update")
	ok       = cloudtokensotel.AttrOutcome.String("ok")
	docToken = cloudtokensotel.AttrDocumentKind.String("token")
	docIndex = cloudtokensotel.AttrDocumentKind.String("index")
)

func aliceToken() *tokenstore.Token {
	return &tokenstore.Token{UserName: user, ClientID: clientID, ClientSecret: clientSecret,
		AccessToken: access1, RefreshToken: refresh1, Expiry: time.Now().Add(time.Hour).UTC()}
}

// seeded returns a harness and a backend that holds aliceToken, saved
// without an Observer.
func seeded(t *testing.T) (*harness, *casstore.MemoryBackend, *tokenstore.Token) {
	t.Helper()
	b := casstore.NewMemoryBackend()
	tok := aliceToken()
	if err := casstore.New(b, casstore.Options{}).SaveToken(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	return newHarness(t), b, tok
}

func TestFind(t *testing.T) {
	ctx := t.Context()
	h, b, tok := seeded(t)
	s := h.store(b)

	rctx, root := h.root(ctx, "request")
	got, err := s.FindToken(rctx, &tokenstore.Token{UserName: user, ClientID: clientID})
	if err != nil || got.ID != tok.ID {
		t.Fatalf("FindToken: %v, %v", got, err)
	}
	if _, err := s.FindToken(rctx, &tokenstore.Token{UserName: "bob@example.com", ClientID: clientID}); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Fatalf("FindToken(bob): %v, want ErrNotFound", err)
	}
	root.End()

	spans := h.ended()
	finds := byName(spans, "cloudtokens.store.FindToken")
	if len(finds) != 2 {
		t.Fatalf("%d FindToken spans, want 2", len(finds))
	}
	var found, missing tracetest.SpanStub
	for _, f := range finds {
		if f.Parent.SpanID() != root.SpanContext().SpanID() {
			t.Errorf("FindToken span is not a child of the caller's span")
		}
		switch attr(f, cloudtokensotel.AttrOutcome) {
		case "ok":
			found = f
		case "not_found":
			missing = f
		}
	}
	if attr(found, cloudtokensotel.AttrTokenID) != tok.ID || attr(found, cloudtokensotel.AttrLayer) != "store" || found.Status.Code != codes.Unset {
		t.Errorf("found: token.id %q (want %q), layer %q, status %v", attr(found, cloudtokensotel.AttrTokenID), tok.ID,
			attr(found, cloudtokensotel.AttrLayer), found.Status)
	}
	if missing.Status.Code != codes.Unset || attr(missing, cloudtokensotel.AttrTokenID) != "" {
		t.Errorf("a lookup that finds nothing is an answer, not an error: status %v, token.id %q", missing.Status, attr(missing, cloudtokensotel.AttrTokenID))
	}
	reads := children(spans, found)
	var docs []string
	for _, r := range reads {
		if r.Name != "cloudtokens.backend.Read" || attr(r, cloudtokensotel.AttrOutcome) != "ok" || attr(r, cloudtokensotel.AttrLayer) != "backend" {
			t.Errorf("child of FindToken: %s outcome %s", r.Name, attr(r, cloudtokensotel.AttrOutcome))
		}
		docs = append(docs, attr(r, cloudtokensotel.AttrDocument))
	}
	if !slices.Contains(docs, "token-"+tok.ID) || !slices.ContainsFunc(docs, func(d string) bool { return strings.HasPrefix(d, "index-") }) {
		t.Errorf("FindToken read %v, want its index bucket and token-%s", docs, tok.ID)
	}

	if n := h.counter(t, cloudtokensotel.MetricStoreOperations, opFind, ok); n != 1 {
		t.Errorf("store.operations{FindToken, ok} = %d, want 1", n)
	}
	if n := h.counter(t, cloudtokensotel.MetricStoreOperations, opFind, cloudtokensotel.AttrOutcome.String("not_found")); n != 1 {
		t.Errorf("store.operations{FindToken, not_found} = %d, want 1", n)
	}
	if n, sum := h.histogram(t, cloudtokensotel.MetricStoreDuration, opFind); n != 2 || sum <= 0 {
		t.Errorf("store.operation.duration{FindToken}: count %d sum %v, want 2 and > 0", n, sum)
	}
	if n := h.counter(t, cloudtokensotel.MetricBackendRequests, opRead, ok, docToken); n != 1 {
		t.Errorf("backend.requests{Read, ok, token} = %d, want 1", n)
	}
	if n := h.counter(t, cloudtokensotel.MetricBackendRequests, opRead, docIndex); n < 2 {
		t.Errorf("backend.requests{Read, index} = %d, want at least 2 (one per lookup)", n)
	}
	reqs := h.counter(t, cloudtokensotel.MetricBackendRequests)
	if n, _ := h.histogram(t, cloudtokensotel.MetricBackendDuration); int64(n) != reqs || reqs != int64(len(byName(spans, "cloudtokens.backend.Read"))) {
		t.Errorf("backend: %d requests counted, %d timed, %d Read spans", reqs, n, len(byName(spans, "cloudtokens.backend.Read")))
	}
	h.assertNoSecrets(t, user, "bob@example.com", clientSecret, access1, refresh1)
}

func TestSave(t *testing.T) {
	ctx := t.Context()
	h := newHarness(t)
	b := casstore.NewMemoryBackend()
	s := h.store(b)

	rctx, root := h.root(ctx, "request")
	tok := aliceToken()
	if err := s.SaveToken(rctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveToken(rctx, &tokenstore.Token{ID: tok.ID, AccessToken: access2, Expiry: time.Now().Add(2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	root.End()

	spans := h.ended()
	saves := byName(spans, "cloudtokens.store.SaveToken")
	if len(saves) != 2 {
		t.Fatalf("%d SaveToken spans, want 2", len(saves))
	}
	slices.SortFunc(saves, func(a, b tracetest.SpanStub) int { return a.StartTime.Compare(b.StartTime) })
	insert, update := saves[0], saves[1]
	for _, sv := range saves {
		// The insert learns its ID only at its end: the span still has it.
		if attr(sv, cloudtokensotel.AttrTokenID) != tok.ID || attr(sv, cloudtokensotel.AttrOutcome) != "ok" {
			t.Errorf("SaveToken span: token.id %q (want %q), outcome %q", attr(sv, cloudtokensotel.AttrTokenID), tok.ID, attr(sv, cloudtokensotel.AttrOutcome))
		}
	}
	// Every backend request of a save is nested in it.
	creates, updates := 0, 0
	for _, s := range spans {
		if attr(s, cloudtokensotel.AttrLayer) != "backend" {
			continue
		}
		if !descends(spans, s, insert) && !descends(spans, s, update) {
			t.Errorf("backend span %s (%s) is outside the saves", s.Name, attr(s, cloudtokensotel.AttrDocument))
		}
		doc := attr(s, cloudtokensotel.AttrDocument)
		switch {
		case s.Name == "cloudtokens.backend.Create" && doc == "token-"+tok.ID && descends(spans, s, insert):
			creates++
		case s.Name == "cloudtokens.backend.Update" && doc == "token-"+tok.ID && descends(spans, s, update):
			updates++
		}
	}
	if creates != 1 || updates != 1 {
		t.Errorf("the insert created token-%s %d times, the update updated it %d times; want 1 and 1", tok.ID, creates, updates)
	}
	if n := h.counter(t, cloudtokensotel.MetricStoreOperations, opSave, ok); n != 2 {
		t.Errorf("store.operations{SaveToken, ok} = %d, want 2", n)
	}
	if n := h.counter(t, cloudtokensotel.MetricBackendRequests, cloudtokensotel.AttrOperation.String("Create"), ok, docToken); n != 1 {
		t.Errorf("backend.requests{Create, ok, token} = %d, want 1", n)
	}
	if n := h.counter(t, cloudtokensotel.MetricBackendRequests, opUpdate, ok, docToken); n != 1 {
		t.Errorf("backend.requests{Update, ok, token} = %d, want 1", n)
	}
	if n := h.counter(t, cloudtokensotel.MetricBackendConflicts); n != 0 {
		t.Errorf("backend.conflicts = %d with one writer", n)
	}
	h.assertNoSecrets(t, user, clientSecret, access1, access2, refresh1)
}

// TestConflictRetry races two stores (two processes) on one document: the
// second one's compare-and-swap loses, and its save retries.
func TestConflictRetry(t *testing.T) {
	t.Run("token", func(t *testing.T) {
		ctx := t.Context()
		h, b, tok := seeded(t)
		other := h.store(b)
		race := &raceBackend{Backend: b,
			match: func(name string) bool { return name == casstore.TokenName(tok.ID) },
			before: func() {
				octx, sp := h.root(context.Background(), "process 1")
				defer sp.End()
				if err := other.SaveToken(octx, &tokenstore.Token{ID: tok.ID, AccessToken: "at-SECRET-other"}); err != nil {
					t.Error(err)
				}
			}}
		s := h.store(race)
		rctx, root := h.root(ctx, "process 2")
		if err := s.SaveToken(rctx, &tokenstore.Token{ID: tok.ID, AccessToken: access2}); err != nil {
			t.Fatal(err)
		}
		root.End()
		if got, _ := s.FindTokenByID(ctx, tok.ID); got == nil || got.AccessToken != access2 {
			t.Fatalf("the retried save did not land: %v", got)
		}

		spans := h.ended()
		var save tracetest.SpanStub
		for _, sv := range byName(spans, "cloudtokens.store.SaveToken") {
			if sv.Parent.SpanID() == root.SpanContext().SpanID() {
				save = sv
			}
		}
		if !slices.Contains(eventNames(save), "cloudtokens.retry") || attr(save, cloudtokensotel.AttrOutcome) != "ok" {
			t.Fatalf("process 2's save: events %v, outcome %q; want a retry and ok", eventNames(save), attr(save, cloudtokensotel.AttrOutcome))
		}
		var outcomes []string
		for _, c := range children(spans, save) {
			if c.Name == "cloudtokens.backend.Update" {
				outcomes = append(outcomes, attr(c, cloudtokensotel.AttrOutcome))
				if attr(c, cloudtokensotel.AttrOutcome) == "conflict" && c.Status.Code != codes.Unset {
					t.Errorf("a lost compare-and-swap is the engine's normal work, not a span error: %v", c.Status)
				}
			}
		}
		if !slices.Equal(outcomes, []string{"conflict", "ok"}) {
			t.Errorf("process 2's updates ended %v, want [conflict ok]", outcomes)
		}
		if n := h.counter(t, cloudtokensotel.MetricBackendConflicts, opUpdate, docToken); n != 1 {
			t.Errorf("backend.conflicts{Update, token} = %d, want 1", n)
		}
		if n := h.counter(t, cloudtokensotel.MetricBackendRequests, opUpdate, cloudtokensotel.AttrOutcome.String("conflict")); n != 1 {
			t.Errorf("backend.requests{Update, conflict} = %d, want 1", n)
		}
		if n := h.counter(t, cloudtokensotel.MetricStoreRetries, opSave); n != 1 {
			t.Errorf("store.retries{SaveToken} = %d, want 1", n)
		}
		if n := h.counter(t, cloudtokensotel.MetricStoreOperations, opSave, ok); n != 2 {
			t.Errorf("store.operations{SaveToken, ok} = %d, want 2 (one per process)", n)
		}
		h.assertNoSecrets(t, user, clientSecret, access1, access2, refresh1, "at-SECRET-other")
	})

	t.Run("index bucket", func(t *testing.T) {
		ctx := t.Context()
		h, b, _ := seeded(t)
		other := h.store(b)
		race := &raceBackend{Backend: b,
			match: func(name string) bool { return strings.HasPrefix(name, "index-") },
			before: func() {
				octx, sp := h.root(context.Background(), "process 1")
				defer sp.End()
				if err := other.SaveToken(octx, &tokenstore.Token{UserName: "carol@example.com", ClientID: clientID, RefreshToken: "rt-SECRET-carol"}); err != nil {
					t.Error(err)
				}
			}}
		s := h.store(race)
		rctx, root := h.root(ctx, "process 2")
		if err := s.SaveToken(rctx, &tokenstore.Token{UserName: "dave@example.com", ClientID: clientID, RefreshToken: "rt-SECRET-dave"}); err != nil {
			t.Fatal(err)
		}
		root.End()
		for _, u := range []string{"carol@example.com", "dave@example.com"} {
			if _, err := s.FindToken(ctx, &tokenstore.Token{UserName: u, ClientID: clientID}); err != nil {
				t.Fatalf("%s: %v", u, err)
			}
		}

		spans := h.ended()
		var save tracetest.SpanStub
		for _, sv := range byName(spans, "cloudtokens.store.SaveToken") {
			if sv.Parent.SpanID() == root.SpanContext().SpanID() {
				save = sv
			}
		}
		if !slices.Contains(eventNames(save), "cloudtokens.bucket_retry") {
			t.Fatalf("process 2's save: events %v, want a bucket_retry", eventNames(save))
		}
		if n := h.counter(t, cloudtokensotel.MetricBucketRetries, opSave); n < 1 {
			t.Errorf("index.bucket_retries{SaveToken} = %d, want at least 1", n)
		}
		if n := h.counter(t, cloudtokensotel.MetricBackendConflicts, docIndex); n < 1 {
			t.Errorf("backend.conflicts{index} = %d, want at least 1", n)
		}
		h.assertNoSecrets(t, user, "carol@example.com", "dave@example.com", "rt-SECRET-carol", "rt-SECRET-dave", clientSecret, access1, refresh1)
	})
}

// gate holds the first request until release is closed, and closes
// arrived when it comes.
type gate struct {
	next             http.RoundTripper
	arrived, release chan struct{}
	once             sync.Once
}

func (g *gate) RoundTrip(r *http.Request) (*http.Response, error) {
	g.once.Do(func() { close(g.arrived) })
	<-g.release
	return g.next.RoundTrip(r)
}

// onLeaseWait forwards to an Observer and closes waiting when a LeaseWait
// starts.
type onLeaseWait struct {
	observe.Observer
	waiting chan struct{}
	once    sync.Once
}

func (w *onLeaseWait) Start(ctx context.Context, op observe.Op) context.Context {
	ctx = w.Observer.Start(ctx, op)
	if op.Kind == observe.LeaseWait {
		w.once.Do(func() { close(w.waiting) })
	}
	return ctx
}

// TestRefreshWithLeaseWait: two processes (two Sources on two stores over
// one backend) find the token expired; A takes the lease and refreshes, B
// waits for A's token.
func TestRefreshWithLeaseWait(t *testing.T) {
	ctx := t.Context()
	h := newHarness(t)
	provider := oauthtest.Start(t)
	cfg := tokensource.Config{TokenURL: provider.TokenURL, ClientID: provider.ClientID(),
		ClientSecret: provider.ClientSecret(), AuthStyle: oauth2.AuthStyleInParams}
	b := casstore.NewMemoryBackend()

	// A login, unobserved, then an access token that has expired.
	setup := casstore.New(b, casstore.Options{})
	grant := provider.IssueGrant(user)
	login, err := tokensource.New(setup, &tokenstore.Token{UserName: user, GrantToken: grant}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := login.TokenContext(ctx); err != nil {
		t.Fatal(err)
	}
	old, err := setup.FindToken(ctx, &tokenstore.Token{UserName: user, ClientID: cfg.ClientID})
	if err != nil {
		t.Fatal(err)
	}
	old.Expiry = time.Now().Add(-time.Minute)
	if err := setup.SaveToken(ctx, old); err != nil {
		t.Fatal(err)
	}

	g := &gate{next: http.DefaultTransport, arrived: make(chan struct{}), release: make(chan struct{})}
	httpA := &http.Client{Transport: otelhttp.NewTransport(g, otelhttp.WithTracerProvider(h.tp), otelhttp.WithMeterProvider(h.mp))}
	poll := tokensource.WithLeasePoll(5*time.Millisecond, 50*time.Millisecond)
	srcA, err := tokensource.New(h.store(b), &tokenstore.Token{UserName: user}, cfg,
		tokensource.WithObserver(h.obs), tokensource.WithHTTPClient(httpA), poll)
	if err != nil {
		t.Fatal(err)
	}
	waitB := &onLeaseWait{Observer: h.obs, waiting: make(chan struct{})}
	srcB, err := tokensource.New(h.store(b), &tokenstore.Token{UserName: user}, cfg, tokensource.WithObserver(waitB), poll)
	if err != nil {
		t.Fatal(err)
	}

	type result struct {
		tok *oauth2.Token
		err error
	}
	ctxA, rootA := h.root(ctx, "process A")
	ctxB, rootB := h.root(ctx, "process B")
	resA, resB := make(chan result, 1), make(chan result, 1)
	go func() { tok, err := srcA.TokenContext(ctxA); resA <- result{tok, err} }()
	<-g.arrived // A holds the lease and is asking the provider
	go func() { tok, err := srcB.TokenContext(ctxB); resB <- result{tok, err} }()
	select {
	case <-waitB.waiting: // B found the lease taken
	case r := <-resB:
		t.Fatalf("B returned without waiting for the lease: %v, %v", r.tok, r.err)
	}
	close(g.release)
	a, bb := <-resA, <-resB
	rootA.End()
	rootB.End()
	if a.err != nil || bb.err != nil {
		t.Fatalf("A: %v; B: %v", a.err, bb.err)
	}
	if a.tok.AccessToken != bb.tok.AccessToken || a.tok.AccessToken == old.AccessToken {
		t.Fatalf("A and B got different or old access tokens")
	}
	if n := provider.Refreshes(); n != 1 {
		t.Fatalf("%d refreshes at the provider, want 1", n)
	}

	spans := h.ended()
	inTrace := func(root trace.Span) tracetest.SpanStubs {
		var out tracetest.SpanStubs
		for _, s := range spans {
			if s.SpanContext.TraceID() == root.SpanContext().TraceID() {
				out = append(out, s)
			}
		}
		return out
	}
	spansA, spansB := inTrace(rootA), inTrace(rootB)

	// A: one Refresh, which took the lease at once, asked the provider
	// (with otelhttp's client span inside) and saved, every backend
	// request nested in a store operation.
	refA := byName(spansA, "cloudtokens.source.Refresh")
	if len(refA) != 1 {
		t.Fatalf("A: %d Refresh spans, want 1", len(refA))
	}
	if attr(refA[0], cloudtokensotel.AttrOutcome) != "ok" || attr(refA[0], cloudtokensotel.AttrTokenID) != old.ID ||
		!slices.Contains(eventNames(refA[0]), "cloudtokens.lease_acquire") {
		t.Errorf("A's Refresh: outcome %q, token.id %q (want %q), events %v", attr(refA[0], cloudtokensotel.AttrOutcome),
			attr(refA[0], cloudtokensotel.AttrTokenID), old.ID, eventNames(refA[0]))
	}
	var kidsA []string
	for _, c := range children(spansA, refA[0]) {
		kidsA = append(kidsA, c.Name)
	}
	for _, want := range []string{"cloudtokens.store.AcquireLease", "cloudtokens.store.FindTokenByID", "cloudtokens.source.TokenRequest", "cloudtokens.store.SaveTokenLeased"} {
		if !slices.Contains(kidsA, want) {
			t.Errorf("A's Refresh has children %v, want %s among them", kidsA, want)
		}
	}
	req := byName(spansA, "cloudtokens.source.TokenRequest")
	if len(req) != 1 || attr(req[0], cloudtokensotel.AttrGrantType) != "refresh_token" || attr(req[0], cloudtokensotel.AttrOutcome) != "ok" {
		t.Fatalf("A's token requests: %d, want 1 refresh_token request that succeeded", len(req))
	}
	httpSpans := children(spansA, req[0])
	if len(httpSpans) != 1 || httpSpans[0].SpanKind != trace.SpanKindClient {
		t.Errorf("the TokenRequest has %d children, want otelhttp's client span", len(httpSpans))
	}
	for _, s := range append(spansA, spansB...) {
		if attr(s, cloudtokensotel.AttrLayer) == "backend" && attr(spanByID(spans, s.Parent.SpanID()), cloudtokensotel.AttrLayer) != "store" {
			t.Errorf("backend span %s is not a child of a store operation", s.Name)
		}
	}

	// B: one Refresh holding a LeaseWait that ended ok, polls inside it,
	// and no token request.
	refB := byName(spansB, "cloudtokens.source.Refresh")
	waits := byName(spansB, "cloudtokens.source.LeaseWait")
	if len(refB) != 1 || len(waits) != 1 || waits[0].Parent.SpanID() != refB[0].SpanContext.SpanID() {
		t.Fatalf("B: %d Refresh and %d LeaseWait spans, want one LeaseWait inside one Refresh", len(refB), len(waits))
	}
	if attr(waits[0], cloudtokensotel.AttrOutcome) != "ok" || attr(refB[0], cloudtokensotel.AttrOutcome) != "ok" {
		t.Errorf("B: LeaseWait %q, Refresh %q, want ok", attr(waits[0], cloudtokensotel.AttrOutcome), attr(refB[0], cloudtokensotel.AttrOutcome))
	}
	if polls := children(spansB, waits[0]); !slices.ContainsFunc(polls, func(s tracetest.SpanStub) bool {
		return s.Name == "cloudtokens.store.FindTokenByID" || s.Name == "cloudtokens.store.FindToken"
	}) {
		t.Errorf("B's LeaseWait has no store reads inside it")
	}
	if n := len(byName(spansB, "cloudtokens.source.TokenRequest")); n != 0 {
		t.Errorf("B made %d token requests, want 0", n)
	}

	src := func(op string) attribute.KeyValue { return cloudtokensotel.AttrOperation.String(op) }
	if n := h.counter(t, cloudtokensotel.MetricSourceOperations, src("Refresh"), ok); n != 2 {
		t.Errorf("source.operations{Refresh, ok} = %d, want 2", n)
	}
	if n := h.counter(t, cloudtokensotel.MetricSourceOperations, src("LeaseWait"), ok); n != 1 {
		t.Errorf("source.operations{LeaseWait, ok} = %d, want 1", n)
	}
	if n, sum := h.histogram(t, cloudtokensotel.MetricSourceDuration, src("LeaseWait")); n != 1 || sum <= 0 {
		t.Errorf("source.operation.duration{LeaseWait}: count %d sum %v", n, sum)
	}
	if n := h.counter(t, cloudtokensotel.MetricSourceOperations, src("TokenRequest"), ok, cloudtokensotel.AttrGrantType.String("refresh_token")); n != 1 {
		t.Errorf("source.operations{TokenRequest, refresh_token, ok} = %d, want 1", n)
	}
	if n := h.counter(t, cloudtokensotel.MetricLeaseAcquisitions, cloudtokensotel.AttrTakeover.Bool(false)); n != 1 {
		t.Errorf("lease.acquisitions{takeover=false} = %d, want 1", n)
	}
	if n := h.counter(t, cloudtokensotel.MetricStoreOperations, src("AcquireLease"), ok); n < 2 {
		t.Errorf("store.operations{AcquireLease, ok} = %d, want A's and B's at least", n)
	}

	now, err := setup.FindTokenByID(ctx, old.ID)
	if err != nil {
		t.Fatal(err)
	}
	h.assertNoSecrets(t, user, grant, provider.ClientSecret(), old.AccessToken, old.RefreshToken, now.AccessToken, now.RefreshToken)
}

func spanByID(spans tracetest.SpanStubs, id trace.SpanID) tracetest.SpanStub {
	for _, s := range spans {
		if s.SpanContext.SpanID() == id {
			return s
		}
	}
	return tracetest.SpanStub{}
}

// TestErrorMessages: an ambiguous query's error names the user; by
// default only its outcome is recorded, with WithErrorMessages the
// message too (which the secret scan then catches).
func TestErrorMessages(t *testing.T) {
	for _, messages := range []bool{false, true} {
		t.Run(fmt.Sprint("messages=", messages), func(t *testing.T) {
			ctx := t.Context()
			h := newHarness(t, cloudtokensotel.WithErrorMessages(messages))
			s := h.store(casstore.NewMemoryBackend())
			for _, c := range []string{"client-1", "client-2"} {
				if err := s.SaveToken(ctx, &tokenstore.Token{UserName: user, ClientID: c, RefreshToken: "rt-SECRET-" + c}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.FindToken(ctx, &tokenstore.Token{UserName: user}); !errors.Is(err, tokenstore.ErrAmbiguous) || !strings.Contains(err.Error(), user) {
				t.Fatalf("FindToken: %v, want ErrAmbiguous naming the user", err)
			}
			finds := byName(h.ended(), "cloudtokens.store.FindToken")
			if len(finds) != 1 || finds[0].Status.Code != codes.Error || attr(finds[0], cloudtokensotel.AttrErrorType) != "invalid" {
				t.Fatalf("FindToken spans: %+v", finds)
			}
			desc := finds[0].Status.Description
			if messages {
				if !strings.Contains(desc, user) {
					t.Errorf("status %q: WithErrorMessages(true) records the message", desc)
				}
				// The scan the other tests rely on sees it.
				if found := h.secretsIn(t, user); len(found) == 0 {
					t.Error("the secret scan missed the user name in the error message")
				}
				return
			}
			if desc != "invalid" {
				t.Errorf("status %q, want the outcome only", desc)
			}
			h.assertNoSecrets(t, user, "rt-SECRET-client-1", "rt-SECRET-client-2")
		})
	}
}

func TestNewValidates(t *testing.T) {
	for name, opts := range map[string][]cloudtokensotel.Option{
		"nil option":          {nil},
		"nil tracer provider": {cloudtokensotel.WithTracerProvider(nil)},
		"nil meter provider":  {cloudtokensotel.WithMeterProvider(nil)},
	} {
		if _, err := cloudtokensotel.New(opts...); !errors.Is(err, cloudtokensotel.ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", name, err)
		}
	}
	if _, err := cloudtokensotel.New(); err != nil {
		t.Errorf("New() with the global providers: %v", err)
	}
}

func TestOutcome(t *testing.T) {
	for err, want := range map[error]string{
		nil:                    "ok",
		tokenstore.ErrNotFound: "not_found",
		fmt.Errorf("x: %w", tokenstore.ErrConflict): "conflict",
		casstore.ErrVersionMismatch:                 "conflict",
		casstore.ErrDeleted:                         "conflict",
		tokenstore.ErrAmbiguous:                     "invalid",
		tokenstore.ErrUnsupportedVersion:            "malformed",
		context.Canceled:                            "canceled",
		context.DeadlineExceeded:                    "timeout",
		tokensource.ErrStaleRead:                    "stale_read",
		fmt.Errorf("%w: %w", tokensource.ErrBackingOff, tokensource.ErrRefreshRevoked): "backing_off",
		tokensource.ErrRefreshRevoked:                                        "revoked",
		tokensource.ErrAccessDenied:                                          "access_denied",
		tokensource.ErrInvalidClient:                                         "invalid_client",
		tokensource.ErrLeaseTimeout:                                          "lease_timeout",
		fmt.Errorf("%w: %w", tokensource.ErrNoToken, tokenstore.ErrNotFound): "no_token",
		errors.New("connection reset"):                                       "error",
	} {
		if got := cloudtokensotel.Outcome(err); got != want {
			t.Errorf("Outcome(%v) = %q, want %q", err, got, want)
		}
	}
}
