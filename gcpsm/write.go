package gcpsm

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// write adds value as a new version of the secret and moves the current
// alias to it (and the previous alias to expected) under snap's etag,
// then destroys the version the previous alias named before. expected is
// the version the current alias names in snap (0 for a creation, which
// sets no previous alias).
//
// When the move fails because another writer moved the alias first, the
// added version is destroyed and the error wraps
// casstore.ErrVersionMismatch. When it fails although the alias still
// names expected (the remembered or read etag was outdated by a change
// that did not move the alias), write tries once more from the fresh
// etag. A failed move is settled before anything is destroyed (see
// settle), so a version that is or may become current is never destroyed.
func (b *backend) write(ctx context.Context, name string, expected int64, snap snapshot, value []byte) (int64, error) {
	secretName := b.secretName(name)
	for try := 0; ; try++ {
		var addRec attempts
		v, err := b.addVersion(ctx, name, expected, value, &addRec)
		if err != nil {
			return 0, err
		}
		r := b.move(ctx, name, snap, expected, v)
		switch r.outcome {
		case applied:
			if r.err != nil {
				return 0, r.err // the service dropped the previous alias: destroy nothing
			}
			cctx, cancel := cleanupContext(ctx)
			if old := snap.previous(); old > 0 && old != expected && old < v && b.mem.get(secretName).leased != old {
				b.destroy(cctx, name, old, "superseded twice")
			}
			if addRec.ambiguous {
				// An attempt of AddSecretVersion that seemed to fail may
				// have added a version: every version between expected
				// and v is dead now that v is current.
				for o := expected + 1; o < v && o <= expected+maxOrphanSweep; o++ {
					b.destroy(cctx, name, o, "possibly added by a retried AddSecretVersion")
				}
			}
			cancel()
			return v, nil
		case dead:
			if r.destroy {
				cctx, cancel := cleanupContext(ctx)
				b.destroy(cctx, name, v, "its alias move failed")
				cancel()
			}
			if r.retry != nil && try == 0 && ctx.Err() == nil {
				snap = *r.retry
				continue
			}
			return 0, r.err
		default:
			b.logger.WarnContext(ctx, "cloudtokens: could not tell whether a version alias moved; the new version is kept (DestroyStaleVersions removes it if it is dead)",
				"secret", b.secretID(name), "version", v, "error", r.err)
			b.mem.forget(secretName)
			return 0, r.err
		}
	}
}

// maxOrphanSweep bounds the versions a write destroys after an ambiguous
// AddSecretVersion.
const maxOrphanSweep = 8

// addVersion adds value as a new version. While the per-secret write
// rate answers RESOURCE_EXHAUSTED it waits and tries again, but first
// checks (GetSecret) that the current alias still names expected: a
// write that has already lost gives casstore.ErrVersionMismatch at once.
func (b *backend) addVersion(ctx context.Context, name string, expected int64, value []byte, rec *attempts) (int64, error) {
	crc := checksum(value)
	th := b.newThrottle()
	for {
		if err := b.pace.wait(ctx, b.secretName(name)); err != nil {
			return 0, b.wrap(ctx, "add version to", name, err)
		}
		ver, err := b.client.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{
			Parent:  b.secretName(name),
			Payload: &secretmanagerpb.SecretPayload{Data: value, DataCrc32C: &crc},
		}, b.retryUnavailable(rec))
		if th.wait(ctx, err) {
			if expected == 0 {
				continue // a creation: the move decides
			}
			if now, ok := b.peek(ctx, name); ok && now.current() > expected {
				return 0, fmt.Errorf("gcpsm: add version to %s: %w: version %d became current while the write was throttled", b.secretID(name), casstore.ErrVersionMismatch, now.current())
			}
			continue
		}
		if err != nil {
			return 0, b.wrap(ctx, "add version to", name, err)
		}
		v, ok := versionNumber(ver.GetName())
		if !ok {
			return 0, fmt.Errorf("gcpsm: add version to %s: the service returned version %q, not a version number", b.secretID(name), ver.GetName())
		}
		return v, nil
	}
}

// peek reads the secret's metadata (it may lag) and remembers it.
func (b *backend) peek(ctx context.Context, name string) (snapshot, bool) {
	sec, err := b.client.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: b.secretName(name)}, b.retry(nil))
	if err != nil {
		return snapshot{}, false
	}
	now := snapshotOf(sec)
	b.mem.saw(b.secretName(name), now)
	return now, true
}

type outcome int

const (
	unknown outcome = iota // the move may still apply: keep the version
	applied                // the alias names the new version (or did)
	dead                   // the new version can never become current
)

