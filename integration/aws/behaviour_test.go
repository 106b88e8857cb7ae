package aws

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/cloudtokens/cloudtokens/awssm"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// snapshot returns every token of s by ID.
func snapshot(t *testing.T, s *awssm.Store) map[string]tokenstore.Token {
	t.Helper()
	toks, err := s.Tokens(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]tokenstore.Token{}
	for _, tok := range toks {
		out[tok.ID] = *tok
	}
	return out
}

func sameTokens(a, b map[string]tokenstore.Token) bool {
	if len(a) != len(b) {
		return false
	}
	for id, ta := range a {
		tb, ok := b[id]
		if !ok || !ta.Expiry.Equal(tb.Expiry) {
			return false
		}
		ta.Expiry, tb.Expiry = time.Time{}, time.Time{}
		if ta != tb {
			return false
		}
	}
	return true
}

// Bad input gets a typed error, makes no call to AWS, and loses nothing.
func TestBadInput(t *testing.T) {
	ctx := t.Context()
	rec := &recorder{}
	s := newStore(t, rec)
	seed := []*tokenstore.Token{
		{UserName: "alice", AccessToken: "acc-a", RefreshToken: "ref-a", ClientID: clientA, ClientSecret: secretA},
		{UserName: "bob", AccessToken: "acc-b"},
	}
	for _, tok := range seed {
		if err := s.SaveToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	before := snapshot(t, s)

	noCalls := func(what string, err, target error) {
		t.Helper()
		if !errors.Is(err, target) {
			t.Errorf("%s: %v, want %v", what, err, target)
		}
		if calls := rec.all(); len(calls) != 0 {
			t.Errorf("%s made calls: %v", what, calls)
		}
		rec.reset()
	}
	rec.reset()
	noCalls("SaveToken(nil)", s.SaveToken(ctx, nil), tokenstore.ErrInvalidToken)
	_, err := s.FindToken(ctx, nil)
	noCalls("FindToken(nil)", err, tokenstore.ErrInvalidToken)
	_, err = s.FindToken(ctx, &tokenstore.Token{})
	noCalls("FindToken(empty query)", err, tokenstore.ErrInvalidToken)
	_, err = s.FindToken(ctx, &tokenstore.Token{ClientID: clientA, RefreshToken: "ref-a"}) // no client secret
	noCalls("FindToken(refresh token without client secret)", err, tokenstore.ErrInvalidToken)
	noCalls("SaveToken(no secret)", s.SaveToken(ctx, &tokenstore.Token{UserName: "carol"}), tokenstore.ErrInvalidToken)

	for _, id := range []string{"a/b", "..", "../index-0", "a b", " ", "a\x00b", "token-x/..", strings.Repeat("x", 65), "ü"} {
		_, err := s.FindTokenByID(ctx, id)
		noCalls(fmt.Sprintf("FindTokenByID(%q)", id), err, tokenstore.ErrInvalidID)
		noCalls(fmt.Sprintf("DeleteToken(%q)", id), s.DeleteToken(ctx, id), tokenstore.ErrInvalidID)
		noCalls(fmt.Sprintf("SaveToken(ID %q)", id), s.SaveToken(ctx, &tokenstore.Token{ID: id, UserName: "alice", AccessToken: "x"}), tokenstore.ErrInvalidID)
		_, err = s.AcquireLease(ctx, id, "me", time.Minute)
		noCalls(fmt.Sprintf("AcquireLease(%q)", id), err, tokenstore.ErrInvalidID)
		if _, err := s.SecretName(id); !errors.Is(err, tokenstore.ErrInvalidID) {
			t.Errorf("SecretName(%q) = %v", id, err)
		}
	}
	// IDs valid for the library that no AWS secret name can hold (they
	// end in "-" and six characters): not found, without a call.
	for _, id := range []string{"abcdef", "x-abcdef", "Q-12_456"} {
		_, err := s.FindTokenByID(ctx, id)
		noCalls(fmt.Sprintf("FindTokenByID(%q)", id), err, tokenstore.ErrNotFound)
	}

	big := strings.Repeat("A", 70000)
	noCalls("SaveToken(70,000-byte access token)", s.SaveToken(ctx, &tokenstore.Token{UserName: "big", AccessToken: big}), tokenstore.ErrTooLarge)
	// An update whose merged document would exceed 64 KiB: fails before
	// any write; the stored token is unchanged.
	half := strings.Repeat("B", 40000)
	err = s.SaveToken(ctx, &tokenstore.Token{ID: seed[0].ID, AccessToken: half, GrantToken: half})
	if !errors.Is(err, tokenstore.ErrTooLarge) {
		t.Errorf("oversized merge: %v, want ErrTooLarge", err)
	}
	for _, c := range rec.all() {
		if c.Op != "GetSecretValue" {
			t.Errorf("oversized merge wrote: %v", c)
		}
	}
	rec.reset()

	for _, p := range []string{"", "bad prefix", "bad:prefix", "/lead", "trail/", "a//b", "a*", "näme", strings.Repeat("p", awssm.MaxPrefixLength+1)} {
		_, err := awssm.New(ctx, client(t, rec), p)
		noCalls(fmt.Sprintf("New(prefix %q)", p), err, awssm.ErrInvalidPrefix)
	}

	if after := snapshot(t, s); !sameTokens(before, after) {
		t.Errorf("bad input changed the store:\nbefore %v\nafter  %v", before, after)
	}
	if err := check(ctx, s); err != nil {
		t.Error(err)
	}
}

// A token secret edited into invalid JSON (by hand, with the SDK) is
// reported as ErrMalformed for that token, without quoting its content,
// and breaks neither the other tokens nor Tokens; it can be deleted.
func TestCorruptSecret(t *testing.T) {
	ctx := t.Context()
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	raw := client(t, nil)
	s := newStoreAt(t, raw, uniquePrefix(t), awssm.WithLogger(logger))
	alice := &tokenstore.Token{UserName: "alice", AccessToken: "acc-a"}
	bob := &tokenstore.Token{UserName: "bob", AccessToken: "acc-b", ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref-b"}
	carol := &tokenstore.Token{UserName: "carol", AccessToken: "acc-c"}
	eve := &tokenstore.Token{UserName: "eve", AccessToken: "acc-e"}
	for _, tok := range []*tokenstore.Token{alice, bob, carol, eve} {
		if err := s.SaveToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	const leak = "sk-LEAKED-VALUE-1234"
	edit := func(id, value string) {
		t.Helper()
		name, err := s.SecretName(id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := raw.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(name), SecretString: aws.String(value)}); err != nil {
			t.Fatal(err)
		}
	}
	edit(bob.ID, `{"format":1,"id":"`+bob.ID+`","access_token":"`+leak+`", oops`)
	edit(eve.ID, `{"format":1,"id":"someone-else","access_token":"`+leak+`"}`) // valid JSON, wrong ID

	for _, id := range []string{bob.ID, eve.ID} {
		_, err := s.FindTokenByID(ctx, id)
		if !errors.Is(err, tokenstore.ErrMalformed) {
			t.Fatalf("FindTokenByID(corrupt %s) = %v, want ErrMalformed", id, err)
		}
		if strings.Contains(err.Error(), leak) || !strings.Contains(err.Error(), id) {
			t.Errorf("error %q should name the token and not quote its content", err)
		}
	}
	if _, err := s.FindToken(ctx, &tokenstore.Token{UserName: "bob"}); !errors.Is(err, tokenstore.ErrMalformed) {
		t.Errorf("FindToken(bob) = %v, want ErrMalformed", err)
	}
	for _, tok := range []*tokenstore.Token{alice, carol} {
		got, err := s.FindToken(ctx, &tokenstore.Token{UserName: tok.UserName})
		if err != nil || got.ID != tok.ID || got.AccessToken != tok.AccessToken {
			t.Errorf("FindToken(%s) = %v, %v", tok.UserName, got, err)
		}
	}
	toks, err := s.Tokens(ctx)
	if err != nil {
		t.Fatalf("Tokens with a corrupt secret: %v", err)
	}
	var ids []string
	for _, tok := range toks {
		ids = append(ids, tok.ID)
	}
	slices.Sort(ids)
	want := []string{alice.ID, carol.ID}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("Tokens = %v, want %v", ids, want)
	}
	if !strings.Contains(logs.String(), bob.ID) || strings.Contains(logs.String(), leak) {
		t.Errorf("log should name the corrupt token and not quote it:\n%s", logs.String())
	}
	r, err := s.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := slices.Clone(r.Corrupt)
	slices.Sort(corrupt)
	want = []string{bob.ID, eve.ID}
	slices.Sort(want)
	if !slices.Equal(corrupt, want) || strings.Contains(r.String(), leak) {
		t.Errorf("Check: %s, want corrupt %v", r, want)
	}
	// Writes go on; the corrupt tokens can be deleted.
	if err := s.SaveToken(ctx, &tokenstore.Token{UserName: "dave", AccessToken: "acc-d"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveToken(ctx, &tokenstore.Token{UserName: "alice", AccessToken: "acc-a2"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{bob.ID, eve.ID} {
		if err := s.DeleteToken(ctx, id); err != nil {
			t.Fatalf("DeleteToken(corrupt): %v", err)
		}
	}
	if err := countTokens(ctx, s, 3); err != nil {
		t.Error(err)
	}
	if err := check(ctx, s); err != nil {
		t.Error(err)
	}
}

// Saving the same user right after DeleteToken works in every delete
// mode; the deleted secret is scheduled for deletion (restorable) with a
// recovery window, and gone at once when forced.
func TestDeleteThenSave(t *testing.T) {
	for _, c := range []struct {
		name string
		opts []awssm.Option
		days int // 0: forced
	}{
		{"default-window", nil, 30},
		{"window-7", []awssm.Option{awssm.WithRecoveryWindow(7)}, 7},
		{"force", []awssm.Option{awssm.WithForceDelete()}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := t.Context()
			raw := client(t, nil)
			s := newStoreAt(t, raw, uniquePrefix(t), c.opts...)
			first := &tokenstore.Token{UserName: "ursula", ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref-u", AccessToken: "acc-1"}
			if err := s.SaveToken(ctx, first); err != nil {
				t.Fatal(err)
			}
			name, _ := s.SecretName(first.ID)
			start := time.Now()
			if err := s.DeleteToken(ctx, first.ID); err != nil {
				t.Fatal(err)
			}
			second := &tokenstore.Token{UserName: "ursula", ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref-u", AccessToken: "acc-2"}
			if err := s.SaveToken(ctx, second); err != nil {
				t.Fatalf("save right after delete: %v", err)
			}
			if second.ID == first.ID {
				t.Fatal("the new token reuses the deleted ID")
			}
			for _, q := range []*tokenstore.Token{{UserName: "ursula"}, {ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref-u"}} {
				got, err := s.FindToken(ctx, q)
				if err != nil || got.ID != second.ID || got.AccessToken != "acc-2" {
					t.Errorf("FindToken after delete+save = %v, %v", got, err)
				}
			}
			if _, err := s.FindTokenByID(ctx, first.ID); !errors.Is(err, tokenstore.ErrNotFound) {
				t.Errorf("deleted token: %v, want ErrNotFound", err)
			}
			if err := s.DeleteToken(ctx, first.ID); !errors.Is(err, tokenstore.ErrNotFound) {
				t.Errorf("second DeleteToken: %v, want ErrNotFound", err)
			}
			if err := countTokens(ctx, s, 1); err != nil {
				t.Error(err)
			}
			if err := check(ctx, s); err != nil {
				t.Error(err)
			}

			d, err := raw.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
			if c.days == 0 {
				var nf *types.ResourceNotFoundException
				if !errors.As(err, &nf) {
					t.Errorf("forced delete: DescribeSecret = %v, want ResourceNotFoundException", err)
				}
				return
			}
			if err != nil || d.DeletedDate == nil {
				t.Fatalf("recovery window: DescribeSecret = %v, %v; want a deletion date", d, err)
			}
			// moto reports the end of the window as DeletedDate.
			wantDate := start.Add(time.Duration(c.days) * 24 * time.Hour)
			if diff := d.DeletedDate.Sub(wantDate); diff < -time.Hour || diff > time.Hour {
				t.Errorf("DeletedDate %v, want about %v (%d days)", d.DeletedDate, wantDate, c.days)
			}
			// Within the window the token can be restored by hand; Check
			// then reports it as not in the index.
			if _, err := raw.RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: aws.String(name)}); err != nil {
				t.Fatal(err)
			}
			got, err := s.FindTokenByID(ctx, first.ID)
			if err != nil || got.AccessToken != "acc-1" {
				t.Fatalf("restored token: %v, %v", got, err)
			}
			r, err := s.Check(ctx)
			if err != nil || !slices.Equal(r.Unindexed, []string{first.ID}) {
				t.Errorf("Check after restore: %v, %v; want %s unindexed", r, err, first.ID)
			}
		})
	}
}

// retryableFault is an error the SDK retryer retries.
type retryableFault struct{}

func (retryableFault) Error() string        { return "injected: response lost" }
func (retryableFault) RetryableError() bool { return true }

// loseFirstResponse makes the first UpdateSecretVersionStage request that
// *armed allows reach the server and succeed there, and then reports a
// retryable failure, as when a response is lost on the way back: the SDK
// sends the request again, which AWS refuses because the label has
// already moved.
func loseFirstResponse(armed *atomic.Bool) func(*secretsmanager.Options) {
	return func(o *secretsmanager.Options) {
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) { so.MaxBackoff = 20 * time.Millisecond })
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
			return s.Finalize.Insert(middleware.FinalizeMiddlewareFunc("test.loseFirstResponse",
				func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
					out, md, err := next.HandleFinalize(ctx, in)
					if err == nil && awsmiddleware.GetOperationName(ctx) == "UpdateSecretVersionStage" && armed.CompareAndSwap(true, false) {
						return out, md, retryableFault{}
					}
					return out, md, err
				}), "Retry", middleware.After)
		})
	}
}

