package casstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/cloudtokens/cloudtokens/observe"
	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// ImportToken implements tokenstore.Importer: it stores t exactly, under
// t.ID, for migrations and restores. A record with that ID is replaced
// (its dropped keys released, its new keys claimed); otherwise a tombstone
// is created under t.ID and replaced by t in the same way (one write more
// than an insert). A key that
// another record holds gives tokenstore.ErrConflict and changes nothing.
// Importing a token that is already stored as given writes nothing.
func (s *Store) ImportToken(ctx context.Context, t *tokenstore.Token) (err error) {
	ctx, span := s.start(ctx, observe.ImportToken, tokenIDOfToken(t))
	defer span.End(&err)
	if t == nil {
		return fmt.Errorf("%w: nil token", tokenstore.ErrInvalidToken)
	}
	if err := tokenstore.ValidateID(t.ID); err != nil {
		return err
	}
	if err := tokenstore.ValidateForSave(t); err != nil {
		return err
	}
	if _, err := tokenstore.MarshalDocument(t); err != nil {
		return err
	}
	nt := t.Clone()
	return s.retry(ctx, "ImportToken", func() error {
		mu := stripe(&s.saveMu, "id:"+nt.ID)
		mu.Lock()
		defer mu.Unlock()
		snaps := bucketSnaps{}
		st, err := s.readDoc(ctx, nt.ID)
		if errors.Is(err, tokenstore.ErrNotFound) {
			// A new ID: a tombstone first, so that two imports of one ID
			// meet at a compare-and-swap on the document (as two updates
			// do) rather than at their claims.
			st, err = s.writeDoc(ctx, nil, &tokenstore.Token{ID: nt.ID}, tokenstore.Meta{Deleted: s.now().UnixMilli()})
			if errors.Is(err, ErrExists) {
				return fmt.Errorf("%w: token %q was created meanwhile", errRetry, nt.ID)
			}
		}
		switch {
		case err != nil:
			return err
		case !st.tombstone() && sameToken(st.tok, nt) && st.meta.Lease == nil:
			return nil
		}
		return s.replace(ctx, st, nt, claimRequest{saving: nt, exact: true}, snaps, false)
	})
}
