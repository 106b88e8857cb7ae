package gcpsmtest

import (
	"strings"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
)

// This file implements the subset of the list-filter language described at
// https://cloud.google.com/secret-manager/docs/filtering (which follows
// https://google.aip.dev/160) that the emulator supports:
//
//	expression  = sequence
//	sequence    = factor { [ "AND" ] factor }     (whitespace means AND)
//	factor      = unary { "OR" unary }             (OR binds tighter than AND, AIP-160)
//	unary       = [ "NOT" | "-" ] primary
//	primary     = "(" sequence ")" | comparison
//	comparison  = field op value
//	op          = ":" | "=" | "!=" | "<" | "<=" | ">" | ">="
//	value       = bare-word | "quoted string"
//
// Fields for ListSecrets:
//
//	name          full resource name; ":" is substring match ("Secrets whose name
//	              contains the "mysecret" substring: name:mysecret"), "*" inside a
//	              ":" value matches any run of characters (name:APIKEY*production);
//	              "=" matches the full name or the bare secret ID
//	labels.KEY    ":*" tests presence, ":" substring, "=" / "!=" exact value
//	              ("labels.environment=production")
//	labels        "labels:KEY" tests presence of KEY (AIP-160 map "has")
//	create_time   compared with an RFC 3339 timestamp
//	              ("create_time<2021-01-01T06:00:00Z")
//
// Fields for ListSecretVersions: name, create_time as above and
// state (ENABLED, DISABLED, DESTROYED; ":" "=" "!=").
//
// Anything else (unknown fields, regular expressions, functions) is rejected
// with INVALID_ARGUMENT rather than being ignored.

// filterSubject is the view of a secret or version that filters evaluate.
type filterSubject struct {
	name       string
	id         string
	labels     map[string]string
	createTime time.Time
	state      secretmanagerpb.SecretVersion_State
}

type filterFunc func(*filterSubject) bool

type filterTarget int

const (
	filterSecrets filterTarget = iota
	filterVersions
)

// compileFilter parses src for the given target. An empty filter matches
// everything.
func compileFilter(src string, target filterTarget) (filterFunc, error) {
	p := &filterParser{src: src, target: target}
	p.skipSpace()
	if p.eof() {
		return func(*filterSubject) bool { return true }, nil
	}
	f, err := p.sequence()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if !p.eof() {
		return nil, p.errorf("unexpected %q", p.src[p.pos:])
	}
	return f, nil
}

type filterParser struct {
	src    string
	pos    int
	target filterTarget
}

func (p *filterParser) errorf(format string, args ...any) error {
	return invalid("Invalid filter %q: "+format, append([]any{p.src}, args...)...)
}

func (p *filterParser) eof() bool { return p.pos >= len(p.src) }

func (p *filterParser) skipSpace() {
	for !p.eof() && isFilterSpace(p.src[p.pos]) {
		p.pos++
	}
}

func isFilterSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// keyword consumes kw if it is the next word (followed by space, "(" or end).
func (p *filterParser) keyword(kw string) bool {
	p.skipSpace()
	if !strings.HasPrefix(p.src[p.pos:], kw) {
		return false
	}
	end := p.pos + len(kw)
	if end < len(p.src) && !isFilterSpace(p.src[end]) && p.src[end] != '(' {
		return false
	}
	p.pos = end
	return true
}

func (p *filterParser) sequence() (filterFunc, error) {
	var parts []filterFunc
	for {
		p.skipSpace()
		if p.eof() || p.src[p.pos] == ')' {
			break
		}
		if len(parts) > 0 && p.keyword("AND") {
			p.skipSpace()
			if p.eof() || p.src[p.pos] == ')' {
				return nil, p.errorf("AND without right operand")
			}
		}
		f, err := p.factor()
		if err != nil {
			return nil, err
		}
		parts = append(parts, f)
	}
	if len(parts) == 0 {
		return nil, p.errorf("empty expression")
	}
	if len(parts) == 1 {
		return parts[0], nil
	}
	return func(s *filterSubject) bool {
		for _, f := range parts {
			if !f(s) {
				return false
			}
		}
		return true
	}, nil
}

func (p *filterParser) factor() (filterFunc, error) {
	first, err := p.unary()
	if err != nil {
		return nil, err
	}
	parts := []filterFunc{first}
	for p.keyword("OR") {
		f, err := p.unary()
		if err != nil {
			return nil, err
		}
		parts = append(parts, f)
	}
	if len(parts) == 1 {
		return first, nil
	}
	return func(s *filterSubject) bool {
		for _, f := range parts {
			if f(s) {
				return true
			}
		}
		return false
	}, nil
}

func (p *filterParser) unary() (filterFunc, error) {
	p.skipSpace()
	negate := false
	if p.keyword("NOT") {
		negate = true
	} else if !p.eof() && p.src[p.pos] == '-' {
		p.pos++
		negate = true
	}
	f, err := p.primary()
	if err != nil || !negate {
		return f, err
	}
	return func(s *filterSubject) bool { return !f(s) }, nil
}

func (p *filterParser) primary() (filterFunc, error) {
	p.skipSpace()
	if p.eof() {
		return nil, p.errorf("unexpected end of filter")
	}
	if p.src[p.pos] == '(' {
		p.pos++
		f, err := p.sequence()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.eof() || p.src[p.pos] != ')' {
			return nil, p.errorf("missing ')'")
		}
		p.pos++
		return f, nil
	}
	field := p.field()
	if field == "" {
		return nil, p.errorf("expected a field name at %q", p.src[p.pos:])
	}
	p.skipSpace()
	op := p.operator()
	if op == "" {
		return nil, p.errorf("expected one of : = != < <= > >= after %q", field)
	}
	p.skipSpace()
	value, err := p.value()
	if err != nil {
		return nil, err
	}
	return p.comparison(field, op, value)
}