// A compare-and-swap whose stage move succeeded but whose response was
// lost is still reported as a success: the retried move is refused, and
// the store then checks (one GetSecretValue) that its version is current.
func TestLostStageMoveResponse(t *testing.T) {
	ctx := t.Context()
	prefix := uniquePrefix(t)
	plain := newStoreAt(t, client(t, nil), prefix)
	alice := &tokenstore.Token{UserName: "alice", AccessToken: "acc-a"}
	if err := plain.SaveToken(ctx, alice); err != nil {
		t.Fatal(err)
	}
	var armed atomic.Bool
	rec := &recorder{}
	faulty := newStoreAt(t, client(t, rec, loseFirstResponse(&armed)), prefix)

	armed.Store(true)
	ok, err := faulty.AcquireLease(ctx, alice.ID, "holder-1", time.Minute)
	if err != nil || !ok {
		t.Fatalf("AcquireLease with a lost response = %v, %v; want true", ok, err)
	}
	if armed.Load() {
		t.Fatal("the fault was not injected")
	}
	// Every request sent, the SDK's retry and awssm's check after it
	// included.
	want := map[string]int{"GetSecretValue": 2, "PutSecretValue": 1, "UpdateSecretVersionStage": 2}
	if got := rec.sent(); summary(got) != summary(want) {
		t.Errorf("calls %s, want %s", summary(got), summary(want))
	}
	if ok, err := plain.AcquireLease(ctx, alice.ID, "holder-2", time.Minute); err != nil || ok {
		t.Fatalf("second holder: %v, %v; the lease should be held by holder-1", ok, err)
	}

	// The same for a refresh.
	armed.Store(true)
	if err := faulty.SaveToken(ctx, &tokenstore.Token{ID: alice.ID, AccessToken: "acc-a2"}); err != nil {
		t.Fatal(err)
	}
	got, err := plain.FindTokenByID(ctx, alice.ID)
	if err != nil || got.AccessToken != "acc-a2" {
		t.Fatalf("after a refresh with a lost response: %v, %v", got, err)
	}
	// Saving released the lease.
	if ok, err := plain.AcquireLease(ctx, alice.ID, "holder-2", time.Minute); err != nil || !ok {
		t.Fatalf("lease after save: %v, %v", ok, err)
	}
}

