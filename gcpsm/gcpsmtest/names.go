package gcpsmtest

import (
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Resource names follow the formats in
// google/cloud/secretmanager/v1/resources.proto:
//
//	projects/{project}
//	projects/{project}/secrets/{secret}
//	projects/{project}/secrets/{secret}/versions/{version}
//
// Regional names (projects/{project}/locations/{location}/...) are not
// emulated; they are answered with codes.Unimplemented so that a test using
// them fails loudly instead of silently talking to a different model.

// versionLatest is the alias documented on GetSecretVersionRequest.name and
// AccessSecretVersionRequest.name in service.proto: "an alias to the most
// recently created SecretVersion".
const versionLatest = "latest"

// parseProject parses "projects/{project}" and returns the canonical project
// segment (see Server.canonicalProject).
func (s *service) parseProject(name, field string) (string, error) {
	parts := strings.Split(name, "/")
	if len(parts) == 4 && parts[0] == "projects" && parts[2] == "locations" {
		return "", errRegional(name)
	}
	if len(parts) != 2 || parts[0] != "projects" || parts[1] == "" {
		return "", status.Errorf(codes.InvalidArgument,
			"Invalid resource field value in the request: %s %q is not of the form projects/{project}", field, name)
	}
	return s.canonicalProject(parts[1]), nil
}

// parseSecretName parses "projects/{project}/secrets/{secret}" and returns the
// canonical full name.
func (s *service) parseSecretName(name, field string) (string, error) {
	parts := strings.Split(name, "/")
	if len(parts) == 6 && parts[0] == "projects" && parts[2] == "locations" {
		return "", errRegional(name)
	}
	if len(parts) != 4 || parts[0] != "projects" || parts[1] == "" ||
		parts[2] != "secrets" || parts[3] == "" {
		return "", status.Errorf(codes.InvalidArgument,
			"Invalid resource field value in the request: %s %q is not of the form projects/{project}/secrets/{secret}", field, name)
	}
	return secretName(s.canonicalProject(parts[1]), parts[3]), nil
}

// parseVersionName parses "projects/{project}/secrets/{secret}/versions/{v}"
// and returns the canonical secret name and the raw version segment, which
// may be a number, "latest" or a user-defined alias.
func (s *service) parseVersionName(name, field string) (secret, version string, err error) {
	parts := strings.Split(name, "/")
	if len(parts) == 8 && parts[0] == "projects" && parts[2] == "locations" {
		return "", "", errRegional(name)
	}
	if len(parts) != 6 || parts[0] != "projects" || parts[1] == "" ||
		parts[2] != "secrets" || parts[3] == "" || parts[4] != "versions" || parts[5] == "" {
		return "", "", status.Errorf(codes.InvalidArgument,
			"Invalid resource field value in the request: %s %q is not of the form projects/{project}/secrets/{secret}/versions/{version}", field, name)
	}
	return secretName(s.canonicalProject(parts[1]), parts[3]), parts[5], nil
}

// parseVersionNumber parses a purely numeric version segment. It reports
// ok=false when the segment is not a decimal number at all (an alias or
// "latest"), and an INVALID_ARGUMENT error for numbers < 1: version IDs "start
// at 1 and are incremented for each subsequent version of the secret"
// (resources.proto, SecretVersion.name).
func parseVersionNumber(v string) (n int64, ok bool, err error) {
	if v == "" || strings.TrimLeft(v, "-0123456789") != "" {
		return 0, false, nil
	}
	n, perr := strconv.ParseInt(v, 10, 64)
	if perr != nil || n < 1 {
		return 0, true, status.Errorf(codes.InvalidArgument, "Invalid secret version id %q: version ids start at 1", v)
	}
	return n, true, nil
}

func secretName(project, id string) string {
	return "projects/" + project + "/secrets/" + id
}

func versionName(secret string, n int64) string {
	return secret + "/versions/" + strconv.FormatInt(n, 10)
}

// secretID returns the {secret} segment of a canonical secret name.
func secretID(name string) string {
	return name[strings.LastIndexByte(name, '/')+1:]
}

// projectOf returns the {project} segment of a canonical secret name.
func projectOf(name string) string {
	rest := strings.TrimPrefix(name, "projects/")
	return rest[:strings.IndexByte(rest, '/')]
}

func errRegional(name string) error {
	return status.Errorf(codes.Unimplemented,
		"gcpsmtest: regional secrets (%q) are not emulated; use projects/{project}/secrets/...", name)
}
