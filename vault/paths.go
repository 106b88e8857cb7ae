package vault

import (
	"fmt"
	"strings"

	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// MaxPathLength bounds the mount path and the prefix, each.
const MaxPathLength = 256

// maxNameLength bounds a document name given by the engine ("token-<id>"
// with an ID of at most 64 characters, or "index-<n>").
const maxNameLength = 128

// validatePath checks a mount path or a prefix: one or more "/"-separated
// segments of [A-Za-z0-9._-], none of them empty, "." or "..". That rules
// out a leading or trailing "/", "//", traversal, control characters and
// the policy glob characters "*" and "+", so the store's paths cannot
// leave the prefix and the prefix can be named exactly in a policy.
func validatePath(what, p string) error {
	if p == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalidPrefix, what)
	}
	if len(p) > MaxPathLength {
		return fmt.Errorf("%w: %s is %d bytes, the limit is %d", ErrInvalidPrefix, what, len(p), MaxPathLength)
	}
	if strings.HasPrefix(p, "/") {
		return fmt.Errorf("%w: %s %q starts with \"/\"", ErrInvalidPrefix, what, p)
	}
	for i, seg := range strings.Split(p, "/") {
		switch seg {
		case "":
			return fmt.Errorf("%w: %s %q has an empty segment (\"//\" or a trailing \"/\")", ErrInvalidPrefix, what, p)
		case ".", "..":
			return fmt.Errorf("%w: %s %q has a %q segment", ErrInvalidPrefix, what, p, seg)
		}
		for j := 0; j < len(seg); j++ {
			if !pathChar(seg[j]) {
				return fmt.Errorf("%w: %s has character %q in segment %d; allowed are A-Z a-z 0-9 . _ -", ErrInvalidPrefix, what, seg[j], i)
			}
		}
	}
	return nil
}

func pathChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// validName checks a document name given by the engine: 1 to 128
// characters of [A-Za-z0-9_-] (token IDs are validated the same way by
// tokenstore.ValidateID; user names never become names).
func validName(name string) error {
	if name == "" || len(name) > maxNameLength {
		return fmt.Errorf("%w: document name of %d bytes", tokenstore.ErrInvalidID, len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("%w: document name has character %q at offset %d", tokenstore.ErrInvalidID, c, i)
		}
	}
	return nil
}
