package gcpsmtest

import (
	"hash/crc32"
	"regexp"
	"sort"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// MaxPayloadBytes is the largest SecretPayload.data AddSecretVersion accepts
// (65,536 bytes): "The secret data. Must be no larger than 64KiB."
// (resources.proto, SecretPayload.data). Larger payloads are
// INVALID_ARGUMENT.
const MaxPayloadBytes = 64 * 1024

// Limits and formats, each quoted from google/cloud/secretmanager/v1
// service.proto / resources.proto (cloud.google.com/go/secretmanager v1.24.0).
const (
	// "No more than 64 labels can be assigned to a given resource."
	// (resources.proto, Secret.labels).
	maxLabels = 64
	// "have a UTF-8 encoding of maximum 128 bytes" (Secret.labels and
	// Secret.annotations keys).
	maxLabelBytes = 128
	// "No more than 50 aliases can be assigned to a given secret."
	// (resources.proto, Secret.version_aliases).
	maxAliases = 50
	// "The total size of annotation keys and values must be less than 16KiB."
	// (resources.proto, Secret.annotations).
	maxAnnotationBytes = 16 * 1024
	// "If the number is greater than 25000, it is capped at 25000."
	// (service.proto, ListSecretsRequest.page_size).
	maxPageSize = 25000
)

var (
	// "A secret ID is a string with a maximum length of 255 characters and
	// can contain uppercase and lowercase letters, numerals, and the hyphen
	// (`-`) and underscore (`_`) characters." (service.proto,
	// CreateSecretRequest.secret_id).
	secretIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)

	// Label keys "must conform to the following PCRE regular expression:
	// `[\p{Ll}\p{Lo}][\p{Ll}\p{Lo}\p{N}_-]{0,62}`" and values to
	// "`[\p{Ll}\p{Lo}\p{N}_-]{0,63}`" (resources.proto, Secret.labels).
	// Go's RE2 counts {m,n} in runes, matching "between 1 and 63
	// characters".
	labelKeyRE   = regexp.MustCompile(`^[\p{Ll}\p{Lo}][\p{Ll}\p{Lo}\p{N}_-]{0,62}$`)
	labelValueRE = regexp.MustCompile(`^[\p{Ll}\p{Lo}\p{N}_-]{0,63}$`)

	// Annotation keys "must be between 1 and 63 characters long, ... begin
	// and end with an alphanumeric character ([a-z0-9A-Z]), and may have
	// dashes (-), underscores (_), dots (.), and alphanumerics in between"
	// (resources.proto, Secret.annotations).
	annotationKeyRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$`)

	// "A version alias is a string with a maximum length of 63 characters
	// and can contain uppercase and lowercase letters, numerals, and the
	// hyphen (`-`) and underscore ('_') characters. An alias string must
	// start with a letter and cannot be the string 'latest' or 'NEW'."
	// (resources.proto, Secret.version_aliases).
	aliasRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,62}$`)

	crc32cTable = crc32.MakeTable(crc32.Castagnoli)
)

// crc32c returns the CRC32C (Castagnoli) checksum used by
// SecretPayload.data_crc32c.
func crc32c(b []byte) uint32 { return crc32.Checksum(b, crc32cTable) }

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

func validateSecretID(id string) error {
	if !secretIDRE.MatchString(id) {
		return invalid("Invalid secret_id %q: a secret ID must be 1-255 characters from [A-Za-z0-9_-]", id)
	}
	return nil
}

func validateLabels(labels map[string]string) error {
	if len(labels) > maxLabels {
		return invalid("Invalid labels: %d labels given, at most %d are allowed", len(labels), maxLabels)
	}
	for _, k := range sortedKeys(labels) {
		v := labels[k]
		if len(k) > maxLabelBytes || !labelKeyRE.MatchString(k) {
			return invalid("Invalid label key %q: keys must start with a lowercase letter, contain only lowercase letters, digits, '_' or '-', and be 1-63 characters", k)
		}
		if len(v) > maxLabelBytes || !labelValueRE.MatchString(v) {
			return invalid("Invalid value %q for label %q: values may contain only lowercase letters, digits, '_' or '-' and be at most 63 characters", v, k)
		}
	}
	return nil
}

func validateAnnotations(ann map[string]string) error {
	total := 0
	for _, k := range sortedKeys(ann) {
		if len(k) > maxLabelBytes || !annotationKeyRE.MatchString(k) {
			return invalid("Invalid annotation key %q: keys must be 1-63 characters, begin and end with [a-zA-Z0-9] and contain only [a-zA-Z0-9._-]", k)
		}
		total += len(k) + len(ann[k])
	}
	if total >= maxAnnotationBytes {
		return invalid("Invalid annotations: total size of keys and values is %d bytes, it must be less than 16KiB", total)
	}
	return nil
}

