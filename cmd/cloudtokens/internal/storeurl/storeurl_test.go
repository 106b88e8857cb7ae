package storeurl

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in   string
		want URL
	}{
		{"aws://myapp/zoho-tokens", URL{Scheme: AWS, Prefix: "myapp/zoho-tokens"}},
		{"aws://a@b+c=d.e?region=eu-west-1&endpoint=http://127.0.0.1:5000&shards=4&force-delete=true",
			URL{Scheme: AWS, Prefix: "a@b+c=d.e", Region: "eu-west-1", Endpoint: "http://127.0.0.1:5000", Shards: 4, ForceDelete: true}},
		{"gcp://my-project/tokens", URL{Scheme: GCP, Project: "my-project", Prefix: "tokens"}},
		{"gcp://p/tokens?endpoint=127.0.0.1:9090", URL{Scheme: GCP, Project: "p", Prefix: "tokens", Endpoint: "127.0.0.1:9090"}},
		{"vault://secret/myapp/tokens", URL{Scheme: Vault, Mount: "secret", Prefix: "myapp/tokens"}},
		{"vault://kv/t?addr=https://vault:8200&namespace=team", URL{Scheme: Vault, Mount: "kv", Prefix: "t", Addr: "https://vault:8200", Namespace: "team"}},
	} {
		got, err := Parse(c.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if *got != c.want {
			t.Errorf("Parse(%q) = %+v, want %+v", c.in, *got, c.want)
		}
		again, err := Parse(got.String())
		if err != nil || *again != *got {
			t.Errorf("Parse(String()) of %q: %+v, %v", c.in, again, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{
		"", "myapp/tokens", "s3://bucket/x", "aws://", "aws://?region=x", "gcp://project", "gcp:///prefix",
		"vault://secret", "vault:///prefix", "aws://p?regoin=eu-west-1", "aws://p?shards=0", "aws://p?shards=x",
		"aws://p?shards=1&shards=2", "aws://p?force-delete=maybe", "gcp://p/x?region=y", "vault://s/p?endpoint=x",
		"aws://p?region=",
	} {
		_, err := Parse(in)
		if !errors.Is(err, ErrInvalidURL) {
			t.Errorf("Parse(%q): %v, want ErrInvalidURL", in, err)
			continue
		}
		if !strings.Contains(err.Error(), "aws://PREFIX") {
			t.Errorf("Parse(%q): the error does not list the accepted forms: %v", in, err)
		}
	}
}

// A prefix the adapter rejects is the URL's fault: ErrInvalidURL, before
// any call to a service.
func TestOpenInvalidPrefix(t *testing.T) {
	t.Setenv("AWS_REGION", "us-east-1")
	for _, in := range []string{"aws://bad//prefix", "aws://bad prefix", "gcp://p/bad.prefix?endpoint=127.0.0.1:1"} {
		u, err := Parse(in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		if _, err := Open(context.Background(), u); !errors.Is(err, ErrInvalidURL) {
			t.Errorf("Open(%q): %v, want ErrInvalidURL", in, err)
		}
	}
}
