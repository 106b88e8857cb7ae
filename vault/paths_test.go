package vault

import (
	"errors"
	"strings"
	"testing"

	"github.com/cloudtokens/cloudtokens/tokenstore"
)

func TestValidatePath(t *testing.T) {
	good := []string{"a", "cloudtokens", "team-a/app_1/tokens", "v1.2", strings.Repeat("a", MaxPathLength)}
	for _, p := range good {
		if err := validatePath("prefix", p); err != nil {
			t.Errorf("validatePath(%q) = %v, want nil", p, err)
		}
	}
	bad := []string{"", "/a", "a/", "a//b", "..", "a/../b", "a/..", ".", "./a", "a/./b", "a b", "a\x00b", "a\nb", "a\x7fb",
		"a*", "a+b", "a%2e%2e", "ä", "a\\b", "a?b", "a#b", strings.Repeat("a", MaxPathLength+1)}
	for _, p := range bad {
		err := validatePath("prefix", p)
		if !errors.Is(err, ErrInvalidPrefix) {
			t.Errorf("validatePath(%q) = %v, want ErrInvalidPrefix", p, err)
		}
		if err != nil && strings.ContainsAny(err.Error(), "\x00\n\x7f") {
			t.Errorf("validatePath(%q): message carries a control character: %q", p, err)
		}
	}
}

func TestValidName(t *testing.T) {
	for _, n := range []string{"token-abc", "index-0", "token-A_z-9", "token-" + strings.Repeat("a", 64)} {
		if err := validName(n); err != nil {
			t.Errorf("validName(%q) = %v", n, err)
		}
	}
	for _, n := range []string{"", "../index-0", "token-a/b", "token-.", "token-..", "token- ", "token-\x00", "a.b", strings.Repeat("a", maxNameLength+1)} {
		if err := validName(n); !errors.Is(err, tokenstore.ErrInvalidID) {
			t.Errorf("validName(%q) = %v, want ErrInvalidID", n, err)
		}
	}
}
