package gcpsmtest

import (
	"testing"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Parser-level checks of the filter subset (AIP-160 precedence: OR binds
// tighter than AND; https://cloud.google.com/secret-manager/docs/filtering).
func TestCompileFilter(t *testing.T) {
	subj := &filterSubject{
		name:       "projects/p/secrets/api-key-prod",
		id:         "api-key-prod",
		labels:     map[string]string{"env": "prod", "team": "auth"},
		createTime: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC),
	}
	for _, tt := range []struct {
		filter string
		want   bool
	}{
		{"", true},
		{"   ", true},
		{"labels.env=prod", true},
		{"labels.env = prod", true},
		{"labels.env=dev", false},
		{"labels.env:pro", true},
		{"labels.missing:*", false},
		{"labels.missing!=x", true},
		{"labels:team", true},
		{"name:key", true},
		{"name:api*prod", true},
		{"name:prod*api", false},
		{"name=api-key-prod", true},
		{"name=api-key", false},
		{"labels.env=dev OR labels.team=auth", true},
		{"labels.env=dev OR labels.team=auth labels.env=dev", false}, // (dev OR auth) AND dev
		{"labels.env=prod AND (labels.team=x OR name:api)", true},
		{"NOT labels.env=prod", false},
		{"-labels.env=dev", true},
		{"NOT(labels.env=dev)", true},
		{`labels.env="prod"`, true},
		{"create_time>=2024-05-01T12:00:00Z", true},
		{"create_time>2024-05-01T12:00:00Z", false},
		{"create_time<2024-05-01T12:00:00.000000001Z", true},
		{"create_time<=2024-01-01T00:00:00Z", false},
	} {
		f, err := compileFilter(tt.filter, filterSecrets)
		if err != nil {
			t.Errorf("compileFilter(%q): %v", tt.filter, err)
			continue
		}
		if got := f(subj); got != tt.want {
			t.Errorf("filter %q = %v, want %v", tt.filter, got, tt.want)
		}
	}

	for _, bad := range []string{
		"foo=bar", "labels.=x", "labels=x", "name", "name:", "(name:a", "name:a)",
		"name~a", "labels.env=prod AND", `name="open`, "state:ENABLED", "create_time>soon",
	} {
		_, err := compileFilter(bad, filterSecrets)
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("compileFilter(%q) = %v, want INVALID_ARGUMENT", bad, err)
		}
	}

	f, err := compileFilter("state:disabled", filterVersions)
	if err != nil {
		t.Fatal(err)
	}
	if !f(&filterSubject{state: secretmanagerpb.SecretVersion_DISABLED}) || f(&filterSubject{state: secretmanagerpb.SecretVersion_ENABLED}) {
		t.Error("state:disabled evaluated wrongly")
	}
	for _, bad := range []string{"state:STATE_UNSPECIFIED", "state<ENABLED", "labels.a=b"} {
		if _, err := compileFilter(bad, filterVersions); status.Code(err) != codes.InvalidArgument {
			t.Errorf("versions filter %q = %v, want INVALID_ARGUMENT", bad, err)
		}
	}
}
