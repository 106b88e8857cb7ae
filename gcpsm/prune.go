package gcpsm

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DestroyStaleVersions destroys the ENABLED and DISABLED versions of the
// store's secrets that can never be read as current again, and returns
// how many it destroyed. It keeps, on every secret, the versions the
// current and previous aliases name.
//
// Every write destroys the version that the previous alias named before
// it, and a writer that loses a race destroys the version it added, so a
// secret normally keeps at most 2 versions that are not DESTROYED. Versions
// stay behind, billed, when a process dies (or loses its connection)
// between adding a version and destroying a dead one. This method is the
// clean-up for them, safe while other processes use the store:
//
//   - a version older than the one the current alias names is dead (the
//     alias only moves forward); this holds even when the listing lags;
//   - a version newer than the current one may belong to a write in
//     progress. It is dead once the secret's etag has changed since the
//     version was added, because a writer moves the alias only under the
//     etag it held before adding its version. To prove that, the method
//     fences the secret: an UpdateSecret that changes nothing, under the
//     etag GetSecret shows, after listing the versions. Its answer is the
//     real state, and afterwards no listed version can become current
//     unless that answer names it. (A write in flight at that moment
//     fails its compare-and-swap and is made again by its store.) When
//     the fence is refused because GetSecret lagged, the newer versions
//     are left for a later run.
//
// Secrets whose creation never finished (no current alias) are skipped:
// the next create of the document takes them over.
//
// Cost: one ListSecrets call per 5,000 secrets, one ListSecretVersions call
// per secret, one GetSecret and one UpdateSecret per secret with versions
// newer than its current one, one DestroySecretVersion per destroyed
// version.
func (s *Store) DestroyStaleVersions(ctx context.Context) (int, error) {
	b := s.b
	destroyed := 0
	err := b.listSecrets(ctx, func(sec *secretmanagerpb.Secret, name string) error {
		listed := snapshotOf(sec)
		cur, ok := listed.aliases[CurrentAlias]
		if !ok {
			return nil
		}
		live, err := b.liveVersions(ctx, name)
		if err != nil {
			return err
		}
		keep := []int64{cur, listed.previous()}
		fenced := false
		if slices.ContainsFunc(live, func(v int64) bool { return v > cur }) {
			real, ferr := b.fence(ctx, name)
			switch {
			case ferr == nil:
				keep = []int64{real.current(), real.previous()}
				fenced = true
			case status.Code(ferr) == codes.FailedPrecondition:
				b.logger.DebugContext(ctx, "cloudtokens: GetSecret lagged; versions newer than the current one are left for a later run",
					"secret", b.secretID(name))
			case status.Code(ferr) == codes.NotFound:
				return nil
			default:
				return b.wrap(ctx, "fence", name, ferr)
			}
		}
		for _, v := range live {
			if slices.Contains(keep, v) || (v > cur && !fenced) {
				continue
			}
			_, err := b.client.DestroySecretVersion(ctx, &secretmanagerpb.DestroySecretVersionRequest{
				Name: versionName(b.secretName(name), v),
			}, b.retry(nil))
			switch status.Code(err) {
			case codes.OK:
				destroyed++
			case codes.FailedPrecondition, codes.NotFound:
				// Destroyed by someone else since, or gone with the secret.
			default:
				return b.wrap(ctx, fmt.Sprintf("destroy version %d of", v), name, err)
			}
		}
		return nil
	})
	return destroyed, err
}

// liveVersions lists the ENABLED and DISABLED versions of a secret.
func (b *backend) liveVersions(ctx context.Context, name string) ([]int64, error) {
	var out []int64
	it := b.client.ListSecretVersions(ctx, &secretmanagerpb.ListSecretVersionsRequest{
		Parent:   b.secretName(name),
		PageSize: listPageSize,
		Filter:   "state:ENABLED OR state:DISABLED",
	}, b.retry(nil))
	for {
		ver, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if status.Code(err) == codes.NotFound {
			return nil, nil // deleted since it was listed
		}
		if err != nil {
			return nil, b.wrap(ctx, "list versions of", name, err)
		}
		if v, ok := versionNumber(ver.GetName()); ok && ver.GetState() != secretmanagerpb.SecretVersion_DESTROYED {
			out = append(out, v)
		}
	}
}

// fence reads the secret and writes its aliases back unchanged under the
// etag it read, and returns the state the write answered: the real one.
// The write changes the etag, so every alias move prepared under an
// earlier etag fails. A GetSecret that lagged makes the write fail with
// FAILED_PRECONDITION.
func (b *backend) fence(ctx context.Context, name string) (snapshot, error) {
	secretName := b.secretName(name)
	sec, err := b.client.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: secretName}, b.retry(nil))
	if err != nil {
		return snapshot{}, err
	}
	now := snapshotOf(sec)
	resp, err := b.updateAliases(ctx, secretName, now.etag, now.aliases, b.retry(nil))
	if err != nil {
		return snapshot{}, err
	}
	got := snapshotOf(resp)
	b.mem.saw(secretName, got)
	return got, nil
}
