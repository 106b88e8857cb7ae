package gcpsm

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

var _ casstore.VersionLeaser = (*backend)(nil)

// LeaseVersion implements casstore.VersionLeaser: the lease on version n
// of a secret is the destruction of the version its previous alias
// names (n's predecessor). DestroySecretVersion succeeds once per
// version, so exactly one caller takes the lease; every other call is
// answered FAILED_PRECONDITION, and GetSecretVersion tells it when the
// lease was taken (destroy_time). A refresh under this lease writes the
// token once (AddSecretVersion and UpdateSecret, 2 write requests), and
// that write destroys nothing more: the lease and the save together cost
// 3 write requests, as much as a save alone, where a lease written into
// the secret costs 2 or 3 more. The secret keeps 1 live version during
// the lease and 2 after the save.
//
// Cost: DestroySecretVersion and 1 AccessSecretVersion (the check below),
// plus GetSecret when this Store does not remember the secret's aliases
// at version n. Another caller's lease costs it DestroySecretVersion and
// GetSecretVersion.
//
// Destroying the predecessor does not check that n is still current: a
// write that moved the alias past n may not have destroyed it yet (its
// process died in between). So after the destruction the lease reads
// version n+1 by number, which is strongly consistent: if it does not
// exist, no write has moved the alias past n, and none that might has
// added its version yet; any write that adds it now moves the alias
// under an etag it read before, which a lease holder's own write does not
// outdate, so the engine's compare-and-swap orders it as with any
// concurrent save. If n+1 exists, the lease reports
// casstore.ErrNoVersionLease and the engine writes its lease into the
// secret, a compare-and-swap that settles which of the two came first.
//
// A destruction whose response was lost and that a retry then finds
// already done cannot be told apart from another caller's lease; it
// counts as another's, so no one refreshes until the lease TTL has run
// out, and the next lease is written into the secret.
func (b *backend) LeaseVersion(ctx context.Context, name, version string) (bool, time.Time, error) {
	v, err := strconv.ParseInt(version, 10, 64)
	if err != nil || v < 1 {
		return false, time.Time{}, fmt.Errorf("gcpsm: lease %s: %w: %q is not a version of this store", b.secretID(name), casstore.ErrVersionMismatch, version)
	}
	secretName := b.secretName(name)
	m := b.mem.get(secretName)
	if m.floor > v {
		return false, time.Time{}, fmt.Errorf("gcpsm: lease %s: %w: version %d has been current since version %d", b.secretID(name), casstore.ErrVersionMismatch, m.floor, v)
	}
	snap := m.snap
	if snap.etag == "" || snap.current() != v {
		if snap, err = b.readSnapshot(ctx, name, v, m); err != nil {
			return false, time.Time{}, err
		}
	}
	prev := snap.previous()
	if prev <= 0 || prev >= v {
		return false, time.Time{}, fmt.Errorf("gcpsm: lease %s: %w: version %d has no previous version", b.secretID(name), casstore.ErrNoVersionLease, v)
	}
	_, err = b.client.DestroySecretVersion(ctx, &secretmanagerpb.DestroySecretVersionRequest{
		Name: versionName(secretName, prev),
	}, b.retry(nil))
	switch status.Code(err) {
	case codes.OK:
	case codes.FailedPrecondition:
		return false, b.destroyedAt(ctx, secretName, prev), nil
	default:
		return false, time.Time{}, b.wrap(ctx, "lease (destroy the previous version of)", name, err)
	}
	b.mem.sawLeased(secretName, prev)
	_, _, err = b.access(ctx, name, versionName(secretName, v+1))
	switch status.Code(err) {
	case codes.NotFound:
		return true, time.Time{}, nil
	case codes.OK, codes.FailedPrecondition:
		return false, time.Time{}, fmt.Errorf("gcpsm: lease %s: %w: version %d exists", b.secretID(name), casstore.ErrNoVersionLease, v+1)
	default:
		// The lease is taken, but unconfirmed: a lease written into the
		// secret settles it.
		return false, time.Time{}, fmt.Errorf("gcpsm: lease %s: %w: %w", b.secretID(name), casstore.ErrNoVersionLease, b.wrap(ctx, "access", name, err))
	}
}

// destroyedAt returns when version v of a secret was destroyed, or the
// zero time if GetSecretVersion does not tell.
func (b *backend) destroyedAt(ctx context.Context, secretName string, v int64) time.Time {
	ver, err := b.client.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: versionName(secretName, v)}, b.retry(nil))
	if err != nil || ver.GetState() != secretmanagerpb.SecretVersion_DESTROYED || ver.GetDestroyTime() == nil {
		return time.Time{}
	}
	return ver.GetDestroyTime().AsTime()
}
