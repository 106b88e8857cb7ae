package awssm

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// offlineClient is a client that New accepts; these tests make no call.
func offlineClient() *secretsmanager.Client {
	return secretsmanager.New(secretsmanager.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://127.0.0.1:1")})
}

func TestNewRejectsInvalidPrefix(t *testing.T) {
	for _, p := range []string{
		"", "/app", "app/", "a//b", "app tokens", "app:tokens", "app*", "app\x00", "äpp",
		strings.Repeat("a", MaxPrefixLength+1),
	} {
		_, err := New(context.Background(), offlineClient(), p)
		if !errors.Is(err, ErrInvalidPrefix) || !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("New(prefix %q) = %v, want ErrInvalidPrefix", p, err)
		}
	}
	for _, p := range []string{"app", "my-app/tokens", "a.b/c_d+e=f@g-h", strings.Repeat("a", MaxPrefixLength)} {
		s, err := New(context.Background(), offlineClient(), p)
		if err != nil {
			t.Errorf("New(prefix %q) = %v", p, err)
			continue
		}
		if s.Prefix() != p {
			t.Errorf("Prefix() = %q, want %q", s.Prefix(), p)
		}
	}
}

func TestNewRejectsInvalidOptions(t *testing.T) {
	ctx := context.Background()
	if _, err := New(ctx, nil, "app"); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("nil client: %v", err)
	}
	bad := map[string][]Option{
		"shards 0":            {WithIndexShards(0)},
		"shards too many":     {WithIndexShards(MaxIndexShards + 1)},
		"attempts 0":          {WithMaxAttempts(0)},
		"nil logger":          {WithLogger(nil)},
		"empty kms key":       {WithKMSKeyID("")},
		"window 6":            {WithRecoveryWindow(6)},
		"window 31":           {WithRecoveryWindow(31)},
		"force and window":    {WithForceDelete(), WithRecoveryWindow(7)},
		"aws: tag":            {WithTags(map[string]string{"aws:x": "y"})},
		"empty tag key":       {WithTags(map[string]string{"": "y"})},
		"long tag value":      {WithTags(map[string]string{"k": strings.Repeat("v", 257)})},
		"nil option":          {nil},
		"too many tags (51)":  {WithTags(manyTags(51))},
		"long tag key (129)":  {WithTags(map[string]string{strings.Repeat("k", 129): "v"})},
		"shards negative":     {WithIndexShards(-1)},
		"attempts negative":   {WithMaxAttempts(-3)},
		"window and force":    {WithRecoveryWindow(30), WithForceDelete()},
		"second option wrong": {WithIndexCache(true), WithIndexShards(0)},
	}
	for name, opts := range bad {
		if _, err := New(ctx, offlineClient(), "app", opts...); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: New = %v, want ErrInvalidConfig", name, err)
		}
	}
	good := []Option{WithIndexShards(MaxIndexShards), WithIndexCache(true), WithMaxAttempts(3), WithKMSKeyID("alias/x"),
		WithTags(manyTags(50)), WithRecoveryWindow(7)}
	if _, err := New(ctx, offlineClient(), "app", good...); err != nil {
		t.Errorf("valid options: %v", err)
	}
}

func manyTags(n int) map[string]string {
	m := map[string]string{}
	for i := range n {
		m["k"+strings.Repeat("x", i)] = "v"
	}
	return m
}

func TestValidateName(t *testing.T) {
	for name, ok := range map[string]bool{
		"app/token-abcdefghijklmnopqrstuvwxyz": true,
		"app/index-0":                          true,
		"app/index-999":                        true,
		"app/token-abcdef":                     false, // "-" + 6 characters: an ARN suffix shape
		"app/token-x-abcdef":                   false,
		"app/token-x-abcdefg":                  true,
		"app/token-abcde":                      true,
		"app/token-a b":                        false,
		"app/token-a!":                         false,
		"app/" + strings.Repeat("a", 509):      false, // 513 characters
		"app/" + strings.Repeat("a", 508):      true,  // 512
		"":                                     false,
	} {
		if err := validateName(name); (err == nil) != ok {
			t.Errorf("validateName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
	// Every index shard name New allows is valid.
	for n := range MaxIndexShards {
		if err := validateName("p/index-" + strconv.Itoa(n)); err != nil {
			t.Fatalf("shard %d: %v", n, err)
		}
	}
}

func TestSecretName(t *testing.T) {
	s, err := New(context.Background(), offlineClient(), "app/tokens")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.SecretName("abc123xyz"); err != nil || got != "app/tokens/token-abc123xyz" {
		t.Errorf("SecretName = %q, %v", got, err)
	}
	for _, id := range []string{"abcdef", "x-abcdef", "a/b", "..", "a b", ""} {
		if _, err := s.SecretName(id); !errors.Is(err, tokenstore.ErrInvalidID) {
			t.Errorf("SecretName(%q) = %v, want ErrInvalidID", id, err)
		}
	}
}

// A name that AWS could never hold is not found, without any call (the
// client of these stores points at a closed port).
func TestReservedNamesAreNotFoundOffline(t *testing.T) {
	ctx := context.Background()
	s, err := New(ctx, offlineClient(), "app")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"abcdef", "x-abcdef", "A-b_c-dEfGhI"} {
		if _, err := s.FindTokenByID(ctx, id); !errors.Is(err, tokenstore.ErrNotFound) {
			t.Errorf("FindTokenByID(%q) = %v, want ErrNotFound", id, err)
		}
		if err := s.DeleteToken(ctx, id); !errors.Is(err, tokenstore.ErrNotFound) {
			t.Errorf("DeleteToken(%q) = %v, want ErrNotFound", id, err)
		}
	}
	b := s.b
	if _, err := b.Create(ctx, "token-abcdef", []byte("{}")); !errors.Is(err, tokenstore.ErrInvalidID) {
		t.Errorf("Create(reserved) = %v, want ErrInvalidID", err)
	}
	if _, err := b.Update(ctx, "token-abcdef", []byte("{}"), "v"); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Errorf("Update(reserved) = %v, want ErrNotFound", err)
	}
	res, err := b.ReadMany(ctx, []string{"token-abcdef", "token-x-123456"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if !errors.Is(r.Err, tokenstore.ErrNotFound) {
			t.Errorf("ReadMany %s: %v, want ErrNotFound", r.Name, r.Err)
		}
	}
	big := make([]byte, MaxValueSize+1)
	if _, err := b.Create(ctx, "token-abcdefg", big); !errors.Is(err, tokenstore.ErrTooLarge) {
		t.Errorf("Create(65,537 bytes) = %v, want ErrTooLarge", err)
	}
	if _, err := b.Update(ctx, "token-abcdefg", big, "v"); !errors.Is(err, tokenstore.ErrTooLarge) {
		t.Errorf("Update(65,537 bytes) = %v, want ErrTooLarge", err)
	}
}
