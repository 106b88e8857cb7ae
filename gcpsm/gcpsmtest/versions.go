package gcpsmtest

import (
	"bytes"
	"context"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error texts follow what the real service answers, e.g.
// "FAILED_PRECONDITION: Secret Version [projects/1/secrets/s/versions/1] is
// in DISABLED state." and "NOT_FOUND: Secret [projects/1/secrets/s] not found
// or has no versions.".

func errVersionNotFound(secret, version string) error {
	return status.Errorf(codes.NotFound, "Secret Version [%s/versions/%s] not found.", secret, version)
}

func errVersionState(v *versionEntry) error {
	return status.Errorf(codes.FailedPrecondition, "Secret Version [%s] is in %s state.", v.pb.GetName(), v.pb.GetState())
}

// replicationStatus mirrors the secret's replication policy onto a new
// version, as SecretVersion.replication_status does.
func replicationStatus(r *secretmanagerpb.Replication) *secretmanagerpb.ReplicationStatus {
	if um := r.GetUserManaged(); um != nil {
		st := &secretmanagerpb.ReplicationStatus_UserManagedStatus{}
		for _, rep := range um.GetReplicas() {
			st.Replicas = append(st.Replicas, &secretmanagerpb.ReplicationStatus_UserManagedStatus_ReplicaStatus{Location: rep.GetLocation()})
		}
		return &secretmanagerpb.ReplicationStatus{ReplicationStatus: &secretmanagerpb.ReplicationStatus_UserManaged{UserManaged: st}}
	}
	return &secretmanagerpb.ReplicationStatus{ReplicationStatus: &secretmanagerpb.ReplicationStatus_Automatic{
		Automatic: &secretmanagerpb.ReplicationStatus_AutomaticStatus{},
	}}
}

// AddSecretVersion implements service.proto AddSecretVersion: "Creates a new
// SecretVersion containing secret data and attaches it to an existing
// Secret." Version IDs "start at 1 and are incremented for each subsequent
// version of the secret" (resources.proto, SecretVersion.name); the request
// carries no etag. A new version is ENABLED.
func (s *service) AddSecretVersion(_ context.Context, req *secretmanagerpb.AddSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	name, err := s.parseSecretName(req.GetParent(), "parent")
	if err != nil {
		return nil, err
	}
	sum, clientSum, err := validatePayload(req.GetPayload())
	if err != nil {
		return nil, err
	}
	data := bytes.Clone(req.GetPayload().GetData())
	if data == nil {
		data = []byte{}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.secrets[name]
	if !ok {
		return nil, errSecretNotFound(name)
	}
	n := int64(len(e.versions)) + 1
	v := &versionEntry{
		pb: &secretmanagerpb.SecretVersion{
			Name:                           versionName(name, n),
			CreateTime:                     s.timestamp(),
			State:                          secretmanagerpb.SecretVersion_ENABLED,
			ReplicationStatus:              replicationStatus(e.pb.GetReplication()),
			Etag:                           s.newEtag(),
			ClientSpecifiedPayloadChecksum: clientSum,
		},
		data: data,
		crc:  sum,
	}
	e.versions = append(e.versions, v)
	s.recordVersion(v)
	s.recordSecret(e, false)
	return cloneVersion(v.pb), nil
}

// resolveVersion resolves a version segment for GetSecretVersion and
// AccessSecretVersion: a number, "latest" ("an alias to the most recently
// created SecretVersion", service.proto GetSecretVersionRequest.name: the
// newest version whatever its state, so a disabled newest version makes
// "latest" unreadable rather than falling back to an older one) or a
// user-defined alias from Secret.version_aliases ("Access by alias is only be
// supported on GetSecretVersion and AccessSecretVersion", resources.proto).
//
// With WithEventualConsistency, "latest" and aliases resolve in a lagging
// snapshot of the secret, and the version they name is returned in its
// current state; a number always resolves in the current state.
// Must be called with mu held.
func (s *service) resolveVersion(secret, seg string) (*versionEntry, error) {
	n, numeric, err := parseVersionNumber(seg)
	if err != nil {
		return nil, err
	}
	e, ok := s.secrets[secret]
	var aliases map[string]int64
	var versions int64
	if ok {
		aliases, versions = e.pb.GetVersionAliases(), int64(len(e.versions))
	}
	if t, stale := s.staleTime(); stale && !numeric {
		var snap secretSnap
		e, snap, ok = s.secretAt(secret, t)
		aliases, versions = snap.pb.GetVersionAliases(), snap.versions
	}
	switch {
	case numeric:
	case seg == versionLatest:
		if !ok || versions == 0 {
			return nil, status.Errorf(codes.NotFound, "Secret [%s] not found or has no versions.", secret)
		}
		n = versions
	default:
		if !ok {
			return nil, errSecretNotFound(secret)
		}
		alias, found := aliases[seg]
		if !found {
			return nil, errVersionNotFound(secret, seg)
		}
		n = alias
	}
	if !ok || n > int64(len(e.versions)) {
		return nil, errVersionNotFound(secret, seg)
	}
	return e.versions[n-1], nil
}

// GetSecretVersion implements service.proto GetSecretVersion: "Gets metadata
// for a SecretVersion." in any state. The returned name carries the resolved
// version number, not the alias.
func (s *service) GetSecretVersion(_ context.Context, req *secretmanagerpb.GetSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	return viewVersion(s, req.GetName(), func(v *versionEntry) (*secretmanagerpb.SecretVersion, error) {
		return cloneVersion(v.pb), nil
	})
}

// viewVersion resolves the version resource name (a number, "latest" or an
// alias) and calls fn with it under the read lock.
func viewVersion[T any](s *service, name string, fn func(*versionEntry) (T, error)) (T, error) {
	var zero T
	secret, seg, err := s.parseVersionName(name, "name")
	if err != nil {
		return zero, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, err := s.resolveVersion(secret, seg)
	if err != nil {
		return zero, err
	}
	return fn(v)
}

// AccessSecretVersion implements service.proto AccessSecretVersion:
// "Accesses a SecretVersion. This call returns the secret data." Only an
// ENABLED version can be accessed (resources.proto SecretVersion.State:
// DISABLED "may not be accessed"; DESTROYED "the secret data is no longer
// stored"); otherwise FAILED_PRECONDITION "... is in DISABLED state.". The
// payload carries data_crc32c, the CRC32C the server stored on
// AddSecretVersion (resources.proto SecretPayload.data_crc32c).
func (s *service) AccessSecretVersion(_ context.Context, req *secretmanagerpb.AccessSecretVersionRequest) (*secretmanagerpb.AccessSecretVersionResponse, error) {
	return viewVersion(s, req.GetName(), func(v *versionEntry) (*secretmanagerpb.AccessSecretVersionResponse, error) {
		if v.pb.GetState() != secretmanagerpb.SecretVersion_ENABLED {
			return nil, errVersionState(v)
		}
		crc := int64(v.crc)
		return &secretmanagerpb.AccessSecretVersionResponse{
			Name:    v.pb.GetName(),
			Payload: &secretmanagerpb.SecretPayload{Data: bytes.Clone(v.data), DataCrc32C: &crc},
		}, nil
	})
}

// EnableSecretVersion implements service.proto EnableSecretVersion: "Sets the
// state of the SecretVersion to ENABLED."
func (s *service) EnableSecretVersion(_ context.Context, req *secretmanagerpb.EnableSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	return s.changeState(req.GetName(), req.GetEtag(), secretmanagerpb.SecretVersion_ENABLED)
}

// DisableSecretVersion implements service.proto DisableSecretVersion: "Sets
// the state of the SecretVersion to DISABLED."
func (s *service) DisableSecretVersion(_ context.Context, req *secretmanagerpb.DisableSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	return s.changeState(req.GetName(), req.GetEtag(), secretmanagerpb.SecretVersion_DISABLED)
}

// DestroySecretVersion implements service.proto DestroySecretVersion: "Sets
// the state of the SecretVersion to DESTROYED and irrevocably destroys the
// secret data." destroy_time is set ("Only present if state is DESTROYED",
// resources.proto SecretVersion.destroy_time).
func (s *service) DestroySecretVersion(_ context.Context, req *secretmanagerpb.DestroySecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	return s.changeState(req.GetName(), req.GetEtag(), secretmanagerpb.SecretVersion_DESTROYED)
}

// changeState applies a version state transition.
//
//   - The version must be named by number: aliases are documented for Get and
//     Access only, and "latest" only on GetSecretVersionRequest /
//     AccessSecretVersionRequest; the emulator answers INVALID_ARGUMENT for
//     both here (the docs do not say what the service does).
//   - The request etag, if any, must match the version etag
//     (https://cloud.google.com/secret-manager/docs/etags).
//   - DESTROYED is terminal: "A version may not leave this state once
//     entered" (resources.proto SecretVersion.State.DESTROYED), so any
//     transition of a destroyed version fails with FAILED_PRECONDITION
//     (destroying twice included; the docs are silent on that case).
//   - Every successful call issues a new etag, even when the state does not
//     change: "Even when an update doesn't change a resource's state, it
//     still updates the resource ETag." (etags docs). The secret's etag is
//     not touched: "updating a secret version doesn't affect the secret
//     ETag".
func (s *service) changeState(name, etag string, to secretmanagerpb.SecretVersion_State) (*secretmanagerpb.SecretVersion, error) {
	secret, seg, err := s.parseVersionName(name, "name")
	if err != nil {
		return nil, err
	}
	n, numeric, err := parseVersionNumber(seg)
	if err != nil {
		return nil, err
	}
	if !numeric {
		return nil, invalid("Invalid secret version %q: state changes require a version number; 'latest' and aliases are only supported by GetSecretVersion and AccessSecretVersion", seg)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.secrets[secret]
	if !ok || n > int64(len(e.versions)) {
		return nil, errVersionNotFound(secret, seg)
	}
	v := e.versions[n-1]
	if err := checkEtag(etag, v.pb.GetEtag(), "Secret Version ["+v.pb.GetName()+"]"); err != nil {
		return nil, err
	}
	if v.pb.GetState() == secretmanagerpb.SecretVersion_DESTROYED {
		return nil, errVersionState(v)
	}
	v.pb.State = to
	if to == secretmanagerpb.SecretVersion_DESTROYED {
		v.data = nil
		v.pb.DestroyTime = s.timestamp()
	}
	v.pb.Etag = s.newEtag()
	s.recordVersion(v)
	return cloneVersion(v.pb), nil
}
