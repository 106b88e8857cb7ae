package gcpsm

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// backend implements casstore.Backend and casstore.Lister on Secret
// Manager. A document is a secret; its value is the payload of the version
// that the secret's CurrentAlias names, and its casstore version is that
// version's number.
//
// Invariant: once UpdateSecret has moved the current alias of a secret to
// version n, no version below n can ever become current again. A writer
// reads the secret's etag (or remembers it) before it adds its version,
// and moves the alias under that etag only, so a writer whose version is
// below n holds an etag from before the move to n, and its UpdateSecret
// fails. A writer never moves the alias to its version under an etag it
// learned after adding the version. Versions below the current one are
// therefore dead; the one the previous alias names is kept for readers
// that lag one write behind, and the rest may be destroyed.
type backend struct {
	client        *secretmanager.Client
	parent        string // "projects/<project>"
	prefix        string
	labels        map[string]string
	replication   *secretmanagerpb.Replication
	readWorkers   int
	logger        *slog.Logger
	retries       int
	staleReadWait time.Duration
	mem           *memory
	pace          *pacer
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

// wrap maps a Secret Manager error onto the sentinels the engine and
// callers expect, keeping the cause: NOT_FOUND is tokenstore.ErrNotFound,
// ALREADY_EXISTS is casstore.ErrExists, CANCELLED and DEADLINE_EXCEEDED
// are context.Canceled and context.DeadlineExceeded, and so is any error
// of a call whose context has ended. Every other code (PERMISSION_DENIED
// included) keeps only the gRPC status, which errors.As and status.Code
// still find.
func (b *backend) wrap(ctx context.Context, op, name string, err error) error {
	return wrapStatus(ctx, fmt.Sprintf("gcpsm: %s %s", op, b.secretID(name)), err)
}

func wrapStatus(ctx context.Context, prefix string, err error) error {
	var kinds []any
	switch status.Code(err) {
	case codes.NotFound:
		kinds = append(kinds, tokenstore.ErrNotFound)
	case codes.AlreadyExists:
		kinds = append(kinds, casstore.ErrExists)
	case codes.Canceled:
		kinds = append(kinds, context.Canceled)
	case codes.DeadlineExceeded:
		kinds = append(kinds, context.DeadlineExceeded)
	case codes.ResourceExhausted:
		kinds = append(kinds, casstore.ErrThrottled)
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) && !slices.Contains(kinds, any(cerr)) {
		kinds = append(kinds, cerr)
	}
	format := prefix
	for range kinds {
		format += ": %w"
	}
	return fmt.Errorf(format+": %w", append(kinds, err)...)
}

// Quotas implements casstore.QuotaReporter: Secret Manager soft-limits a
// global secret to 2 AddSecretVersion and UpdateSecret requests a second
// (https://cloud.google.com/secret-manager/quotas), and a store write makes
// one of each: 1 write a second.
func (b *backend) Quotas() casstore.Quotas {
	return casstore.Quotas{WritesPerSecond: 1}
}

// Read accesses the version the current alias names: 1 call (2 for a
// missing document).
//
// The alias is eventually consistent: right after a write, a read may
// resolve it to the version it named before, which a later write may
// already have destroyed (FAILED_PRECONDITION), or, right after a
// create, not at all (NOT_FOUND). So:
//   - Read never returns a version older than the newest this Store has
//     seen current: it reads that one by number, which is strongly
//     consistent (1 more call);
//   - a NOT_FOUND alias is checked by accessing version 1 by number (1
//     more call): if the secret has no version it is missing; if it has,
//     the alias lags, or the creation never finished;
//   - a read that finds a destroyed or disabled version, or a lagging
//     NOT_FOUND, is retried with backoff within WithStaleReadWait; then
//     it fails with ErrStaleAlias, or ErrNotFound for a secret whose
//     alias was never set (an unfinished creation).
func (b *backend) Read(ctx context.Context, name string) (casstore.Object, error) {
	secretName := b.secretName(name)
	var wait *staleWait
	hasVersions := false // the secret exists: a NOT_FOUND alias lags, or its creation never finished
	for {
		obj, v, err := b.access(ctx, name, secretName+"/versions/"+CurrentAlias)
		floor := b.mem.get(secretName).floor
		code := status.Code(err)
		switch {
		case err == nil && v >= floor:
			b.mem.sawCurrent(secretName, v)
			return obj, nil
		case err == nil:
			// A lagging alias: read the newest version seen, below.
		case code == codes.NotFound && floor == 0 && !hasVersions:
			// Missing, or created so recently that the alias lags: ask
			// for version 1 by number, which is strongly consistent.
			_, _, perr := b.access(ctx, name, versionName(secretName, 1))
			switch status.Code(perr) {
			case codes.NotFound:
				return casstore.Object{}, b.wrap(ctx, "access", name, err)
			case codes.OK, codes.FailedPrecondition:
				hasVersions = true
			default:
				return casstore.Object{}, b.wrap(ctx, "access", name, perr)
			}
		case code == codes.NotFound, code == codes.FailedPrecondition:
			// A lagging alias, or a deleted secret, or a version
			// disabled out of band.
		default:
			return casstore.Object{}, b.wrap(ctx, "access", name, err)
		}
		if floor > 0 {
			fobj, _, ferr := b.access(ctx, name, versionName(secretName, floor))
			switch status.Code(ferr) {
			case codes.OK:
				return fobj, nil
			case codes.NotFound:
				// Deleted (and perhaps created again): start over
				// without the memory.
				b.mem.forget(secretName)
				continue
			case codes.FailedPrecondition:
				// Destroyed: a newer version is current.
			default:
				return casstore.Object{}, b.wrap(ctx, "access", name, ferr)
			}
		}
		if err == nil {
			err = status.Errorf(codes.FailedPrecondition, "the current alias names version %d, older than version %d seen before", v, floor)
		}
		if wait == nil {
			wait = b.newStaleWait()
		}
		if !wait.next(ctx) {
			if ctx.Err() != nil || status.Code(err) == codes.NotFound {
				// A secret whose alias was never set reads as missing
				// (an unfinished creation, which the next Create takes
				// over).
				return casstore.Object{}, b.wrap(ctx, "access", name, err)
			}
			return casstore.Object{}, fmt.Errorf("gcpsm: access %s: %w (retried for %v): %w", b.secretID(name), ErrStaleAlias, b.staleReadWait, err)
		}
	}
}

// access reads one version (a number or an alias) and checks its checksum.
func (b *backend) access(ctx context.Context, name, version string) (casstore.Object, int64, error) {
	resp, err := b.client.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: version})
	if err != nil {
		return casstore.Object{}, 0, err
	}
	v, ok := versionNumber(resp.GetName())
	if !ok {
		// Without the resolved number the version cannot serve a
		// compare-and-swap; reading it again by number could pair the
		// payload with a later version.
		return casstore.Object{}, 0, fmt.Errorf("gcpsm: access %s: the service returned version %q, not a version number", b.secretID(name), resp.GetName())
	}
	data := resp.GetPayload().GetData()
	if c := resp.GetPayload().DataCrc32C; c != nil && *c != checksum(data) {
		return casstore.Object{}, 0, fmt.Errorf("gcpsm: access %s version %d: %w", b.secretID(name), v, ErrChecksum)
	}
	return casstore.Object{Value: data, Version: strconv.FormatInt(v, 10)}, v, nil
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
	}, b.retry(nil))
	if status.Code(err) == codes.AlreadyExists {
		existing, gerr := b.client.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: secretName}, b.retry(nil))
		if gerr != nil {
			if status.Code(gerr) == codes.NotFound {
				// Deleted in between (or a lagging read): let the
				// engine try again.
				return "", b.wrap(ctx, "create", name, err)
			}
			return "", b.wrap(ctx, "create (get)", name, gerr)
		}
		if _, ok := existing.GetVersionAliases()[CurrentAlias]; ok {
			b.mem.saw(secretName, snapshotOf(existing))
			return "", b.wrap(ctx, "create", name, err)
		}
		sec = existing // an unfinished creation: take it over
	} else if err != nil {
		return "", b.wrap(ctx, "create", name, err)
	}
	v, err := b.write(ctx, name, 0, snapshotOf(sec), value)
	if errors.Is(err, casstore.ErrVersionMismatch) {
		return "", fmt.Errorf("gcpsm: create %s: %w (another writer finished first): %w", b.secretID(name), casstore.ErrExists, err)
	}
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(v, 10), nil
}

