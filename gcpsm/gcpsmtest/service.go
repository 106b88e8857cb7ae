package gcpsmtest

import (
	"context"
	"maps"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// service implements secretmanagerpb.SecretManagerServiceServer. RPCs that
// are not emulated (IAM, rotation) fall through to the embedded
// UnimplementedSecretManagerServiceServer and return codes.Unimplemented.
//
// All state lives behind mu. Responses are always deep copies made while
// the lock is held, because gRPC marshals them after the handler returns.
type service struct {
	secretmanagerpb.UnimplementedSecretManagerServiceServer

	projectNumbers map[string]string // project ID -> number; read-only
	now            func() time.Time  // WithClock
	lag            time.Duration     // WithEventualConsistency; 0: linearizable
	quotas         *quotas           // WithSecretWriteRate, WithProjectQuotas

	rngMu sync.Mutex
	rng   *rand.Rand // staleness draws

	mu        sync.RWMutex
	secrets   map[string]*secretEntry   // keyed by canonical secret name
	created   map[string]*creationOrder // by project: its secrets in creation order (list.go)
	graveyard map[string][]*secretEntry // deleted secrets lagging readers may still see
	seq       uint64                    // creation order of secrets
	lastEtag  int64
}

type secretEntry struct {
	seq      uint64
	deleted  bool // DeleteSecret removed it (creationOrder skips it)
	pb       *secretmanagerpb.Secret
	versions []*versionEntry // versions[i] is version i+1
	history  []secretSnap    // with a lag: past states, oldest first
}

type versionEntry struct {
	pb      *secretmanagerpb.SecretVersion
	data    []byte // nil once destroyed
	crc     uint32
	history []versionSnap // with a lag: past metadata, oldest first
}

func newService(cfg *config) *service {
	s := &service{
		projectNumbers: cfg.projectNumbers,
		now:            cfg.now,
		lag:            cfg.lag,
		rng:            newRand(cfg.seed),
		secrets:        map[string]*secretEntry{},
		created:        map[string]*creationOrder{},
	}
	s.quotas = &quotas{svc: s, now: cfg.now, secretRate: cfg.secretRate, project: cfg.projectQuotas}
	return s
}

// timestamp returns the emulator's current time as a Timestamp.
func (s *service) timestamp() *timestamppb.Timestamp { return timestamppb.New(s.now()) }

// canonicalProject maps a project ID to its configured number (see
// WithProjectNumber) so that both spellings address the same resources.
func (s *service) canonicalProject(p string) string {
	if n, ok := s.projectNumbers[p]; ok {
		return n
	}
	return p
}

// newEtag returns a fresh etag. Like the real service's etags it is a quoted
// string: https://cloud.google.com/secret-manager/docs/etags says the etag
// passed back must include its surrounding quotes (the etag "abc" is sent
// as "\"abc\"" from a shell). The content is a strictly increasing hex
// microsecond timestamp, so every change yields a new value.
// Must be called with mu held for writing.
func (s *service) newEtag() string {
	n := time.Now().UnixMicro()
	if n <= s.lastEtag {
		n = s.lastEtag + 1
	}
	s.lastEtag = n
	return `"` + strconv.FormatInt(n, 16) + `"`
}

// checkEtag implements https://cloud.google.com/secret-manager/docs/etags:
// "If an ETag is provided and matches the current resource ETag, the request
// succeeds; otherwise, it fails with a FAILED_PRECONDITION error ... If an
// ETag is not provided, the request proceeds without checking".
func checkEtag(given, current, resource string) error {
	if given == "" || given == current {
		return nil
	}
	return status.Errorf(codes.FailedPrecondition,
		"The etag %s provided in the request does not match the current etag %s of %s", given, current, resource)
}

func errSecretNotFound(name string) error {
	return status.Errorf(codes.NotFound, "Secret [%s] not found.", name)
}

func cloneSecret(p *secretmanagerpb.Secret) *secretmanagerpb.Secret {
	return proto.Clone(p).(*secretmanagerpb.Secret)
}

func cloneVersion(p *secretmanagerpb.SecretVersion) *secretmanagerpb.SecretVersion {
	return proto.Clone(p).(*secretmanagerpb.SecretVersion)
}

// CreateSecret implements service.proto CreateSecret: "Creates a new Secret
// containing no SecretVersions."
func (s *service) CreateSecret(_ context.Context, req *secretmanagerpb.CreateSecretRequest) (*secretmanagerpb.Secret, error) {
	project, err := s.parseProject(req.GetParent(), "parent")
	if err != nil {
		return nil, err
	}
	if err := validateSecretID(req.GetSecretId()); err != nil {
		return nil, err
	}
	in := req.GetSecret()
	if in == nil {
		return nil, invalid("Secret must be provided.")
	}
	if err := checkUnsupportedSecretFields(in); err != nil {
		return nil, err
	}
	if err := validateReplication(in.GetReplication()); err != nil {
		return nil, err
	}
	if err := validateLabels(in.GetLabels()); err != nil {
		return nil, err
	}
	if err := validateAnnotations(in.GetAnnotations()); err != nil {
		return nil, err
	}
	// A new secret has no versions, so any alias points at a missing one.
	if err := validateAliases(in.GetVersionAliases(), 0); err != nil {
		return nil, err
	}
	name := secretName(project, req.GetSecretId())

	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.secrets[name]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "Secret [%s] already exists.", name)
	}
	// Output-only fields in the request (name, create_time, etag) are
	// ignored, as the API ignores output-only fields on input.
	s.seq++
	e := &secretEntry{
		seq: s.seq,
		pb: &secretmanagerpb.Secret{
			Name:        name,
			Replication: proto.Clone(in.GetReplication()).(*secretmanagerpb.Replication),
			CreateTime:  s.timestamp(),
			Labels:      maps.Clone(in.GetLabels()),
			Annotations: maps.Clone(in.GetAnnotations()),
			Etag:        s.newEtag(),
		},
	}
	s.secrets[name] = e
	s.createdIn(project).add(e)
	s.recordSecret(e, false)
	return cloneSecret(e.pb), nil
}