// Twenty store instances (as twenty processes) race on one token.
// Leases: exactly one holder wins. Refreshes: all succeed through the
// compare-and-swap retries, the result is one of them, the losers' labels
// are gone without any cleanup call, and the index is untouched.
func TestCASRacePublicAPI(t *testing.T) {
	ctx := t.Context()
	prefix := uniquePrefix(t)
	raw := client(t, nil)
	base := newStoreAt(t, raw, prefix)
	alice := &tokenstore.Token{UserName: "alice", ClientID: clientA, ClientSecret: secretA, RefreshToken: "ref-a", AccessToken: "acc-0"}
	if err := base.SaveToken(ctx, alice); err != nil {
		t.Fatal(err)
	}
	const racers = 20
	rec := &recorder{}
	stores := make([]*awssm.Store, racers)
	for i := range stores {
		stores[i] = newStoreAt(t, client(t, rec), prefix)
	}
	race := func(fn func(i int)) {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				fn(i)
			}()
		}
		close(start)
		wg.Wait()
	}

	var winners atomic.Int32
	race(func(i int) {
		ok, err := stores[i].AcquireLease(ctx, alice.ID, fmt.Sprintf("holder-%d", i), time.Minute)
		if err != nil {
			t.Errorf("AcquireLease %d: %v", i, err)
		}
		if ok {
			winners.Add(1)
		}
	})
	if winners.Load() != 1 {
		t.Fatalf("%d lease winners, want exactly 1", winners.Load())
	}

	rec.reset()
	race(func(i int) {
		if err := stores[i].SaveToken(ctx, &tokenstore.Token{ID: alice.ID, AccessToken: fmt.Sprintf("acc-%d", i+1)}); err != nil {
			t.Errorf("SaveToken %d: %v", i, err)
		}
	})
	got, err := base.FindTokenByID(ctx, alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if _, err := fmt.Sscanf(got.AccessToken, "acc-%d", &n); err != nil || n < 1 || n > racers || got.RefreshToken != "ref-a" {
		t.Fatalf("after the race: %v", got)
	}
	ops := rec.byOp()
	// Every attempt is one Get, one Put and one stage move; the SDK may
	// resend a request that moto_server answered with HTTP 500.
	if ops["PutSecretValue"] < racers || ops["UpdateSecretVersionStage"] < racers || ops["GetSecretValue"] < racers || len(ops) != 3 {
		t.Errorf("race calls: %s", summary(ops))
	}
	if c := rec.touching(func(s string) bool { return strings.HasSuffix(s, "/index-0") }); len(c) != 0 {
		t.Errorf("refreshes touched the index: %v", c)
	}
	t.Logf("20 concurrent refreshes of one token: %s (%d compare-and-swap attempts for 20 saves)", summary(ops), ops["PutSecretValue"])
	name, _ := base.SecretName(alice.ID)
	d, err := raw.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	labelled := 0
	for _, stages := range d.VersionIdsToStages {
		if len(stages) > 0 {
			labelled++
		}
	}
	if labelled > 3 {
		t.Errorf("%d versions keep labels, want at most 3 (current, previous, pending): %v", labelled, d.VersionIdsToStages)
	}
	if err := check(ctx, base); err != nil {
		t.Error(err)
	}
}