// Update is a compare-and-swap from version. When this Store remembers
// the secret's etag with the current alias at version (it wrote or read
// the secret last), it costs 3 calls: AddSecretVersion, UpdateSecret
// (current → the new version, previous → version, under the etag) and
// DestroySecretVersion of the version the previous alias named before.
// Otherwise GetSecret comes first: 4 calls. A version older than one this
// Store has seen current fails at once, with no call. See write for what
// a failed UpdateSecret costs.
func (b *backend) Update(ctx context.Context, name string, value []byte, version string) (string, error) {
	if err := checkSize(name, value); err != nil {
		return "", err
	}
	expected, err := strconv.ParseInt(version, 10, 64)
	if err != nil || expected < 1 {
		return "", fmt.Errorf("gcpsm: update %s: %w: %q is not a version of this store", b.secretID(name), casstore.ErrVersionMismatch, version)
	}
	secretName := b.secretName(name)
	m := b.mem.get(secretName)
	if m.floor > expected {
		return "", fmt.Errorf("gcpsm: update %s: %w: version %d has been current since version %d", b.secretID(name), casstore.ErrVersionMismatch, m.floor, expected)
	}
	snap := m.snap
	if snap.etag == "" || snap.current() != expected || m.contended {
		if snap, err = b.readSnapshot(ctx, name, expected, m); err != nil {
			return "", err
		}
	}
	v, err := b.write(ctx, name, expected, snap, value)
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(v, 10), nil
}

