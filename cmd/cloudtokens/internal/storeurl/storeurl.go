// Package storeurl parses the store URLs of the cloudtokens command and
// opens the stores they name:
//
//	aws://PREFIX                AWS Secrets Manager, standard AWS configuration
//	gcp://PROJECT/PREFIX        GCP Secret Manager, Application Default Credentials
//	vault://MOUNT/PREFIX        Vault KV v2, the Vault CLI's environment (VAULT_ADDR, VAULT_TOKEN, ...)
//
// Query parameters tune a URL (see [Forms]); an unknown parameter is an
// error, so a typo never silently opens another store. Every error of
// [Parse], and every configuration error of [Open], wraps [ErrInvalidURL].
package storeurl

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// ErrInvalidURL: a store URL that cannot be parsed, names an unknown
// scheme or parameter, or that the store's constructor rejects (a bad
// prefix, project or mount).
var ErrInvalidURL = errors.New("invalid store URL")

// Forms lists the accepted URL forms and their parameters; error messages
// end with it.
const Forms = `accepted store URLs:
  aws://PREFIX            AWS Secrets Manager; credentials and region from the standard AWS configuration
                          (AWS_* variables, ~/.aws, instance roles); ?region=R ?endpoint=URL ?force-delete=true
  gcp://PROJECT/PREFIX    GCP Secret Manager; Application Default Credentials;
                          ?endpoint=HOST:PORT for an emulator (plaintext, no authentication)
  vault://MOUNT/PREFIX    Vault KV v2 at mount MOUNT; VAULT_ADDR, VAULT_TOKEN (else ~/.vault-token),
                          VAULT_NAMESPACE, VAULT_CACERT and the Vault CLI's other variables; ?addr=URL ?namespace=NS
  every form: ?shards=N   the number of index shards the store's applications use (default 1)`

// Scheme names.
const (
	AWS   = "aws"
	GCP   = "gcp"
	Vault = "vault"
)

// MaxShards is the largest ?shards= value accepted (the AWS adapter's limit).
const MaxShards = 1000

// URL is a parsed store URL.
type URL struct {
	// Scheme is AWS, GCP, Vault or a scheme added with Register.
	Scheme string
	// Project is the GCP project (gcp only).
	Project string
	// Mount is the KV v2 mount path (vault only).
	Mount string
	// Prefix is the store's prefix; for a registered scheme, everything
	// after "://".
	Prefix string
	// Endpoint overrides the service endpoint (aws: a URL; gcp: host:port
	// of an emulator).
	Endpoint string
	// Region is the AWS region (aws only).
	Region string
	// ForceDelete deletes AWS secrets without a recovery window (aws only).
	ForceDelete bool
	// Addr is the Vault address (vault only), overriding VAULT_ADDR.
	Addr string
	// Namespace is the Vault namespace (vault only), overriding VAULT_NAMESPACE.
	Namespace string
	// Shards is the number of index shards; 0 means the store's default (1).
	Shards int
}

// OpenFunc opens the store of a URL of a registered scheme.
type OpenFunc func(ctx context.Context, u *URL) (tokenstore.Store, error)

var registry struct {
	sync.Mutex
	schemes map[string]OpenFunc
}

// Register adds a scheme whose URLs are scheme://NAME[?shards=N] and
// which open opens. It exists for tests, which register in-memory stores;
// registering a built-in scheme panics.
func Register(scheme string, open OpenFunc) {
	if scheme == AWS || scheme == GCP || scheme == Vault {
		panic("storeurl: Register of built-in scheme " + scheme)
	}
	registry.Lock()
	defer registry.Unlock()
	if registry.schemes == nil {
		registry.schemes = map[string]OpenFunc{}
	}
	registry.schemes[scheme] = open
}

func registered(scheme string) OpenFunc {
	registry.Lock()
	defer registry.Unlock()
	return registry.schemes[scheme]
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s\n%s", ErrInvalidURL, fmt.Sprintf(format, args...), Forms)
}

// Parse parses a store URL. It checks the form and the parameters; the
// store's own rules (prefix characters, lengths) are checked by Open.
func Parse(s string) (*URL, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" {
		return nil, invalid("%q has no scheme", s)
	}
	path, rawQuery, _ := strings.Cut(rest, "?")
	u := &URL{Scheme: scheme}
	var allowed []string
	switch scheme {
	case AWS:
		u.Prefix = path
		allowed = []string{"region", "endpoint", "force-delete", "shards"}
	case GCP:
		u.Project, u.Prefix, _ = strings.Cut(path, "/")
		if u.Project == "" {
			return nil, invalid("%q has no project", s)
		}
		allowed = []string{"endpoint", "shards"}
	case Vault:
		u.Mount, u.Prefix, _ = strings.Cut(path, "/")
		if u.Mount == "" {
			return nil, invalid("%q has no mount", s)
		}
		allowed = []string{"addr", "namespace", "shards"}
	default:
		if registered(scheme) == nil {
			return nil, invalid("unknown scheme %q", scheme)
		}
		u.Prefix = path
		allowed = []string{"shards"}
	}
	if u.Prefix == "" {
		return nil, invalid("%q has no prefix", s)
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, invalid("query of %q: %v", s, err)
	}
	for key, vals := range q {
		if !slices.Contains(allowed, key) {
			return nil, invalid("%s:// URLs take no parameter %q (allowed: %s)", scheme, key, strings.Join(allowed, ", "))
		}
		if len(vals) != 1 || vals[0] == "" {
			return nil, invalid("parameter %q needs exactly one non-empty value", key)
		}
		v := vals[0]
		switch key {
		case "region":
			u.Region = v
		case "endpoint":
			u.Endpoint = v
		case "addr":
			u.Addr = v
		case "namespace":
			u.Namespace = v
		case "force-delete":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, invalid("force-delete=%q is not a boolean", v)
			}
			u.ForceDelete = b
		case "shards":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > MaxShards {
				return nil, invalid("shards=%q: want a number from 1 to %d", v, MaxShards)
			}
			u.Shards = n
		}
	}
	return u, nil
}

// String returns the URL in canonical form (parameters sorted). Store
// URLs hold no secrets.
func (u *URL) String() string {
	var b strings.Builder
	b.WriteString(u.Scheme + "://")
	switch u.Scheme {
	case GCP:
		b.WriteString(u.Project + "/")
	case Vault:
		b.WriteString(u.Mount + "/")
	}
	b.WriteString(u.Prefix)
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("region", u.Region)
	set("endpoint", u.Endpoint)
	set("addr", u.Addr)
	set("namespace", u.Namespace)
	if u.ForceDelete {
		q.Set("force-delete", "true")
	}
	if u.Shards != 0 {
		q.Set("shards", strconv.Itoa(u.Shards))
	}
	if len(q) > 0 {
		b.WriteString("?" + q.Encode())
	}
	return b.String()
}