// validateAliases checks alias syntax and that every alias points at an
// existing version of the secret (versions holds the current number of
// versions; version numbers are 1..versions).
//
// The docs do not name the status code for an alias that points at a missing
// version; the emulator answers INVALID_ARGUMENT, the code the service uses
// for every other malformed field of an UpdateSecret request.
func validateAliases(aliases map[string]int64, versions int64) error {
	if len(aliases) > maxAliases {
		return invalid("Invalid version_aliases: %d aliases given, at most %d are allowed", len(aliases), maxAliases)
	}
	for _, a := range sortedKeys(aliases) {
		if a == versionLatest || a == "NEW" || !aliasRE.MatchString(a) {
			return invalid("Invalid version alias %q: an alias must start with a letter, contain only [A-Za-z0-9_-], be at most 63 characters and not be 'latest' or 'NEW'", a)
		}
		if n := aliases[a]; n < 1 || n > versions {
			return invalid("Invalid version alias %q: secret version %d does not exist", a, n)
		}
	}
	return nil
}

// validateReplication enforces that a global secret carries a replication
// policy. resources.proto (v1.24.0) marks Secret.replication "Optional.
// Immutable." because regional secrets must omit it, but for
// projects/*/secrets/* the service rejects a create without one with
// INVALID_ARGUMENT ("Choosing a replication policy" docs: every secret has
// either an automatic or a user-managed policy), and UserManaged.replicas is
// "Required ... Cannot be empty." (resources.proto).
func validateReplication(r *secretmanagerpb.Replication) error {
	switch p := r.GetReplication().(type) {
	case *secretmanagerpb.Replication_Automatic_:
		if p.Automatic == nil {
			return invalid("Secret.replication.automatic must be set")
		}
		return nil
	case *secretmanagerpb.Replication_UserManaged_:
		if len(p.UserManaged.GetReplicas()) == 0 {
			return invalid("Secret.replication.user_managed.replicas cannot be empty")
		}
		seen := map[string]bool{}
		for _, rep := range p.UserManaged.GetReplicas() {
			if rep.GetLocation() == "" {
				return invalid("Secret.replication.user_managed.replicas.location is required")
			}
			if seen[rep.GetLocation()] {
				return invalid("Secret.replication.user_managed.replicas contains duplicate location %q", rep.GetLocation())
			}
			seen[rep.GetLocation()] = true
		}
		return nil
	default:
		return invalid("Secret.replication must be provided (automatic or user_managed)")
	}
}

// validatePayload checks SecretPayload against the documented rules: the
// payload is required (AddSecretVersionRequest.payload "Required."), data is
// at most 64KiB, and a client-supplied data_crc32c must match the CRC32C of
// data. The docs do not spell out the mismatch code; the service answers
// INVALID_ARGUMENT for a bad request field and so does the emulator.
func validatePayload(p *secretmanagerpb.SecretPayload) (sum uint32, clientSum bool, err error) {
	if p == nil {
		return 0, false, invalid("Field [payload] is required.")
	}
	if len(p.Data) > MaxPayloadBytes {
		return 0, false, invalid("Secret payload is %d bytes; it must be no larger than 64KiB (%d bytes)", len(p.Data), MaxPayloadBytes)
	}
	sum = crc32c(p.Data)
	if p.DataCrc32C != nil {
		if uint64(*p.DataCrc32C) != uint64(sum) {
			return 0, false, invalid("Checksum mismatch: payload.data_crc32c is %d but the CRC32C of payload.data is %d", *p.DataCrc32C, sum)
		}
		clientSum = true
	}
	return sum, clientSum, nil
}

// checkUnsupportedSecretFields rejects Secret fields whose behaviour the
// emulator does not model (expiration, rotation, Pub/Sub topics, delayed
// destroy, CMEK for regional secrets, tags, typed secrets). Accepting them
// silently would make a test pass against behaviour that never happens.
func checkUnsupportedSecretFields(sec *secretmanagerpb.Secret) error {
	var field string
	switch {
	case sec.GetExpiration() != nil:
		field = "expire_time/ttl"
	case sec.GetRotation() != nil:
		field = "rotation"
	case len(sec.GetTopics()) > 0:
		field = "topics"
	case sec.GetVersionDestroyTtl() != nil:
		field = "version_destroy_ttl"
	case sec.GetCustomerManagedEncryption() != nil:
		field = "customer_managed_encryption"
	case len(sec.GetTags()) > 0:
		field = "tags"
	case sec.GetSecretType() != secretmanagerpb.Secret_SECRET_TYPE_UNSPECIFIED:
		field = "secret_type"
	default:
		return nil
	}
	return status.Errorf(codes.Unimplemented, "gcpsmtest: Secret.%s is not emulated", field)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
