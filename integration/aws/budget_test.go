package aws

import (
	"context"
	"errors"
	"fmt"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"golang.org/x/sync/errgroup"
	"strings"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/awssm"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/index"
)

const (
	clientA = "1000.CLIENTAAAAAAAAAAAAAAAAAAAAAAAA"
	secretA = "client-secret-a-0123456789"
)

type budget struct {
	op   string
	want map[string]int // exact calls per operation
	// alt, if set, is also accepted: the count on AWS where moto_server
	// needs extra GetSecretValue calls (its batch reads are stale for
	// tokens updated since their creation; see awssm.ReadMany).
	alt map[string]int
	run func() error
}

// checkBudgets runs every case, compares the recorded calls with the
// exact budget and logs the measured table (the one in awssm/README.md).
func checkBudgets(t *testing.T, rec *recorder, cases []budget) {
	t.Helper()
	var table strings.Builder
	table.WriteString("| operation | calls |\n|---|---|\n")
	for _, c := range cases {
		rec.reset()
		if err := c.run(); err != nil {
			t.Fatalf("%s: %v", c.op, err)
		}
		got := rec.byOp()
		retried := ""
		if n := rec.retries(); n > 0 {
			retried = fmt.Sprintf(" (+%d SDK retries after transport errors, not counted)", n)
		}
		fmt.Fprintf(&table, "| %s | %s%s |\n", c.op, summary(got), retried)
		if summary(got) != summary(c.want) && (c.alt == nil || summary(got) != summary(c.alt)) {
			t.Errorf("%s: %s, want %s\n%v", c.op, summary(got), summary(c.want), rec.all())
		}
	}
	t.Logf("measured calls:\n%s", table.String())
}

func gets(n int) map[string]int { return map[string]int{"GetSecretValue": n} }

// plus returns the sum of call counts.
func plus(ms ...map[string]int) map[string]int {
	out := map[string]int{}
	for _, m := range ms {
		for k, v := range m {
			out[k] += v
		}
	}
	return out
}

var (
	casWrite = map[string]int{"PutSecretValue": 1, "UpdateSecretVersionStage": 1}
	create   = map[string]int{"CreateSecret": 1}
	del      = map[string]int{"DeleteSecret": 1}
	batch    = map[string]int{"BatchGetSecretValue": 1}
	list     = map[string]int{"ListSecrets": 1}
)