// A store sees only its own secrets, also when another store's prefix is
// nested inside its own.
func TestNestedPrefixes(t *testing.T) {
	ctx := t.Context()
	outerPrefix := uniquePrefix(t)
	outer := newStoreAt(t, client(t, nil), outerPrefix)
	inner := newStoreAt(t, client(t, nil), outerPrefix+"/token-inner")
	sibling := newStoreAt(t, client(t, nil), outerPrefix+"x")
	for i, s := range []*awssm.Store{outer, inner, sibling} {
		for j := range 2 + i {
			if err := s.SaveToken(ctx, &tokenstore.Token{UserName: fmt.Sprintf("user-%d", j), AccessToken: "acc"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, s := range []*awssm.Store{outer, inner, sibling} {
		if err := countTokens(ctx, s, 2+i); err != nil {
			t.Errorf("%s: %v", s.Prefix(), err)
		}
		if err := check(ctx, s); err != nil {
			t.Errorf("%s: %v", s.Prefix(), err)
		}
	}
}

// WithTags and WithKMSKeyID apply to every secret the store creates.
func TestTagsAndKMSKey(t *testing.T) {
	ctx := t.Context()
	raw := client(t, nil)
	const key = "alias/cloudtokens-test"
	s := newStoreAt(t, raw, uniquePrefix(t), awssm.WithTags(map[string]string{"app": "cloudtokens", "env": "test"}), awssm.WithKMSKeyID(key))
	tok := &tokenstore.Token{UserName: "alice", AccessToken: "acc"}
	if err := s.SaveToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	name, _ := s.SecretName(tok.ID)
	for _, secret := range []string{name, s.Prefix() + "/index-0"} {
		d, err := raw.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(secret)})
		if err != nil {
			t.Fatal(err)
		}
		tags := map[string]string{}
		for _, tag := range d.Tags {
			tags[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
		}
		if tags["app"] != "cloudtokens" || tags["env"] != "test" || len(tags) != 2 {
			t.Errorf("%s: tags %v", secret, tags)
		}
		if aws.ToString(d.KmsKeyId) != key {
			t.Errorf("%s: KMS key %q, want %q", secret, aws.ToString(d.KmsKeyId), key)
		}
	}
}