type moveResult struct {
	outcome outcome
	err     error     // the error to return (may be set with applied)
	destroy bool      // dead: destroy the version (false: gone with its secret)
	retry   *snapshot // dead: the alias still names expected under this fresh etag
}

// move points the current alias at v and the previous alias at expected,
// under snap's etag, keeping the other aliases, and checks that the
// response shows the move.
func (b *backend) move(ctx context.Context, name string, snap snapshot, expected, v int64) moveResult {
	secretName := b.secretName(name)
	aliases := maps.Clone(snap.aliases)
	if aliases == nil {
		aliases = map[string]int64{}
	}
	aliases[CurrentAlias] = v
	if expected > 0 {
		aliases[PreviousAlias] = expected
	}
	var rec attempts
	var resp *secretmanagerpb.Secret
	var err error
	for th := b.newThrottle(); ; {
		resp, err = b.updateAliases(ctx, secretName, snap.etag, aliases, b.retryUnavailable(&rec))
		if !th.wait(ctx, err) {
			break
		}
		// Throttled: try again only while the move can still succeed.
		if now, ok := b.peek(ctx, name); ok {
			if now.current() == v || now.previous() == v {
				return moveResult{outcome: applied} // an earlier, ambiguous attempt
			}
			if now.current() > expected {
				b.mem.setContended(secretName, true)
				return moveResult{outcome: dead, destroy: true,
					err: fmt.Errorf("gcpsm: update %s: %w: version %d became current while the write was throttled", b.secretID(name), casstore.ErrVersionMismatch, now.current())}
			}
		}
	}
	if err == nil {
		got := snapshotOf(resp)
		switch {
		case got.current() == v && (expected == 0 || got.previous() == expected):
			b.mem.saw(secretName, got)
			return moveResult{outcome: applied}
		case got.current() == v:
			// The document is v, but the service dropped the previous
			// alias: keep every version and report it.
			b.mem.forget(secretName)
			return moveResult{outcome: applied, err: b.aliasNotMoved(name, got, expected, v)}
		default:
			// Acknowledged, but the alias does not name v: the write did
			// not happen. Report it rather than lose it silently.
			b.mem.forget(secretName)
			return moveResult{outcome: dead, destroy: true, err: b.aliasNotMoved(name, got, expected, v)}
		}
	}
	if status.Code(err) == codes.NotFound && !rec.ambiguous {
		// Deleted: v went with the secret.
		b.mem.forget(secretName)
		return moveResult{outcome: dead, err: b.wrap(ctx, "update (set alias)", name, err)}
	}
	return b.settle(ctx, name, snap, expected, v, err, rec.ambiguous || ambiguous(status.Code(err)))
}

func (b *backend) aliasNotMoved(name string, got snapshot, expected, v int64) error {
	return fmt.Errorf("gcpsm: update %s: %w: UpdateSecret set %s=%d and %s=%d but answered %s=%d and %s=%d",
		b.secretID(name), ErrAliasNotMoved, CurrentAlias, v, PreviousAlias, expected, CurrentAlias, got.current(), PreviousAlias, got.previous())
}

func (b *backend) updateAliases(ctx context.Context, secretName, etag string, aliases map[string]int64, retry gax.CallOption) (*secretmanagerpb.Secret, error) {
	if err := b.pace.wait(ctx, secretName); err != nil {
		return nil, err
	}
	return b.client.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
		Secret: &secretmanagerpb.Secret{
			Name:           secretName,
			Etag:           etag,
			VersionAliases: aliases,
		},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"version_aliases"}},
	}, retry)
}

