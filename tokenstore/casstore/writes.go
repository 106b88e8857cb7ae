package casstore

import (
	"bytes"
	"context"
	"errors"

	"github.com/cloudtokens/cloudtokens/tokenstore"
)

// A write can fail without saying whether the backend applied it: the
// response was lost, the call timed out, or the caller's context ended
// while the request was on its way. Every write of the engine goes
// through the three functions below, which find out by reading the
// document back (on a context that survives the caller's), so that a
// write that happened is never reported as failed and never repeated as
// if it had not: a create or update is ours when the document now holds
// exactly the bytes we wrote (token documents carry a generation and a
// timestamp, index buckets a generation and their write times, so two
// writers practically never write the same bytes, and if they did, the
// document would hold what both wanted); a delete happened when the
// document is gone.

// definite reports whether a backend error says for sure what happened
// (nothing was written).
func definite(err error) bool {
	return errors.Is(err, ErrExists) || errors.Is(err, ErrVersionMismatch) ||
		errors.Is(err, tokenstore.ErrNotFound) || errors.Is(err, tokenstore.ErrInvalidToken) ||
		errors.Is(err, tokenstore.ErrMalformed)
}

// create creates name with value; see above.
func (s *Store) create(ctx context.Context, name string, value []byte) (string, error) {
	v, err := s.b.Create(ctx, name, value)
	if err == nil || definite(err) {
		return v, err
	}
	if obj, ok := s.readBack(ctx, name); ok && bytes.Equal(obj.Value, value) {
		return obj.Version, nil
	}
	return "", err
}

// update replaces name at version with value; see above.
func (s *Store) update(ctx context.Context, name string, value []byte, version string) (string, error) {
	v, err := s.b.Update(ctx, name, value, version)
	if err == nil || definite(err) {
		return v, err
	}
	if obj, ok := s.readBack(ctx, name); ok && obj.Version != version && bytes.Equal(obj.Value, value) {
		return obj.Version, nil
	}
	return "", err
}

// remove deletes name; see above. A document that is gone after an
// ambiguous failure was deleted.
func (s *Store) remove(ctx context.Context, name string) error {
	err := s.b.Delete(ctx, name)
	if err == nil || definite(err) {
		return err
	}
	cctx, cancel := s.cleanupContext(ctx)
	defer cancel()
	if _, rerr := s.b.Read(cctx, name); errors.Is(rerr, tokenstore.ErrNotFound) {
		return nil
	}
	return err
}

func (s *Store) readBack(ctx context.Context, name string) (Object, bool) {
	cctx, cancel := s.cleanupContext(ctx)
	defer cancel()
	obj, err := s.b.Read(cctx, name)
	return obj, err == nil
}
