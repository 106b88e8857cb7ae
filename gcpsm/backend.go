package gcpsm

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"maps"
	"strconv"
	"strings"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// backend implements casstore.Backend and casstore.Lister on Secret
// Manager. A document is a secret; its value is the payload of the version
// that the secret's CurrentAlias names, and its casstore version is that
// version's number.
//
// Invariant: once UpdateSecret has moved the alias of a secret to version
// n, no version below n can ever become current again. A writer reads the
// secret (and its etag) before it adds its version, so a writer whose
// version is below n read the secret before the move to n, and its
// UpdateSecret fails on the stale etag. Versions below the current one are
// therefore dead, and destroying them is always safe.
type backend struct {
	client      *secretmanager.Client
	parent      string // "projects/<project>"
	prefix      string
	labels      map[string]string
	replication *secretmanagerpb.Replication
	readWorkers int
	logger      *slog.Logger
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func checksum(b []byte) int64 { return int64(crc32.Checksum(b, crcTable)) }

func (b *backend) secretID(name string) string { return b.prefix + "_" + name }

func (b *backend) secretName(name string) string {
	return b.parent + "/secrets/" + b.secretID(name)
}

func versionName(secret string, v int64) string {
	return secret + "/versions/" + strconv.FormatInt(v, 10)
}

// versionNumber returns the number at the end of a version resource name.
func versionNumber(name string) (int64, bool) {
	i := strings.LastIndexByte(name, '/')
	n, err := strconv.ParseInt(name[i+1:], 10, 64)
	return n, err == nil && n > 0
}

// wrap maps a Secret Manager error onto the sentinels the engine expects,
// keeping the cause: NOT_FOUND is tokenstore.ErrNotFound, ALREADY_EXISTS is
// casstore.ErrExists; every other code (PERMISSION_DENIED included) keeps
// only the gRPC status, which errors.As and status.Code still find.
func (b *backend) wrap(op, name string, err error) error {
	id := b.secretID(name)
	switch status.Code(err) {
	case codes.NotFound:
		return fmt.Errorf("gcpsm: %s %s: %w: %w", op, id, tokenstore.ErrNotFound, err)
	case codes.AlreadyExists:
		return fmt.Errorf("gcpsm: %s %s: %w: %w", op, id, casstore.ErrExists, err)
	}
	return fmt.Errorf("gcpsm: %s %s: %w", op, id, err)
}

// Read accesses the version the current alias names: 1 call.
func (b *backend) Read(ctx context.Context, name string) (casstore.Object, error) {
	resp, err := b.client.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{
		Name: b.secretName(name) + "/versions/" + CurrentAlias,
	})
	if err != nil {
		return casstore.Object{}, b.wrap("access", name, err)
	}
	v, ok := versionNumber(resp.GetName())
	if !ok {
		// Without the resolved number the version cannot serve a
		// compare-and-swap; reading it again by number could pair the
		// payload with a later version.
		return casstore.Object{}, fmt.Errorf("gcpsm: access %s: the service returned version %q, not a version number", b.secretID(name), resp.GetName())
	}
	data := resp.GetPayload().GetData()
	if c := resp.GetPayload().DataCrc32C; c != nil && *c != checksum(data) {
		return casstore.Object{}, fmt.Errorf("gcpsm: access %s version %d: %w", b.secretID(name), v, ErrChecksum)
	}
	return casstore.Object{Value: data, Version: strconv.FormatInt(v, 10)}, nil
}

// ReadMany reads each document with its own access call, at most
// readWorkers at a time.
func (b *backend) ReadMany(ctx context.Context, names []string) ([]casstore.Result, error) {
	return casstore.ReadEach(ctx, names, b.readWorkers, b.Read)
}

func checkSize(name string, value []byte) error {
	if len(value) > tokenstore.MaxDocumentSize {
		return fmt.Errorf("%w: document %s is %d bytes, a Secret Manager payload holds at most %d", tokenstore.ErrTooLarge, name, len(value), tokenstore.MaxDocumentSize)
	}
	return nil
}