// settle finds out what a failed move of the current alias from expected
// to v under snap's etag did. The error alone does not tell: a timeout may
// hide a move that happened, and a retried attempt may report the etag
// mismatch that its own first attempt caused. It reads the secret (at
// least 1 GetSecret) on a context that outlives the caller's:
//
//   - the current alias names v, or the previous alias does: the move
//     happened;
//   - the current alias names a version newer than expected: another
//     writer moved it, so the etag the move carried is gone for good and
//     v is dead;
//   - otherwise (the alias still names expected, or the read lags):
//     after a definitive refusal (every attempt was answered, none
//     applied) v is dead; after an ambiguous failure the move may still
//     be in flight, so settle fences it: an UpdateSecret that changes
//     nothing, under the etag just read. If the fence succeeds, its answer
//     is the real state and the etag the move carried can no longer
//     match; if it fails, the read lagged, and settle reads again (bounded
//     by WithStaleReadWait). If nothing is settled in time the version is
//     kept.
func (b *backend) settle(ctx context.Context, name string, snap snapshot, expected, v int64, moveErr error, wasAmbiguous bool) moveResult {
	secretName := b.secretName(name)
	sctx, cancel := cleanupContext(ctx)
	defer cancel()
	lost := func(retry *snapshot) moveResult {
		r := moveResult{outcome: dead, destroy: true, retry: retry}
		switch {
		case ctx.Err() != nil:
			r.err = b.wrap(ctx, "update (set alias)", name, moveErr)
		case status.Code(moveErr) == codes.FailedPrecondition || wasAmbiguous:
			r.err = fmt.Errorf("gcpsm: update %s: %w: %w", b.secretID(name), casstore.ErrVersionMismatch, moveErr)
		default: // RESOURCE_EXHAUSTED after every retry, PERMISSION_DENIED, ...
			r.err = b.wrap(ctx, "update (set alias)", name, moveErr)
		}
		return r
	}
	var wait *staleWait
	for {
		sec, err := b.client.GetSecret(sctx, &secretmanagerpb.GetSecretRequest{Name: secretName}, b.retry(nil))
		switch {
		case status.Code(err) == codes.NotFound && !wasAmbiguous:
			// Deleted, or a lagging read of a new secret: either way the
			// refused move can never apply.
			return lost(nil)
		case status.Code(err) == codes.NotFound:
			// Deleted, or lagging? Access by number is strongly
			// consistent.
			_, _, perr := b.access(sctx, name, versionName(secretName, v))
			if status.Code(perr) == codes.NotFound {
				b.mem.forget(secretName)
				return moveResult{outcome: dead, err: fmt.Errorf("gcpsm: update %s: %w: the secret was deleted: %w", b.secretID(name), tokenstore.ErrNotFound, moveErr)}
			}
		case err != nil:
			return moveResult{outcome: unknown, err: b.wrap(ctx, "update (set alias)", name, errors.Join(moveErr, err))}
		}
		if err != nil { // a lagging NOT_FOUND: read again
			if wait == nil {
				wait = b.newStaleWait()
			}
			if !wait.next(sctx) {
				return moveResult{outcome: unknown, err: b.wrap(ctx, "update (set alias)", name, moveErr)}
			}
			continue
		}
		now := snapshotOf(sec)
		b.mem.saw(secretName, now)
		switch cur := now.current(); {
		case cur == v || now.previous() == v:
			return moveResult{outcome: applied}
		case cur > expected:
			b.mem.setContended(secretName, true)
			return lost(nil)
		case !wasAmbiguous:
			b.mem.forgetEtag(secretName, snap.etag)
			if status.Code(moveErr) == codes.FailedPrecondition && cur == expected && now.etag != snap.etag {
				return lost(&now)
			}
			return lost(nil)
		}
		fenced, err := b.updateAliases(sctx, secretName, now.etag, now.aliases, b.retry(nil))
		switch {
		case err == nil:
			got := snapshotOf(fenced)
			b.mem.saw(secretName, got)
			if got.current() == v || got.previous() == v {
				return moveResult{outcome: applied}
			}
			if got.current() == expected {
				return lost(&got)
			}
			return lost(nil)
		case status.Code(err) != codes.FailedPrecondition:
			return moveResult{outcome: unknown, err: b.wrap(ctx, "update (set alias)", name, errors.Join(moveErr, err))}
		}
		if wait == nil {
			wait = b.newStaleWait()
		}
		if !wait.next(sctx) {
			return moveResult{outcome: unknown, err: b.wrap(ctx, "update (set alias)", name, moveErr)}
		}
	}
}

// destroy destroys version v of a secret, best effort: a failure leaves a
// billed but dead version behind (see Store.DestroyStaleVersions) and is
// logged. Callers pass a cleanup context (see cleanupContext).
func (b *backend) destroy(ctx context.Context, name string, v int64, why string) {
	_, err := b.client.DestroySecretVersion(ctx, &secretmanagerpb.DestroySecretVersionRequest{
		Name: versionName(b.secretName(name), v),
	}, b.retry(nil))
	switch status.Code(err) {
	case codes.OK, codes.NotFound:
		return // destroyed, or gone with its secret
	case codes.FailedPrecondition:
		return // already destroyed
	}
	b.logger.WarnContext(ctx, "cloudtokens: could not destroy a dead secret version; it stays billed until DestroyStaleVersions",
		"secret", b.secretID(name), "version", v, "reason", why, "error", err)
}
