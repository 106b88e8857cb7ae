package gcpsm

import (
	"context"
	"errors"
	"fmt"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/iterator"
)

// DestroyStaleVersions destroys the ENABLED and DISABLED versions of the
// store's secrets that are older than the version the current alias names,
// and returns how many it destroyed.
//
// The store destroys a superseded version as soon as it has replaced it,
// and a writer that loses a race destroys the version it added; so every
// secret normally keeps exactly one version that is not DESTROYED. Only a
// process that dies (or gets no answer from the service) between adding a
// version and destroying the dead one leaves a version behind, which
// stays billed. This method is the clean-up for that case; it is safe to run
// while other processes use the store, because a version older than the
// current one can never become current again. Versions newer than the
// current one may belong to a write in progress and are left alone, as are
// secrets whose creation never finished (they have no current alias).
//
// Cost: one ListSecrets call per 250 secrets, one ListSecretVersions call
// per secret, one DestroySecretVersion call per destroyed version.
func (s *Store) DestroyStaleVersions(ctx context.Context) (int, error) {
	b := s.b
	destroyed := 0
	err := b.listSecrets(ctx, func(sec *secretmanagerpb.Secret, name string) error {
		cur, ok := sec.GetVersionAliases()[CurrentAlias]
		if !ok {
			return nil
		}
		secretName := b.secretName(name)
		it := b.client.ListSecretVersions(ctx, &secretmanagerpb.ListSecretVersionsRequest{
			Parent:   secretName,
			PageSize: 250,
			Filter:   "state:ENABLED OR state:DISABLED",
		})
		for {
			ver, err := it.Next()
			if errors.Is(err, iterator.Done) {
				return nil
			}
			if err != nil {
				return b.wrap("list versions of", name, err)
			}
			v, ok := versionNumber(ver.GetName())
			if !ok || v >= cur || ver.GetState() == secretmanagerpb.SecretVersion_DESTROYED {
				continue
			}
			if _, err := b.client.DestroySecretVersion(ctx, &secretmanagerpb.DestroySecretVersionRequest{
				Name: versionName(secretName, v),
			}); err != nil {
				return fmt.Errorf("gcpsm: destroy %s version %d: %w", b.secretID(name), v, err)
			}
			destroyed++
		}
	})
	return destroyed, err
}