// Create makes the secret, adds the first version and points the current
// alias at it under the etag CreateSecret returned: 3 calls.
//
// A secret that exists without the alias is a creation that has not
// finished (or never will: its process died). Readers see it as missing,
// so Create takes it over: it adds its version and moves the alias under
// the etag it read. When several creators race for the same secret, the
// etag lets exactly one of them win; the others destroy their versions
// and get casstore.ErrExists.
func (b *backend) Create(ctx context.Context, name string, value []byte) (string, error) {
	if err := checkSize(name, value); err != nil {
		return "", err
	}
	secretName := b.secretName(name)
	sec, err := b.client.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{
		Parent:   b.parent,
		SecretId: b.secretID(name),
		Secret: &secretmanagerpb.Secret{
			Replication: b.replication,
			Labels:      b.labels,
		},
	})
	if status.Code(err) == codes.AlreadyExists {
		existing, gerr := b.client.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: secretName})
		if gerr != nil {
			if status.Code(gerr) == codes.NotFound {
				// Deleted in between: let the engine try again.
				return "", b.wrap("create", name, err)
			}
			return "", b.wrap("create (get)", name, gerr)
		}
		if _, ok := existing.GetVersionAliases()[CurrentAlias]; ok {
			return "", b.wrap("create", name, err)
		}
		sec = existing // an unfinished creation: take it over
	} else if err != nil {
		return "", b.wrap("create", name, err)
	}
	v, err := b.commitVersion(ctx, name, secretName, sec, value, "create", "lost a create race", func(err error) error {
		return fmt.Errorf("gcpsm: create %s: %w (another writer finished first): %w", b.secretID(name), casstore.ErrExists, err)
	})
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(v, 10), nil
}

// Update is a compare-and-swap: it reads the secret's etag and alias,
// adds a version and moves the alias under that etag, then destroys the
// version it replaced: 4 calls. A race lost before adding (another alias)
// costs 1 call; one lost at the move (another etag) costs 5: the failed
// move is confirmed with GetSecret (see moveOutcome) and the added version
// destroyed. Both give casstore.ErrVersionMismatch.
func (b *backend) Update(ctx context.Context, name string, value []byte, version string) (string, error) {
	if err := checkSize(name, value); err != nil {
		return "", err
	}
	expected, err := strconv.ParseInt(version, 10, 64)
	if err != nil {
		return "", fmt.Errorf("gcpsm: update %s: %w: %q is not a version of this store", b.secretID(name), casstore.ErrVersionMismatch, version)
	}
	secretName := b.secretName(name)
	sec, err := b.client.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: secretName})
	if err != nil {
		return "", b.wrap("update (get)", name, err)
	}
	cur, ok := sec.GetVersionAliases()[CurrentAlias]
	if !ok {
		return "", fmt.Errorf("gcpsm: update %s: %w: the secret has no %q version", b.secretID(name), tokenstore.ErrNotFound, CurrentAlias)
	}
	if cur != expected {
		return "", fmt.Errorf("gcpsm: update %s: %w: current version is %d, not %d", b.secretID(name), casstore.ErrVersionMismatch, cur, expected)
	}
	v, err := b.commitVersion(ctx, name, secretName, sec, value, "update", "lost a compare-and-swap", func(err error) error {
		return fmt.Errorf("gcpsm: update %s: %w: %w", b.secretID(name), casstore.ErrVersionMismatch, err)
	})
	if err != nil {
		return "", err
	}
	b.destroy(ctx, name, secretName, expected, "superseded")
	return strconv.FormatInt(v, 10), nil
}

// commitVersion adds value as a new version and moves the current alias to
// it under sec's etag. When the move was refused because another writer
// got there first, it destroys the added version (noting why) and returns
// lost(err); an ambiguous failure is returned wrapped as "<op> (set alias)".
func (b *backend) commitVersion(ctx context.Context, name, secretName string, sec *secretmanagerpb.Secret, value []byte, op, why string, lost func(error) error) (int64, error) {
	v, err := b.addVersion(ctx, secretName, name, value)
	if err != nil {
		return 0, err
	}
	if err := b.moveAlias(ctx, sec, secretName, v); err != nil {
		switch b.moveOutcome(ctx, name, secretName, sec, v, err) {
		case moveApplied:
		case moveLost:
			b.destroy(ctx, name, secretName, v, why)
			return 0, lost(err)
		default:
			return 0, b.wrap(op+" (set alias)", name, err)
		}
	}
	return v, nil
}

func (b *backend) addVersion(ctx context.Context, secretName, name string, value []byte) (int64, error) {
	crc := checksum(value)
	ver, err := b.client.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{
		Parent:  secretName,
		Payload: &secretmanagerpb.SecretPayload{Data: value, DataCrc32C: &crc},
	})
	if err != nil {
		return 0, b.wrap("add version to", name, err)
	}
	v, ok := versionNumber(ver.GetName())
	if !ok {
		return 0, fmt.Errorf("gcpsm: add version to %s: the service returned version %q, not a version number", b.secretID(name), ver.GetName())
	}
	return v, nil
}

type moveResult int

const (
	moveUnknown moveResult = iota // may still apply: keep the version
	moveApplied                   // the alias names our version after all
	moveLost                      // can never apply: the version is dead
)

