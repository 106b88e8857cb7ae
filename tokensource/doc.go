// Package tokensource drives a token kept in any [tokenstore.Store]
// through its OAuth 2.0 lifecycle: an [oauth2.TokenSource] that exchanges
// the grant code, refreshes the token before it expires, saves every new
// token before returning it, and revokes it on logout. It is the
// persistence x/oauth2 lacks (its refresh keeps the new token in memory
// only, golang/oauth2 issue #84), with the behaviour of the Zoho SDKs'
// OAuthToken and fixes for their flaws.
//
// # One Pool per process
//
// A server or a serverless function asks for the same users' tokens over
// and over. Keep one [Pool] for the whole process (a package-level
// variable, or one built in main before lambda.Start) and ask it for
// each request's token:
//
//	var pool *tokensource.Pool // built once in main: tokensource.NewPool(store, cfg)
//
//	func handle(ctx context.Context, ev Event) (Response, error) {
//		client, err := pool.Client(ctx, &tokenstore.Token{UserName: ev.User})
//		...
//	}
//
// A warm token then costs no store call and no provider call; an expiry
// costs one refresh per process, and one per fleet with the store's lease
// (below). A [Source] made with [New] per request instead reads the store
// on every request (1 GetSecretValue on AWS with the index cache, 2
// without). The Pool keeps one Source per record, in an LRU of
// [WithPoolSize] Sources ([DefaultPoolSize], 1024; about 1.5 KiB each,
// measured by BenchmarkPoolMemory, so 1.5 MiB when full); see [Pool] for
// how identities (ID, user name, grant code) map to records.
//
// # Lifecycle
//
// [New] takes a store, a partial token that identifies the record (its
// ID, its user name, its grant code or its refresh token, as in the Zoho
// flow) and the client [Config]. [Source.Token] (or [Source.TokenContext]):
//
//  1. serves the token the Source holds while at least the refresh margin
//     ([WithRefreshMargin], default 5 s as in Zoho) of validity is left,
//     without reading the store;
//  2. otherwise reads the record ([tokenstore.Store.FindTokenByID] once
//     the ID is known, else FindToken with the partial token) and merges
//     it with the partial token: the caller's identity and client values
//     win, as in [tokenstore.Merge], while the stored access token,
//     expiry, refresh token and API domain win, since the store holds the
//     newest generation;
//  3. with neither an access nor a refresh token, exchanges the grant
//     code (grant_type=authorization_code);
//  4. with less than the margin left, refreshes (grant_type=refresh_token);
//  5. saves the new token with SaveToken (SaveTokenLeased, see "The
//     owner's refresh") before returning it. If the save fails the error
//     is returned and the token kept in memory; the next call saves it
//     first. The save runs even if the caller's context ends, because a
//     rotated refresh token must not be lost.
//
// The returned [oauth2.Token] carries the access token, the expiry and, in
// Extra, the API domain ([ExtraAPIDomain]) and record ID ([ExtraTokenID]);
// never the refresh token.
//
// A margin of half the token's lifetime or more would refresh the token at
// least twice per lifetime, and one above the lifetime on every call (the
// default 5 s margin on a 3 s token). The Source then uses a tenth of the
// lifetime as its margin and logs a warning once. The lifetime is the one
// the provider stated in the Source's last answer, else in this process's
// last answer for the same token URL and client; until the process has
// seen one, the configured margin applies.
//
// # One refresh for many goroutines and processes
//
// Inside a process, concurrent calls share one read and one refresh
// ([golang.org/x/sync/singleflight]): N goroutines asking for an expiring
// token cause one refresh.
//
// Across processes (several Lambda instances, say) the Source re-reads
// the store before refreshing. If the store implements
// [tokenstore.Leaser] (every casstore-based store and the
// [tokenstore.MemoryStore] do), it takes the lease on the token's ID
// (holder: a random ID per Source; TTL [WithLeaseTTL], default 30 s),
// re-reads the token once it holds the lease (the previous holder may
// have refreshed it already), refreshes and saves, which releases the
// lease. The store calls of a refresh are therefore: 1 read (still
// expired? refreshed elsewhere?), the lease, 1 read under the lease, the
// save. A process that does not get the lease polls the store (20 ms
// doubling to 500 ms, with jitter; [WithLeasePoll]) and takes the winner's
// token as soon as it is stored, without refreshing; when the lease lapses
// (a holder that crashed) the next poll takes it over. A waiter gives up
// with [ErrLeaseTimeout] after twice the lease TTL. Eight processes
// hitting one expired token therefore cause exactly one refresh at the
// provider, also when the provider rotates refresh tokens
// ([github.com/cloudtokens/cloudtokens/tokensource/tokensourcetest.Run]
// proves it on every store).
//
// A process that cannot get the lease although its token is still valid
// for longer than it would wait (another process owns the lease, below,
// and this one has a larger margin) serves that token instead of
// waiting.
//
// # The owner's refresh
//
// On a store that also implements [tokenstore.LeaseSaver] (every
// casstore-based store and the [tokenstore.MemoryStore]), the lease costs
// no write of its own in the usual case, a long-running process (a
// [Pool]) that refreshes its users' tokens again and again: the save of
// a new token (a refresh or a login) gives the saving Source the lease on
// the record in the same write, until expiry - margin (the margin in
// effect, after the clamp), and the Source remembers it owns the next
// refresh. With margin m, lease TTL L and [MaxClockSkew] S:
//
//   - the other processes refresh when less than m is left, at
//     expiry - m, exactly when that lease lapses; before that their
//     AcquireLease fails and they wait as above (or serve their still
//     valid token);
//   - the owner refreshes early, in its window: from expiry - lead, with
//     lead = m + L + S + 1 minute (at most half the lifetime), until
//     expiry - m - L - S, while its lease has at least a lease TTL and the
//     clock skew left. Defaults: from 105 s to 45 s before expiry; tokens
//     of 90 s or less get no window and no such lease. In the window a
//     call reads the record (1 read, as under a lease) and refreshes
//     without taking the lease only if the record is exactly what the
//     owner saved; its save carries its lease again, so a busy owner
//     keeps owning. A refresh in the window that fails serves the valid
//     token and backs off. A token the API rejects (HTTP 401) the owner
//     refreshes the same way at any time before that end;
//   - an owner idle through its window lets the lease lapse, and whoever
//     needs the token first after expiry - m refreshes it with the usual
//     lease (and owns it from then on): no one waits longer than before.
//
// A refresh then costs 1 read and 1 write instead of 2 reads and 2
// writes (on AWS 1 secret version instead of 2; on GCP, whose lease
// destroys a version instead of writing one, the same 3 write requests
// and 2 access requests fewer).
//
// Why one expiry cannot be refreshed twice. A refresh token is sent only
// by a Source that took the lease with AcquireLease, or by the owner,
// whose save wrote the record with its lease until U. Any other process
// can take the lease only once U has passed by its clock (the lease is in
// the record, and AcquireLease is a compare-and-swap against the stored
// state), or after another save of the record ended the lease. The owner
// starts before U - L - S by its clock: with clocks that differ by less
// than S, it has at least a lease TTL (what a normal holder gets) to call
// the provider before anyone else can. Every other save (a new login, a
// refresh by another process, a SaveToken that changes something) changes
// the record, so the owner's read shows it and the owner takes the usual
// path, with its own AcquireLease, which the compare-and-swap orders
// against everyone else's. Two owners cannot coexist: the record names one holder and
// holds the token one save wrote. The assumptions: the clocks of the
// processes sharing a store differ by less than [MaxClockSkew] (10 s;
// NTP keeps cloud hosts within milliseconds), and a refresh takes less
// than the lease TTL (as for every lease). Two limits follow from the
// store's interface: a save that changes nothing in the record also ends
// the lease, unseen by the owner's read; and on a store whose reads may
// lag another process's write (GCP Secret Manager aliases), the owner can
// miss a new login saved within the lag, refresh the old chain once and
// save it over the login. Neither sends a refresh token twice unless
// another process also refreshes before U, which only a token rejected
// by the API or a larger margin makes it do.
//
// A process that gets a token rejected by the API while another process
// owns the lease waits for the owner's next token like any lease waiter,
// and fails with [ErrLeaseTimeout] if none comes before its wait ends.
//
// A Source built with a clock of its own ([WithClock]) times these
// leases by it, so the store must judge leases by the same clock (in
// production both are [time.Now]; in tests, see
// [tokenstore.NewMemoryStoreWithClock] and casstore's Options.Clock). A
// store wrapper that embeds a store and overrides SaveToken must override
// SaveTokenLeased too, or hide it.
//
// Without a Leaser (or [WithoutLease]) the protocol is best effort: the
// refresh follows a fresh read; a refresh the provider rejects because
// another process rotated the refresh token first resolves to that
// process's stored token; and a refresh without rotation does not
// overwrite a fresh token another process stored meanwhile. Two
// processes may still both refresh.
//
// # Stale reads and refresh token reuse
//
// Providers that rotate refresh tokens treat a rotated-out one sent again
// as theft: ORY Hydra then revokes the whole chain, the newest tokens
// included. A Source never sends a refresh token older than the newest it
// has seen: it remembers the last 16 refresh tokens it has seen (as
// SHA-256 digests), and a read that returns one of the older ones (an
// eventually consistent store answering from before the last write) is
// read again, paced as lease polls are, for up to [WithStaleReadWait]
// (default 10 s), after which Token fails with [ErrStaleRead] (which
// matches [tokenstore.ErrConflict]) without calling the provider. A
// Pool's login hands the replaced Source's memory to the new one. A read
// older than anything the Source has seen (a fresh process on a stale
// replica) is the store's to prevent: the lease itself is a conditional
// write checked against the authoritative state, and the stores keep
// their reads monotonic.
//
// # Client authentication
//
// [Config.AuthStyle]'s zero value detects the style: the first request of
// the process for a token URL and client sends the credentials with HTTP
// Basic (client_secret_basic, RFC 6749 section 2.3.1, ORY Hydra's
// default), and if the provider answers invalid_client (or HTTP 401),
// once more in the form (client_secret_post, Zoho's style). The answer is
// remembered for the process, as x/oauth2 does: at most one extra request
// per process and client, and no backoff for it. Only a client
// authentication failure is retried in the other style, so a grant code or
// refresh token is never sent twice. Set [oauth2.AuthStyleInParams] for
// Zoho to skip the detection; with an explicit style, an invalid_client
// error names the other style.
//
// # Provider quirks (Zoho)
//
// The package calls the token endpoint itself, with x/oauth2's
// conventions (Config.AuthStyle, [oauth2.HTTPClient] in the context) and
// types, because x/oauth2's parser misreads Zoho's answers:
//
//   - the lifetime is "expires_in_sec" seconds when present (Zoho's older
//     answers, where "expires_in" is then in milliseconds, which x/oauth2
//     takes for seconds: a thousand times too long), otherwise
//     "expires_in" seconds; numeric strings are accepted; an answer
//     without a lifetime gets [DefaultLifetime] (1 h);
//   - an "error" field is an error even in an HTTP 200 body, which is how
//     Zoho answers: {"error":"invalid_code"} becomes a [*ProviderError]
//     that matches [ErrRefreshRevoked], "Access Denied" (Zoho's rate
//     limit) one that matches [ErrAccessDenied], "invalid_client" one that
//     matches [ErrInvalidClient];
//   - a refresh answer without "refresh_token" keeps the stored one; with
//     one (rotation), the new one replaces it;
//   - "api_domain" is taken from the answer and stored.
//
// # Failures and backoff
//
// A failed exchange or refresh is remembered. Until its backoff has
// passed, Token returns an error that matches [ErrBackingOff] and the
// original error (errors.Is(err, ErrRefreshRevoked) still holds) without
// calling the provider; it does read the store on each call, and a
// changed token there (a new login saved by another process, another
// process's refresh) ends the backoff at once. The n-th consecutive
// failure backs off min(initial*2^(n-1), max): 1 minute to 1 hour for
// refusals (ErrRefreshRevoked, ErrAccessDenied, ErrInvalidClient;
// [WithBackoff]), 1 second to 1 minute for anything else (network errors,
// HTTP 5xx, malformed answers; [WithTransientBackoff]). Zoho's SDKs
// instead retry on every API call and burn the limit of 10 token
// generations per 10 minutes. A cancelled context is not a failure.
//
// # Logout
//
// [Source.Revoke], and the package function [Revoke] for a record ID,
// revoke the refresh token at [Config.RevokeURL] (Zoho:
// {accounts}/oauth/v2/token/revoke, token in the form body) and then
// delete the record. They find the record by ID; Zoho's own revoke()
// looks it up by the wrong key.
//
// # HTTP clients
//
// [oauth2.NewClient](ctx, src) gives an [http.Client] whose requests carry
// the token. [Source.Client] (a [Transport]) and [Pool.Client] also retry
// a request once, after one refresh shared by all callers, when the API
// answers 401 with Zoho's INVALID_OAUTHTOKEN code.
//
// # Options
//
// Every [Option] is validated: a nil Option or a bad value (a negative
// duration, a nil logger, clock or HTTP client, a maximum below its
// initial value) makes [New], [NewPool] and [Revoke] return an error
// wrapping [ErrInvalidConfig], as every option of the cloudtokens modules
// does.
//
// # Observability
//
// [WithObserver] reports each refresh, grant code exchange, provider call
// and lease wait as an operation, and lease takeovers, backoffs and Pool
// hits and misses as events, to an
// [github.com/cloudtokens/cloudtokens/observe.Observer] (the module
// github.com/cloudtokens/cloudtokens/otel implements it with
// OpenTelemetry). Given to the store as well, it nests the store
// operations of a refresh inside it. It is told record IDs, never token
// values or user names.
//
// # Secrets and personal data
//
// Errors and log records never contain token values or the client
// secret: provider error descriptions are cleaned of the values that
// were sent, and [tokenstore.Token] redacts itself when formatted. Log
// records identify a token by its record ID ("id"); the user name, often
// an e-mail address, is added only with [WithLogUserNames].
package tokensource