// GetSecret implements service.proto GetSecret: "Gets metadata for a given
// Secret."
func (s *service) GetSecret(_ context.Context, req *secretmanagerpb.GetSecretRequest) (*secretmanagerpb.Secret, error) {
	name, err := s.parseSecretName(req.GetName(), "name")
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if t, stale := s.staleTime(); stale {
		_, snap, ok := s.secretAt(name, t)
		if !ok {
			return nil, errSecretNotFound(name)
		}
		return cloneSecret(snap.pb), nil
	}
	e, ok := s.secrets[name]
	if !ok {
		return nil, errSecretNotFound(name)
	}
	return cloneSecret(e.pb), nil
}

// updatablePaths are the UpdateSecretRequest.update_mask paths the emulator
// applies. Other Secret fields are either immutable/output-only
// (INVALID_ARGUMENT, as the real service rejects changing them) or not
// emulated (UNIMPLEMENTED).
var (
	updatablePaths = map[string]bool{"labels": true, "annotations": true, "version_aliases": true}
	immutablePaths = map[string]bool{
		"name": true, "replication": true, "create_time": true, "etag": true,
		"secret_type": true, "tags": true, "policy_member": true,
	}
	unemulatedPaths = map[string]bool{
		"topics": true, "expire_time": true, "ttl": true, "rotation": true,
		"version_destroy_ttl": true, "customer_managed_encryption": true,
	}
)

// UpdateSecret implements service.proto UpdateSecret: "Updates metadata of an
// existing Secret." update_mask is "Required. Specifies the fields to be
// updated."; only the listed fields change, each replaced as a whole (an
// empty map clears it). Secret.etag, when set, must match the stored etag
// (https://cloud.google.com/secret-manager/docs/etags: "In a secrets.patch
// request, the request ETag is embedded in the Secret data").
func (s *service) UpdateSecret(_ context.Context, req *secretmanagerpb.UpdateSecretRequest) (*secretmanagerpb.Secret, error) {
	in := req.GetSecret()
	if in == nil {
		return nil, invalid("Secret must be provided.")
	}
	name, err := s.parseSecretName(in.GetName(), "secret.name")
	if err != nil {
		return nil, err
	}
	paths := req.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		return nil, invalid("update_mask is required and must list at least one field")
	}
	for _, p := range paths {
		switch {
		case updatablePaths[p]:
		case immutablePaths[p]:
			return nil, invalid("update_mask path %q names an immutable or output-only field", p)
		case unemulatedPaths[p]:
			return nil, status.Errorf(codes.Unimplemented, "gcpsmtest: updating Secret.%s is not emulated", p)
		default:
			return nil, invalid("update_mask path %q is not a field of Secret", p)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.secrets[name]
	if !ok {
		return nil, errSecretNotFound(name)
	}
	if err := checkEtag(in.GetEtag(), e.pb.GetEtag(), "Secret ["+name+"]"); err != nil {
		return nil, err
	}
	// Validate every listed field before changing anything.
	for _, p := range paths {
		switch p {
		case "labels":
			err = validateLabels(in.GetLabels())
		case "annotations":
			err = validateAnnotations(in.GetAnnotations())
		case "version_aliases":
			err = validateAliases(in.GetVersionAliases(), int64(len(e.versions)))
		}
		if err != nil {
			return nil, err
		}
	}
	for _, p := range paths {
		switch p {
		case "labels":
			e.pb.Labels = maps.Clone(in.GetLabels())
		case "annotations":
			e.pb.Annotations = maps.Clone(in.GetAnnotations())
		case "version_aliases":
			e.pb.VersionAliases = maps.Clone(in.GetVersionAliases())
		}
	}
	e.pb.Etag = s.newEtag()
	s.recordSecret(e, false)
	return cloneSecret(e.pb), nil
}

// DeleteSecret implements service.proto DeleteSecret: "Deletes a Secret."
// together with all of its versions. DeleteSecretRequest.etag: "The request
// succeeds if it matches the etag of the currently stored secret object. If
// the etag is omitted, the request succeeds."
func (s *service) DeleteSecret(_ context.Context, req *secretmanagerpb.DeleteSecretRequest) (*emptypb.Empty, error) {
	name, err := s.parseSecretName(req.GetName(), "name")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.secrets[name]
	if !ok {
		return nil, errSecretNotFound(name)
	}
	if err := checkEtag(req.GetEtag(), e.pb.GetEtag(), "Secret ["+name+"]"); err != nil {
		return nil, err
	}
	delete(s.secrets, name)
	s.createdIn(projectOf(name)).remove(e)
	s.bury(name, e)
	return &emptypb.Empty{}, nil
}