// The budgets of the issue, asserted exactly, and the cost of every other
// operation, measured at the transport, for a store without the index
// cache. Every count is for one index shard.
func TestCallBudgets(t *testing.T) {
	ctx := t.Context()
	prefix := uniquePrefix(t)
	rec := &recorder{}
	s := newStoreAt(t, client(t, rec), prefix)
	exp := time.Now().Add(time.Hour).Truncate(time.Millisecond)

	alice := &tokenstore.Token{UserName: "alice", ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref-alice", AccessToken: "acc-alice", Expiry: exp}
	bob := &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, GrantToken: "grant-bob", AccessToken: "acc-bob"}
	carol := &tokenstore.Token{UserName: "carol", AccessToken: "acc-carol"}
	byUser := &tokenstore.Token{UserName: "alice"}
	byGrant := &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, GrantToken: "grant-bob"}
	byRefresh := &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref-alice"}
	saveNew := func(tok *tokenstore.Token) func() error {
		return func() error {
			if err := s.SaveToken(ctx, tok); err != nil {
				return err
			}
			if tok.ID == "" {
				return fmt.Errorf("no ID assigned")
			}
			return nil
		}
	}
	// The lookup reads the shard, then the token is created and its keys
	// claimed in one write of the shard the lookup read.
	newToken := plus(gets(1), create, casWrite)
	other := newStoreAt(t, client(t, rec), prefix) // another process: it remembers nothing

	checkBudgets(t, rec, []budget{
		{"SaveToken new user (first token, index secret created)", plus(gets(1), list, create, create), nil, saveNew(alice)},
		{"SaveToken new grant token", newToken, nil, saveNew(bob)},
		{"SaveToken new user", newToken, nil, saveNew(carol)},
		{"FindTokenByID", gets(1), nil, func() error { _, err := s.FindTokenByID(ctx, alice.ID); return err }},
		{"FindToken by user", gets(2), nil, find(ctx, s, byUser, alice)},
		{"FindToken by grant token", gets(2), nil, find(ctx, s, byGrant, bob)},
		{"FindToken by refresh token", gets(2), nil, find(ctx, s, byRefresh, alice)},
		// bob has a grant token: his access token is not a key, so the
		// access-key lookup misses and a scan follows.
		{"FindToken by access token (scan of 3 tokens)", plus(gets(2), batch), nil, find(ctx, s, &tokenstore.Token{AccessToken: "acc-bob"}, bob)},
		{"Tokens (3 tokens)", plus(gets(1), batch), nil, func() error { return countTokens(ctx, s, 3) }},
		{"Check (3 tokens)", plus(list, gets(1), batch), nil, func() error { return check(ctx, s) }},
		// The store has read alice: it knows the version to swap from.
		{"SaveToken refresh by ID (access token + expiry)", casWrite, nil, func() error {
			return s.SaveToken(ctx, &tokenstore.Token{ID: alice.ID, AccessToken: "acc-alice-2", Expiry: exp.Add(time.Hour)})
		}},
		{"SaveToken refresh by ID, by a store that has not read the token", plus(gets(1), casWrite), nil, func() error {
			return other.SaveToken(ctx, &tokenstore.Token{ID: alice.ID, AccessToken: "acc-alice-2b", Expiry: exp.Add(time.Hour)})
		}},
		{"SaveToken refresh by refresh token", plus(gets(2), casWrite), nil, func() error {
			return s.SaveToken(ctx, &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref-alice", AccessToken: "acc-alice-3"})
		}},
		// Lookup (shard, token); claim the new key in the shard it read;
		// swap the token; release the old key from the version it wrote.
		{"SaveToken by user with a new refresh token (index rewritten)", plus(gets(2), casWrite, casWrite, casWrite), nil, func() error {
			return s.SaveToken(ctx, &tokenstore.Token{UserName: "alice", ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref-alice-2"})
		}},
		{"AcquireLease (of the token the store just wrote)", casWrite, nil, func() error {
			ok, err := s.AcquireLease(ctx, alice.ID, "me", time.Minute)
			if err == nil && !ok {
				err = fmt.Errorf("lease not acquired")
			}
			return err
		}},
		{"ReleaseLease", plus(gets(1), casWrite), nil, func() error { return s.ReleaseLease(ctx, alice.ID, "me") }},
		// alice has been updated: moto's batch read of her secret is stale.
		{"Tokens (3 tokens, 1 updated)", plus(gets(2), batch), plus(gets(1), batch), func() error { return countTokens(ctx, s, 3) }},
		{"DeleteToken", plus(gets(2), del, casWrite), nil, func() error { return s.DeleteToken(ctx, carol.ID) }},
		{"DeleteTokens (2 tokens)", plus(gets(1), list, del, del, casWrite), nil, func() error { return s.DeleteTokens(ctx) }},
	})
}

// The same with the index cache, all operations through one store so
// that its cache stays current.
func TestCallBudgetsIndexCache(t *testing.T) {
	ctx := t.Context()
	rec := &recorder{}
	s := newStore(t, rec, awssm.WithIndexCache(true))
	alice := &tokenstore.Token{UserName: "alice", ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref-alice", AccessToken: "acc-alice"}
	bob := &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, GrantToken: "grant-bob", AccessToken: "acc-bob"}
	for _, tok := range []*tokenstore.Token{alice, bob} {
		if err := s.SaveToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	byUser := &tokenstore.Token{UserName: "alice"}
	byGrant := &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, GrantToken: "grant-bob"}
	byRefresh := &tokenstore.Token{ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref-alice"}
	cold := newStoreAt(t, client(t, rec), s.Prefix(), awssm.WithIndexCache(true))
	carol := &tokenstore.Token{UserName: "carol", AccessToken: "acc-carol"}
	checkBudgets(t, rec, []budget{
		{"FindToken by user, cache empty", gets(2), nil, find(ctx, cold, byUser, alice)},
		{"FindToken by user, warm cache", gets(1), nil, find(ctx, cold, byUser, alice)},
		{"FindToken by grant token, warm cache", gets(1), nil, find(ctx, cold, byGrant, bob)},
		{"FindToken by refresh token, warm cache", gets(1), nil, find(ctx, cold, byRefresh, alice)},
		{"FindToken by user, warm cache, user unknown", gets(1), nil, func() error {
			_, err := cold.FindToken(ctx, &tokenstore.Token{UserName: "nobody"})
			if errors.Is(err, tokenstore.ErrNotFound) {
				return nil
			}
			return fmt.Errorf("FindToken(nobody) = %v, want ErrNotFound", err)
		}},
		{"SaveToken refresh by user, warm cache", plus(gets(1), casWrite), nil, func() error {
			return s.SaveToken(ctx, &tokenstore.Token{UserName: "alice", AccessToken: "acc-alice-2"})
		}},
		{"SaveToken new user, warm cache", plus(gets(1), create, casWrite), nil, func() error {
			return s.SaveToken(ctx, carol)
		}},
		{"DeleteToken, warm cache", plus(gets(1), del, casWrite), nil, func() error { return s.DeleteToken(ctx, carol.ID) }},
		// The other store's cache is stale now: its answer is verified,
		// still right, and costs nothing extra while the entry holds.
		{"FindToken by user, cache stale but entry valid", gets(1), nil, find(ctx, cold, byUser, alice)},
	})
}

// A refresh, where only the access token and expiry change, writes only
// the token's own secret: by ID no call touches the index at all; looked
// up by refresh token (or user), the index is only read.
func TestRefreshWritesOnlyTheToken(t *testing.T) {
	ctx := t.Context()
	rec := &recorder{}
	s := newStore(t, rec)
	exp := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	alice := &tokenstore.Token{UserName: "alice", ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref-alice", AccessToken: "acc-alice", Expiry: exp}
	if err := s.SaveToken(ctx, alice); err != nil {
		t.Fatal(err)
	}
	index := s.Prefix() + "/index-0"
	isIndex := func(name string) bool { return name == index }
	secret, err := s.SecretName(alice.ID)
	if err != nil {
		t.Fatal(err)
	}

	rec.reset()
	if err := s.SaveToken(ctx, &tokenstore.Token{ID: alice.ID, AccessToken: "acc-alice-2", Expiry: exp.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if got := rec.touching(isIndex); len(got) != 0 {
		t.Errorf("refresh by ID touched the index: %v", got)
	}
	for _, c := range rec.all() {
		if len(c.Secrets) != 1 || c.Secrets[0] != secret {
			t.Errorf("refresh by ID: call %v is not on the token's secret %s", c, secret)
		}
	}
	if got, want := summary(rec.byOp()), summary(casWrite); got != want {
		t.Errorf("refresh by ID: %s, want %s (the store wrote the token: it knows its version)", got, want)
	}
	// Another process knows nothing: it reads the token's secret first,
	// and still touches nothing else.
	rec.reset()
	other := newStoreAt(t, client(t, rec), s.Prefix())
	if err := other.SaveToken(ctx, &tokenstore.Token{ID: alice.ID, AccessToken: "acc-alice-2b", Expiry: exp.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for _, c := range rec.all() {
		if len(c.Secrets) != 1 || c.Secrets[0] != secret {
			t.Errorf("refresh by ID, other store: call %v is not on the token's secret %s", c, secret)
		}
	}
	if got, want := summary(rec.byOp()), summary(plus(gets(1), casWrite)); got != want {
		t.Errorf("refresh by ID, other store: %s, want %s", got, want)
	}

	for _, q := range []*tokenstore.Token{
		{ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref-alice", AccessToken: "acc-alice-3", Expiry: exp.Add(2 * time.Hour)},
		{UserName: "alice", AccessToken: "acc-alice-4", Expiry: exp.Add(3 * time.Hour)},
	} {
		rec.reset()
		if err := s.SaveToken(ctx, q); err != nil {
			t.Fatal(err)
		}
		for _, c := range rec.touching(isIndex) {
			if c.Op != "GetSecretValue" {
				t.Errorf("refresh by lookup wrote the index: %v", c)
			}
		}
		if got, want := summary(rec.byOp()), summary(plus(gets(2), casWrite)); got != want {
			t.Errorf("refresh by lookup: %s, want %s", got, want)
		}
	}
	got, err := s.FindTokenByID(ctx, alice.ID)
	if err != nil || got.AccessToken != "acc-alice-4" || !got.Expiry.Equal(exp.Add(3*time.Hour)) || got.RefreshToken != "ref-alice" || got.UserName != "alice" {
		t.Fatalf("after the refreshes: %v, %v", got, err)
	}
}

func find(ctx context.Context, s *awssm.Store, q, want *tokenstore.Token) func() error {
	return func() error {
		got, err := s.FindToken(ctx, q)
		if err == nil && got.ID != want.ID {
			err = fmt.Errorf("found %s, want %s", got.ID, want.ID)
		}
		return err
	}
}

func countTokens(ctx context.Context, s *awssm.Store, want int) error {
	toks, err := s.Tokens(ctx)
	if err == nil && len(toks) != want {
		err = fmt.Errorf("Tokens: %d tokens, want %d", len(toks), want)
	}
	return err
}

func check(ctx context.Context, s *awssm.Store) error {
	r, err := s.Check(ctx)
	if err == nil && !r.OK() {
		err = fmt.Errorf("Check: %s", r)
	}
	return err
}

// Tokens reads bucket 0, then the other buckets and the tokens with
// BatchGetSecretValue, 20 per call: 45 tokens in one bucket cost 1 + 3
// calls. moto_server's batch reads ignore
// stage moves, so there every token updated since its creation costs one
// GetSecretValue more (AWS returns the current version: no extra call).
func TestTokensBatches(t *testing.T) {
	ctx := t.Context()
	prefix := uniquePrefix(t)
	rec := &recorder{}
	s := newStoreAt(t, client(t, rec), prefix, awssm.WithIndexCache(true))
	const n = 45
	ids := map[string]bool{}
	for i := range n {
		tok := &tokenstore.Token{UserName: fmt.Sprintf("user-%02d", i), AccessToken: fmt.Sprintf("acc-%02d", i)}
		if err := s.SaveToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		ids[tok.ID] = true
	}
	fresh := newStoreAt(t, client(t, rec), prefix)
	check := func(wantBatch, wantGet int) {
		t.Helper()
		// 45 sign-ups within a second may have grown the index ahead of
		// a burst (AWS's version quota): the buckets after bucket 0 are
		// read in batches of 20 too.
		r, err := fresh.Check(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wantBatch += (r.Buckets - 1 + 19) / 20
		rec.reset()
		toks, err := fresh.Tokens(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(toks) != n {
			t.Fatalf("Tokens: %d tokens, want %d", len(toks), n)
		}
		for _, tok := range toks {
			if !ids[tok.ID] {
				t.Errorf("Tokens: unexpected %s", tok.ID)
			}
		}
		// moto's batch reads ignore stage moves: a bucket after bucket 0
		// written since its creation costs one GetSecretValue more there.
		ops := rec.byOp()
		if get := ops["GetSecretValue"]; ops["BatchGetSecretValue"] != wantBatch || get < wantGet || get > wantGet+r.Buckets-1 || len(ops) != 2 {
			t.Errorf("Tokens of %d: %s, want %d BatchGetSecretValue + %d GetSecretValue (up to %d more on moto, %d buckets)", n, summary(ops), wantBatch, wantGet, r.Buckets-1, r.Buckets)
		}
		for _, c := range rec.all() {
			if c.Op == "BatchGetSecretValue" && len(c.Secrets) > 20 {
				t.Errorf("a batch of %d secrets", len(c.Secrets))
			}
		}
		t.Logf("Tokens of %d tokens: %s", n, summary(ops))
	}
	check(3, 1)

	// Refresh 5 tokens; on moto each costs one GetSecretValue more.
	var refreshed []string
	for id := range ids {
		if len(refreshed) == 5 {
			break
		}
		if err := s.SaveToken(ctx, &tokenstore.Token{ID: id, AccessToken: "acc-new-" + id}); err != nil {
			t.Fatal(err)
		}
		refreshed = append(refreshed, id)
	}
	r, err := fresh.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantBatch := 3 + (r.Buckets-1+19)/20
	rec.reset()
	toks, err := fresh.Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range toks {
		for _, id := range refreshed {
			if tok.ID == id && tok.AccessToken != "acc-new-"+id {
				t.Errorf("Tokens returned a stale version of %s", id)
			}
		}
	}
	ops := rec.byOp()
	if get := ops["GetSecretValue"]; ops["BatchGetSecretValue"] != wantBatch || get < 1 || get > 1+len(refreshed)+r.Buckets-1 {
		t.Errorf("Tokens after %d refreshes: %s", len(refreshed), summary(ops))
	}
	t.Logf("Tokens of %d tokens, %d of them updated: %s", n, len(refreshed), summary(ops))
}

// A process that knows nothing of the index layout (every cold start of
// a serverless function) finds a token by user name with 3 requests on a
// store that grew by itself with default options: GetSecretValue of
// bucket 0, which records the bucket count at each power of two; one
// BatchGetSecretValue of the key's bucket and of the child that a split
// of the current round may have moved the key to (absent when that split
// has not happened); GetSecretValue of the token. moto_server's batch
// reads ignore stage moves, so awssm reads a bucket that the batch
// returned stale once more with GetSecretValue (real AWS returns the
// current version): those re-reads are counted apart.
func TestNewStoreFindsInThreeRequests(t *testing.T) {
	ctx := t.Context()
	rec := &recorder{}
	s := newStore(t, rec)
	// Bursts of sign-ups grow the index within AWS's version quota, until
	// a split of the current round has moved keys to a bucket that bucket
	// 0 does not record.
	const workers, most = 16, 640
	var toks []*tokenstore.Token
	signUp := func(n int) {
		start := len(toks)
		for i := start; i < start+n; i++ {
			toks = append(toks, &tokenstore.Token{UserName: fmt.Sprintf("user-%d@example.com", i), ClientID: clientA, ClientSecret: secretA,
				RefreshToken: fmt.Sprintf("ref-%d", i), AccessToken: fmt.Sprintf("acc-%d", i)})
		}
		g, gctx := errgroup.WithContext(ctx)
		for _, tk := range toks[start:] {
			g.Go(func() error { return s.SaveToken(gctx, tk) })
		}
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	c := client(t, nil)
	buckets := func() int {
		n := 0
		pages := secretsmanager.NewListSecretsPaginator(c, &secretsmanager.ListSecretsInput{
			Filters: []types.Filter{{Key: types.FilterNameStringTypeName, Values: []string{s.Prefix() + "/index-"}}},
		})
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			n += len(page.SecretList)
		}
		return n
	}
	recorded := func() int {
		out, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
			SecretId: aws.String(s.Prefix() + "/index-0"), VersionStage: aws.String("AWSCURRENT")})
		if err != nil {
			t.Fatal(err)
		}
		zero, err := index.Decode([]byte(aws.ToString(out.SecretString)), 0)
		if err != nil {
			t.Fatal(err)
		}
		return zero.Buckets
	}
	moved := func(m, known int) int {
		n := 0
		for _, tk := range toks {
			if k, _ := index.QueryKey(&tokenstore.Token{UserName: tk.UserName}); index.LinearBucket(index.Hash(k), m) >= known {
				n++
			}
		}
		return n
	}
	var m, known int
	for len(toks) < most {
		signUp(workers)
		if m, known = buckets(), recorded(); moved(m, known) > 0 {
			break
		}
	}
	if moved(m, known) == 0 {
		t.Fatalf("%d sign-ups made %d buckets, and bucket 0 records %d: no key is in a bucket it does not know of", len(toks), m, known)
	}
	rep, err := s.Check(ctx)
	if err != nil || !rep.OK() || rep.Tokens != len(toks) || rep.Buckets != m {
		t.Fatalf("Check: %v (%v), want %d tokens in %d buckets", rep, err, len(toks), m)
	}

	worst, batched := 0, 0
	for i := range toks {
		fresh := newStoreAt(t, client(t, rec), s.Prefix())
		rec.reset()
		if err := find(ctx, fresh, &tokenstore.Token{UserName: toks[i].UserName}, toks[i])(); err != nil {
			t.Fatalf("user %d: %v", i, err)
		}
		// Requests, less moto_server's re-reads of secrets its batch
		// returned stale, and the SDK's retries of failed attempts.
		var requests int
		inBatch := map[string]bool{}
		for _, c := range rec.all() {
			switch {
			case c.Retry:
			case c.Op == "GetSecretValue" && len(c.Secrets) == 1 && inBatch[c.Secrets[0]]:
			default:
				requests++
			}
			if c.Op == "BatchGetSecretValue" {
				batched++
				for _, name := range c.Secrets {
					inBatch[name] = true
				}
			}
		}
		worst = max(worst, requests)
		if requests > 3 {
			t.Errorf("user %d, found by a new Store: %d requests, want at most 3: %v", i, requests, rec.all())
		}
	}
	t.Logf("%d tokens, %d buckets (bucket 0 records %d; %d users in a bucket it does not know of): a new Store's find took at most %d requests; %d of %d read two buckets in one batch",
		len(toks), m, known, moved(m, known), worst, batched, len(toks))
}