// readSnapshot reads the secret's etag and aliases for a write from
// version expected. GetSecret is eventually consistent: an answer whose
// current alias is older than expected (or missing, or a NOT_FOUND while
// version expected exists) lags, since expected was read as current; it
// is read again within WithStaleReadWait, then the write fails with
// casstore.ErrVersionMismatch and the engine starts over from a fresh
// read.
func (b *backend) readSnapshot(ctx context.Context, name string, expected int64, m secretMemory) (snapshot, error) {
	secretName := b.secretName(name)
	var wait *staleWait
	probed := false
	for {
		var cur int64
		sec, err := b.client.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: secretName}, b.retry(nil))
		switch {
		case status.Code(err) == codes.NotFound && !probed:
			// Deleted, or created so recently that GetSecret lags:
			// access by number is strongly consistent.
			_, _, perr := b.access(ctx, name, versionName(secretName, expected))
			if status.Code(perr) == codes.NotFound {
				return snapshot{}, b.wrap(ctx, "update (get)", name, err)
			}
			probed = true
		case status.Code(err) == codes.NotFound:
		case err != nil:
			return snapshot{}, b.wrap(ctx, "update (get)", name, err)
		default:
			snap := snapshotOf(sec)
			b.mem.saw(secretName, snap)
			if m.contended && snap.etag == m.snap.etag {
				// The remembered etag was right: trust it again.
				b.mem.setContended(secretName, false)
			}
			cur = snap.current()
			switch {
			case cur == expected:
				return snap, nil
			case cur > expected:
				return snapshot{}, fmt.Errorf("gcpsm: update %s: %w: current version is %d, not %d", b.secretID(name), casstore.ErrVersionMismatch, cur, expected)
			}
		}
		if wait == nil {
			wait = b.newStaleWait()
		}
		if !wait.next(ctx) {
			if err := ctx.Err(); err != nil {
				return snapshot{}, fmt.Errorf("gcpsm: update %s: %w", b.secretID(name), err)
			}
			return snapshot{}, fmt.Errorf("gcpsm: update %s: %w: GetSecret still shows version %d current, not %d", b.secretID(name), casstore.ErrVersionMismatch, cur, expected)
		}
	}
}

// Delete deletes the secret with all its versions: 1 call.
func (b *backend) Delete(ctx context.Context, name string) error {
	secretName := b.secretName(name)
	err := b.client.DeleteSecret(ctx, &secretmanagerpb.DeleteSecretRequest{Name: secretName}, b.retry(nil))
	b.mem.forget(secretName)
	if err != nil {
		return b.wrap(ctx, "delete", name, err)
	}
	return nil
}

// listPageSize is the page size of ListSecrets and ListSecretVersions.
// The API takes up to 25,000. 5,000 keeps a page of a store's secrets
// (223 bytes each, with labels added: TestListPageSize) near 1.1 MB,
// under the 4 MB a gRPC connection receives by default (the client this
// package builds takes any size; a connection the caller dials may not),
// and lists 1,000,000 tokens in 200 calls of the project's 600 read
// requests a minute.
const listPageSize = 5000

// List returns the document names of the store's secrets that have a
// current version: ListSecrets filtered on PrefixLabel, one call per page
// of 5,000 secrets. The list is eventually consistent.
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
		PageSize: listPageSize,
		Filter:   "labels." + PrefixLabel + "=\"" + b.labels[PrefixLabel] + "\"",
	}, b.retry(nil))
	for {
		sec, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return nil
		}
		if err != nil {
			return wrapStatus(ctx, fmt.Sprintf("gcpsm: list secrets labelled %s=%s", PrefixLabel, b.labels[PrefixLabel]), err)
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