// moveOutcome finds out what a failed moveAlias did, with one GetSecret.
// The error alone does not tell: a timeout may hide a move that happened,
// and a client configured to retry UpdateSecret may report the etag
// mismatch of a retry whose first attempt succeeded. Destroying the
// version in either case would destroy the current document, so:
//   - the alias names v: the move happened;
//   - the etag differs from the one the move carried: the move failed
//     and can never happen (etags are never reused), so v is dead;
//   - the etag is unchanged: after a definitive rejection v is dead,
//     otherwise (a timeout, a cancellation) the move may still be in
//     flight and v must stay.
//
// A deleted secret took v with it.
func (b *backend) moveOutcome(ctx context.Context, name, secretName string, before *secretmanagerpb.Secret, v int64, moveErr error) moveResult {
	if status.Code(moveErr) == codes.NotFound {
		return moveUnknown
	}
	now, err := b.client.GetSecret(context.WithoutCancel(ctx), &secretmanagerpb.GetSecretRequest{Name: secretName})
	if err != nil {
		if status.Code(err) != codes.NotFound {
			b.logger.WarnContext(ctx, "cloudtokens: could not tell whether a version alias moved; the new version is kept",
				"secret", b.secretID(name), "version", v, "error", err)
		}
		return moveUnknown
	}
	switch cur, ok := now.GetVersionAliases()[CurrentAlias]; {
	case ok && cur == v:
		return moveApplied
	case now.GetEtag() != before.GetEtag():
		return moveLost
	}
	switch status.Code(moveErr) {
	case codes.FailedPrecondition, codes.Aborted, codes.InvalidArgument:
		return moveLost
	}
	return moveUnknown
}

// moveAlias points the current alias of sec at version v, under sec's
// etag. Other aliases are kept.
func (b *backend) moveAlias(ctx context.Context, sec *secretmanagerpb.Secret, secretName string, v int64) error {
	aliases := maps.Clone(sec.GetVersionAliases())
	if aliases == nil {
		aliases = map[string]int64{}
	}
	aliases[CurrentAlias] = v
	_, err := b.client.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
		Secret: &secretmanagerpb.Secret{
			Name:           secretName,
			Etag:           sec.GetEtag(),
			VersionAliases: aliases,
		},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"version_aliases"}},
	})
	return err
}

// destroy destroys version v of a secret, best effort: a failure leaves a
// billed but dead version behind (see Store.DestroyStaleVersions) and is
// logged. It runs even when ctx is cancelled.
func (b *backend) destroy(ctx context.Context, name, secretName string, v int64, why string) {
	ctx = context.WithoutCancel(ctx)
	_, err := b.client.DestroySecretVersion(ctx, &secretmanagerpb.DestroySecretVersionRequest{
		Name: versionName(secretName, v),
	})
	switch status.Code(err) {
	case codes.OK, codes.NotFound:
		return // destroyed, or gone with its secret
	case codes.FailedPrecondition:
		return // already destroyed
	}
	b.logger.WarnContext(ctx, "cloudtokens: could not destroy a dead secret version; it stays billed until DestroyStaleVersions",
		"secret", b.secretID(name), "version", v, "reason", why, "error", err)
}

// Delete deletes the secret with all its versions: 1 call.
func (b *backend) Delete(ctx context.Context, name string) error {
	err := b.client.DeleteSecret(ctx, &secretmanagerpb.DeleteSecretRequest{Name: b.secretName(name)})
	if err != nil {
		return b.wrap("delete", name, err)
	}
	return nil
}

// List returns the document names of the store's secrets that have a
// current version: ListSecrets filtered on PrefixLabel, one call per page
// of 250 secrets.
func (b *backend) List(ctx context.Context) ([]string, error) {
	var names []string
	err := b.listSecrets(ctx, func(sec *secretmanagerpb.Secret, name string) error {
		if _, ok := sec.GetVersionAliases()[CurrentAlias]; ok {
			names = append(names, name)
		}
		return nil
	})
	return names, err
}

// listSecrets calls fn for every secret labelled with the store's prefix
// whose ID starts with prefix + "_", with the document name.
func (b *backend) listSecrets(ctx context.Context, fn func(sec *secretmanagerpb.Secret, name string) error) error {
	it := b.client.ListSecrets(ctx, &secretmanagerpb.ListSecretsRequest{
		Parent:   b.parent,
		PageSize: 250,
		Filter:   "labels." + PrefixLabel + "=\"" + b.labels[PrefixLabel] + "\"",
	})
	for {
		sec, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("gcpsm: list secrets labelled %s=%s: %w", PrefixLabel, b.labels[PrefixLabel], err)
		}
		id := sec.GetName()[strings.LastIndexByte(sec.GetName(), '/')+1:]
		name, ok := strings.CutPrefix(id, b.prefix+"_")
		if !ok {
			continue
		}
		if err := fn(sec, name); err != nil {
			return err
		}
	}
}