func (p *filterParser) field() string {
	start := p.pos
	for !p.eof() {
		c := p.src[p.pos]
		if isFilterSpace(c) || strings.IndexByte("():=!<>\"", c) >= 0 {
			break
		}
		p.pos++
	}
	return p.src[start:p.pos]
}

func (p *filterParser) operator() string {
	for _, op := range []string{">=", "<=", "!=", ":", "=", "<", ">"} {
		if strings.HasPrefix(p.src[p.pos:], op) {
			p.pos += len(op)
			return op
		}
	}
	return ""
}

func (p *filterParser) value() (string, error) {
	if p.eof() {
		return "", p.errorf("missing value")
	}
	if p.src[p.pos] == '"' {
		var b strings.Builder
		for p.pos++; !p.eof(); p.pos++ {
			c := p.src[p.pos]
			switch {
			case c == '\\' && p.pos+1 < len(p.src):
				p.pos++
				b.WriteByte(p.src[p.pos])
			case c == '"':
				p.pos++
				return b.String(), nil
			default:
				b.WriteByte(c)
			}
		}
		return "", p.errorf("unterminated string")
	}
	start := p.pos
	for !p.eof() && !isFilterSpace(p.src[p.pos]) && p.src[p.pos] != ')' && p.src[p.pos] != '(' {
		p.pos++
	}
	if p.pos == start {
		return "", p.errorf("missing value")
	}
	return p.src[start:p.pos], nil
}

// comparison builds the predicate for one "field op value" term, validating
// the field for the list target.
func (p *filterParser) comparison(field, op, value string) (filterFunc, error) {
	switch {
	case field == "name":
		return stringCompare(op, value, func(s *filterSubject) (string, bool) { return s.name, true },
			func(s *filterSubject) bool { return s.name == value || s.id == value }, p)
	case field == "create_time":
		return p.timeCompare(op, value)
	case field == "state" && p.target == filterVersions:
		return p.stateCompare(op, value)
	case field == "labels" && p.target == filterSecrets:
		if op != ":" {
			return nil, p.errorf("labels supports only ':' (labels:KEY)")
		}
		return func(s *filterSubject) bool { _, ok := s.labels[value]; return ok }, nil
	case strings.HasPrefix(field, "labels.") && p.target == filterSecrets:
		key := strings.TrimPrefix(field, "labels.")
		if key == "" {
			return nil, p.errorf("empty label key")
		}
		get := func(s *filterSubject) (string, bool) { v, ok := s.labels[key]; return v, ok }
		return stringCompare(op, value, get, func(s *filterSubject) bool {
			v, ok := s.labels[key]
			return ok && v == value
		}, p)
	}
	return nil, p.errorf("field %q is not supported by the emulator for this list call", field)
}

// stringCompare implements ":" (presence for "*", otherwise wildcard
// substring), "=" (eq) and "!=" (not eq) on a string field.
func stringCompare(op, value string, get func(*filterSubject) (string, bool), eq filterFunc, p *filterParser) (filterFunc, error) {
	switch op {
	case ":":
		if value == "*" {
			return func(s *filterSubject) bool { _, ok := get(s); return ok }, nil
		}
		parts := strings.Split(value, "*")
		return func(s *filterSubject) bool {
			v, ok := get(s)
			return ok && containsInOrder(v, parts)
		}, nil
	case "=":
		return eq, nil
	case "!=":
		return func(s *filterSubject) bool { return !eq(s) }, nil
	}
	return nil, p.errorf("operator %q is not supported on string fields", op)
}

// containsInOrder reports whether every part occurs in v, in order.
func containsInOrder(v string, parts []string) bool {
	for _, part := range parts {
		i := strings.Index(v, part)
		if i < 0 {
			return false
		}
		v = v[i+len(part):]
	}
	return true
}

func (p *filterParser) timeCompare(op, value string) (filterFunc, error) {
	t, err := time.Parse(time.RFC3339Nano, value)
	if err != nil {
		return nil, p.errorf("create_time value %q is not an RFC 3339 timestamp", value)
	}
	var f func(a, b time.Time) bool
	switch op {
	case "<":
		f = time.Time.Before
	case ">":
		f = time.Time.After
	case "<=":
		f = func(a, b time.Time) bool { return !a.After(b) }
	case ">=":
		f = func(a, b time.Time) bool { return !a.Before(b) }
	case "=", ":":
		f = time.Time.Equal
	case "!=":
		f = func(a, b time.Time) bool { return !a.Equal(b) }
	}
	return func(s *filterSubject) bool { return f(s.createTime, t) }, nil
}

func (p *filterParser) stateCompare(op, value string) (filterFunc, error) {
	n, ok := secretmanagerpb.SecretVersion_State_value[strings.ToUpper(value)]
	if !ok || n == 0 {
		return nil, p.errorf("unknown state %q (want ENABLED, DISABLED or DESTROYED)", value)
	}
	want := secretmanagerpb.SecretVersion_State(n)
	switch op {
	case ":", "=":
		return func(s *filterSubject) bool { return s.state == want }, nil
	case "!=":
		return func(s *filterSubject) bool { return s.state != want }, nil
	}
	return nil, p.errorf("operator %q is not supported on state", op)
}
