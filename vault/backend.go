package vault

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
	"github.com/hashicorp/vault/api"
)

// Field names of the KV v2 entries.
const (
	// DocumentField is the field of a KV entry that holds the document
	// (the token or index JSON) as a string, byte for byte:
	//
	//	vault kv get -field=document secret/<prefix>/token-<id>
	DocumentField = "document"
	// DeletedField marks the version that a delete writes over a token
	// (its value is the deletion time, RFC 3339). An entry whose current
	// version has it is deleted for the store.
	DeletedField = "cloudtokens_deleted"
	// DeleteIDField holds a random ID of the delete that wrote the
	// marker, so that a delete whose marker write was retried after a
	// lost response recognises its own marker.
	DeleteIDField = "cloudtokens_delete_id"
)

// casMismatch is the message of KV v2 for a check-and-set failure.
const casMismatch = "check-and-set parameter did not match the current version"

// versionDataMissing is what KV v2 answers (HTTP 500) when an entry's
// metadata names a version whose data is gone. Only a metadata DELETE
// (this backend's purge) removes the data of a current version, version
// by version and then the metadata; a purge cut short (the client was
// killed and Vault canceled the request, or the node stopped) leaves the
// metadata and some versions behind.
const versionDataMissing = "could not find version data"

// Backend is the casstore.Backend and casstore.Lister of a Store: named
// documents in KV v2 entries <mount>/data/<prefix>/<name>, versioned by
// the KV version number and written with check-and-set. Get it with
// Store.Backend; it is safe for concurrent use.
type Backend struct {
	client      *api.Client
	mount       string
	prefix      string
	softDelete  bool
	maxVersions int
	readWorkers int
	maxAttempts int
	logger      *slog.Logger
}

var (
	_ casstore.Backend = (*Backend)(nil)
	_ casstore.Lister  = (*Backend)(nil)
)

// Mount returns the mount path, without a trailing "/".
func (b *Backend) Mount() string { return b.mount }

// Prefix returns the prefix inside the mount.
func (b *Backend) Prefix() string { return b.prefix }

// DataPath returns the API path of the data of document name, as used
// with api.Logical: "<mount>/data/<prefix>/<name>".
func (b *Backend) DataPath(name string) string {
	return b.mount + "/data/" + b.prefix + "/" + name
}

// MetadataPath returns the API path of the metadata of document name:
// "<mount>/metadata/<prefix>/<name>".
func (b *Backend) MetadataPath(name string) string {
	return b.mount + "/metadata/" + b.prefix + "/" + name
}

// entry is the state of one KV entry.
type entry struct {
	version  uint64 // current version; 0 when the entry does not exist
	live     bool   // the current version holds a document
	marker   bool   // the current version is a deletion marker
	torn     bool   // a purge stopped half way: the version's data is gone (version unknown)
	deleteID string // the marker's DeleteIDField
	value    []byte
	problem  string // a live version without a document string: why
}

// get reads the current version of name: GET <mount>/data/<prefix>/<name>.
// A missing entry, a deleted or destroyed current version and a deletion
// marker are not live.
func (b *Backend) get(ctx context.Context, name string) (entry, error) {
	return b.getVersion(ctx, name, 0)
}

// getVersion reads version n of name (the current one for 0): GET
// <mount>/data/<prefix>/<name>?version=n. For n > 0 the entry's version
// is n when that version exists.
func (b *Backend) getVersion(ctx context.Context, name string, n uint64) (entry, error) {
	if err := validName(name); err != nil {
		return entry{}, err
	}
	path := b.DataPath(name)
	var query map[string][]string
	if n > 0 {
		query = map[string][]string{"version": {strconv.FormatUint(n, 10)}}
	}
	resp, err := b.client.Logical().ReadRawWithDataWithContext(ctx, path, query)
	if resp != nil {
		defer resp.Body.Close()
	}
	if resp != nil && resp.StatusCode == http.StatusNotFound {
		var re *api.ResponseError
		if errors.As(err, &re) && len(re.Errors) > 0 {
			// "no handler for route": the mount is gone.
			return entry{}, b.fail(ctx, "read", path, err)
		}
		// A deleted or destroyed version: 404 with its metadata; a
		// missing entry: 404 without a body.
		var body struct {
			Data struct {
				Metadata struct {
					Version json.Number `json:"version"`
				} `json:"metadata"`
			} `json:"data"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		v, _ := strconv.ParseUint(body.Data.Metadata.Version.String(), 10, 64)
		return entry{version: v}, nil
	}
	var re *api.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusInternalServerError && hasMessage(re, versionDataMissing) {
		return entry{torn: true}, nil
	}
	if err != nil {
		return entry{}, b.fail(ctx, "read", path, err)
	}
	var body struct {
		Data struct {
			Data     map[string]any `json:"data"`
			Metadata struct {
				Version      json.Number `json:"version"`
				DeletionTime string      `json:"deletion_time"`
				Destroyed    bool        `json:"destroyed"`
			} `json:"metadata"`
		} `json:"data"`
	}
	if err := resp.DecodeJSON(&body); err != nil {
		return entry{}, fmt.Errorf("vault: read %s: decoding the response: %w", path, err)
	}
	md := body.Data.Metadata
	v, err := strconv.ParseUint(md.Version.String(), 10, 64)
	if err != nil {
		return entry{}, fmt.Errorf("vault: read %s: response has no version (is the mount KV v2?)", path)
	}
	e := entry{version: v}
	if body.Data.Data == nil || md.Destroyed {
		return e, nil
	}
	if md.DeletionTime != "" {
		// A deletion time in the future (delete_version_after) is still live.
		if t, err := time.Parse(time.RFC3339Nano, md.DeletionTime); err != nil || !t.After(time.Now()) {
			return e, nil
		}
	}
	if _, ok := body.Data.Data[DeletedField]; ok {
		e.marker = true
		e.deleteID, _ = body.Data.Data[DeleteIDField].(string)
		return e, nil
	}
	e.live = true
	switch doc, ok := body.Data.Data[DocumentField].(string); {
	case !ok:
		e.problem = fmt.Sprintf("the entry has no string field %q", DocumentField)
	default:
		e.value = []byte(doc)
	}
	return e, nil
}

// unfinished reports whether e is deleted for the store but still holds
// earlier versions that the delete meant to remove: a purge cut short, or
// (without WithSoftDelete) a deletion marker whose purge failed.
func (b *Backend) unfinished(e entry) bool {
	return e.torn || (e.marker && !b.softDelete)
}

func notFound(path string) error {
	return fmt.Errorf("%w: vault entry %s", tokenstore.ErrNotFound, path)
}

// notLive is the error of a read of e, which is not live.
func (b *Backend) notLive(e entry, path string) error {
	if b.unfinished(e) {
		return fmt.Errorf("%w: %w: vault entry %s (Repair removes what is left)", tokenstore.ErrNotFound, casstore.ErrDeleteUnfinished, path)
	}
	return notFound(path)
}

// Read implements casstore.Backend with one GET of the entry's data. A
// missing entry, and one whose current version is deleted, destroyed or a
// deletion marker, gives tokenstore.ErrNotFound; an entry without a
// "document" string field gives tokenstore.ErrMalformed. An entry whose
// delete did not finish (a purge cut short, which KV v2 answers with HTTP
// 500 "could not find version data", or a marker whose purge failed)
// gives an error wrapping both tokenstore.ErrNotFound and
// casstore.ErrDeleteUnfinished: Delete, Create and Store.Repair remove
// what is left.
func (b *Backend) Read(ctx context.Context, name string) (casstore.Object, error) {
	e, err := b.get(ctx, name)
	if err != nil {
		return casstore.Object{}, err
	}
	if !e.live {
		return casstore.Object{}, b.notLive(e, b.DataPath(name))
	}
	if e.problem != "" {
		return casstore.Object{}, fmt.Errorf("%w: vault entry %s: %s", tokenstore.ErrMalformed, b.DataPath(name), e.problem)
	}
	return casstore.Object{Value: e.value, Version: strconv.FormatUint(e.version, 10)}, nil
}

// ReadMany implements casstore.Backend with one GET per name, at most
// WithReadWorkers (default 8) in flight. An entry without a "document"
// field is logged and returned with an empty value, which the engine
// reports as malformed, so that one bad entry does not fail the call.
func (b *Backend) ReadMany(ctx context.Context, names []string) ([]casstore.Result, error) {
	return casstore.ReadEach(ctx, names, b.readWorkers, func(ctx context.Context, name string) (casstore.Object, error) {
		e, err := b.get(ctx, name)
		switch {
		case err != nil:
			return casstore.Object{}, err
		case !e.live:
			return casstore.Object{}, b.notLive(e, b.DataPath(name))
		case e.problem != "":
			b.logger.WarnContext(ctx, "cloudtokens/vault: malformed entry", "path", b.DataPath(name), "problem", e.problem)
		}
		return casstore.Object{Value: e.value, Version: strconv.FormatUint(e.version, 10)}, nil
	})
}

func (b *Backend) checkValue(name string, value []byte) error {
	if err := validName(name); err != nil {
		return err
	}
	if len(value) > tokenstore.MaxDocumentSize {
		return fmt.Errorf("%w: document %q is %d bytes, the limit is %d", tokenstore.ErrTooLarge, name, len(value), tokenstore.MaxDocumentSize)
	}
	if !utf8.Valid(value) {
		return fmt.Errorf("%w: document %q is not valid UTF-8", tokenstore.ErrInvalidToken, name)
	}
	return nil
}

// write writes data as a new version of name with check-and-set cas and
// returns the new version.
func (b *Backend) write(ctx context.Context, name string, data map[string]any, cas uint64) (string, error) {
	path := b.DataPath(name)
	secret, err := b.client.Logical().WriteWithContext(ctx, path, map[string]any{
		"data":    data,
		"options": map[string]any{"cas": cas},
	})
	if err != nil {
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusBadRequest && hasMessage(re, casMismatch) {
			return "", fmt.Errorf("%w: %s is not at version %d", casstore.ErrVersionMismatch, path, cas)
		}
		return "", b.fail(ctx, "write", path, err)
	}
	if secret == nil || secret.Data == nil {
		return "", fmt.Errorf("vault: write %s: empty response (is the mount KV v2?)", path)
	}
	n, ok := secret.Data["version"].(json.Number)
	if !ok {
		return "", fmt.Errorf("vault: write %s: response has no version", path)
	}
	return n.String(), nil
}

func hasMessage(re *api.ResponseError, msg string) bool {
	for _, e := range re.Errors {
		if strings.Contains(e, msg) {
			return true
		}
	}
	return false
}

func docData(value []byte) map[string]any {
	return map[string]any{DocumentField: string(value)}
}

// Create implements casstore.Backend: a write with cas=0, which succeeds
// only if the entry does not exist. An entry that exists but is deleted
// for the store (a deletion marker, or a deleted or destroyed current
// version) is overwritten with cas=<its version> after one more read.
// On a new entry it then sets max_versions on the metadata (one more
// call, unless WithMaxVersions(0)).
//
// A check-and-set mismatch is checked against the entry, which Create
// reads anyway: when the entry holds exactly the bytes being written, the
// write had applied and only its response was lost (the client retried it
// and the retry met the version the first attempt made), so Create
// succeeds with that version instead of reporting casstore.ErrExists.
func (b *Backend) Create(ctx context.Context, name string, value []byte) (string, error) {
	if err := b.checkValue(name, value); err != nil {
		return "", err
	}
	v, err := b.write(ctx, name, docData(value), 0)
	for attempt := 0; errors.Is(err, casstore.ErrVersionMismatch) && attempt < 2; attempt++ {
		e, gerr := b.get(ctx, name)
		switch {
		case gerr != nil:
			return "", gerr
		case e.live && e.problem == "" && bytes.Equal(e.value, value):
			v, err = strconv.FormatUint(e.version, 10), nil // ours
		case e.live:
			return "", fmt.Errorf("%w: vault entry %s", casstore.ErrExists, b.DataPath(name))
		case e.torn && attempt == 0:
			// What a cut-short purge left: finish it, then create. The
			// purge has no check-and-set: a second Create that read the
			// torn entry before this one wrote could purge this one's new
			// entry in the round trip between its read and its purge. The
			// engine creates such names only to fence a deleted token
			// (both sides write a tombstone) or to rebuild an index bucket,
			// which Repair can rebuild again; reading the version from the
			// metadata to check-and-set instead would need the metadata
			// "read" capability and leave the old versions' data behind.
			if perr := b.purge(ctx, name); perr != nil {
				return "", perr
			}
			v, err = b.write(ctx, name, docData(value), 0)
		case attempt == 0:
			v, err = b.write(ctx, name, docData(value), e.version)
		default:
			return "", fmt.Errorf("%w: vault entry %s was created concurrently", casstore.ErrExists, b.DataPath(name))
		}
	}
	if err != nil {
		return "", err
	}
	if v == "1" && b.maxVersions > 0 {
		b.setMaxVersions(ctx, name)
	}
	return v, nil
}

// setMaxVersions writes max_versions into the metadata of name. A failure
// is logged: the entry exists and works, with the mount's max_versions.
func (b *Backend) setMaxVersions(ctx context.Context, name string) {
	path := b.MetadataPath(name)
	_, err := b.client.Logical().WriteWithContext(context.WithoutCancel(ctx), path, map[string]any{"max_versions": b.maxVersions})
	if err != nil {
		b.logger.WarnContext(ctx, "cloudtokens/vault: could not set max_versions", "path", path, "error", b.fail(ctx, "write", path, err))
	}
}

// Update implements casstore.Backend: a write with cas=version. Another
// current version gives casstore.ErrVersionMismatch; so does an entry
// deleted since it was read (KV v2 reports both the same way, and the
// engine retries both with a fresh read).
//
// A mismatch costs one read of version+1: when it holds exactly the
// bytes being written, this write had applied and its response was lost
// (the client's retry met the version the first attempt made), and
// Update succeeds with version+1.
func (b *Backend) Update(ctx context.Context, name string, value []byte, version string) (string, error) {
	if err := b.checkValue(name, value); err != nil {
		return "", err
	}
	v, err := strconv.ParseUint(version, 10, 64)
	if err != nil || v == 0 {
		return "", fmt.Errorf("%w: %s: %q is not a KV v2 version", casstore.ErrVersionMismatch, b.DataPath(name), version)
	}
	nv, err := b.write(ctx, name, docData(value), v)
	if !errors.Is(err, casstore.ErrVersionMismatch) {
		return nv, err
	}
	next, gerr := b.getVersion(ctx, name, v+1)
	if gerr == nil && next.version == v+1 && next.live && next.problem == "" && bytes.Equal(next.value, value) {
		return strconv.FormatUint(v+1, 10), nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return "", fmt.Errorf("vault: update %s: checking a check-and-set mismatch: %w: %w", b.DataPath(name), cerr, err)
	}
	return "", err
}

// Delete implements casstore.Backend. It reads the entry (ErrNotFound if
// it is not live), writes a deletion marker with cas=<that version>, which
// makes exactly one of several concurrent deletes succeed and fails any
// update based on the deleted version, and then removes the entry:
// DELETE <mount>/metadata/<prefix>/<name>, every version (default), or
// with WithSoftDelete, DELETE <mount>/data/<prefix>/<name>, which marks
// only the marker version deleted and keeps the token's versions. Three
// calls.
//
// The marker carries a random ID of this delete (DeleteIDField). When
// the marker's write applied but its response was lost, the client's
// retry meets a mismatch, and the next read finds this delete's own
// marker: the delete goes on and succeeds instead of reporting
// tokenstore.ErrNotFound.
func (b *Backend) Delete(ctx context.Context, name string) error {
	deleteID := randomID()
	var e entry
	var err error
	for attempt := 0; ; attempt++ {
		if e, err = b.get(ctx, name); err != nil {
			return err
		}
		if e.marker && e.deleteID == deleteID {
			break // ours: the write below applied, its answer was lost
		}
		if !e.live {
			if b.unfinished(e) {
				// Left by a delete whose purge failed, was cut short (or
				// is under way): purge it now; the token was deleted
				// already.
				_ = b.purgeDeleted(ctx, name)
			}
			return notFound(b.DataPath(name))
		}
		marker := map[string]any{DeletedField: time.Now().UTC().Format(time.RFC3339), DeleteIDField: deleteID}
		_, err = b.write(ctx, name, marker, e.version)
		if err == nil {
			break
		}
		if !errors.Is(err, casstore.ErrVersionMismatch) {
			return err
		}
		if attempt+1 >= b.maxAttempts {
			return fmt.Errorf("%w: delete of %s gave up after %d attempts: %w", tokenstore.ErrConflict, b.DataPath(name), b.maxAttempts, err)
		}
	}
	if b.softDelete {
		path := b.DataPath(name)
		if _, err := b.client.Logical().DeleteWithContext(context.WithoutCancel(ctx), path); err != nil {
			// The marker already hides the token; only the "deleted" flag is missing.
			b.logger.WarnContext(ctx, "cloudtokens/vault: could not soft-delete the deletion marker", "path", path, "error", b.fail(ctx, "delete", path, err))
		}
		return nil
	}
	return b.purgeDeleted(ctx, name)
}

// purgeDeleted purges name, whose token a marker has deleted already, and
// logs a failure: what is left is reported by Check and purged by Repair.
func (b *Backend) purgeDeleted(ctx context.Context, name string) error {
	err := b.purge(ctx, name)
	if err != nil {
		b.logger.WarnContext(ctx, "cloudtokens/vault: could not purge a deleted entry", "error", err)
	}
	return err
}

// randomID returns 16 random bytes in hex.
func randomID() string {
	var r [16]byte
	_, _ = rand.Read(r[:]) // never fails (crypto/rand)
	return hex.EncodeToString(r[:])
}

// purge deletes the metadata and every version of name.
func (b *Backend) purge(ctx context.Context, name string) error {
	path := b.MetadataPath(name)
	if _, err := b.client.Logical().DeleteWithContext(context.WithoutCancel(ctx), path); err != nil {
		return fmt.Errorf("vault: %s is deleted but its earlier versions are not (Repair removes them): %w", b.DataPath(name), b.fail(ctx, "delete", path, err))
	}
	return nil
}

// List implements casstore.Lister: LIST <mount>/metadata/<prefix>/. It
// returns the entry names that are valid document names; sub-folders and
// other keys under the prefix are skipped. Deleted entries whose metadata
// remains (soft delete) are listed; Read reports them not found.
func (b *Backend) List(ctx context.Context) ([]string, error) {
	path := b.mount + "/metadata/" + b.prefix + "/"
	secret, err := b.client.Logical().ListWithContext(ctx, path)
	if err != nil {
		return nil, b.fail(ctx, "list", path, err)
	}
	if secret == nil || secret.Data == nil {
		return nil, nil
	}
	keys, _ := secret.Data["keys"].([]any)
	names := make([]string, 0, len(keys))
	for _, k := range keys {
		s, ok := k.(string)
		if !ok || validName(s) != nil {
			continue
		}
		names = append(names, s)
	}
	return names, nil
}

// checkMount verifies that the mount is a KV v2 secrets engine.
func (b *Backend) checkMount(ctx context.Context) error {
	secret, err := b.client.Logical().ReadWithContext(ctx, "sys/internal/ui/mounts/"+b.mount)
	if err == nil && secret != nil {
		return b.checkMountInfo(secret.Data, true)
	}
	if err == nil || !isStatus(err, http.StatusForbidden) {
		if err == nil {
			err = errors.New("empty response")
		}
		return fmt.Errorf("vault: reading the configuration of mount %q: %w", b.mount, b.fail(ctx, "read", "sys/internal/ui/mounts/"+b.mount, err))
	}
	// Vault answers 403 both for a missing mount and for a token without
	// access to it; sys/mounts/<mount> tells them apart for tokens that
	// may read it.
	uiErr := err
	secret, err = b.client.Logical().ReadWithContext(ctx, "sys/mounts/"+b.mount)
	switch {
	case err == nil && secret != nil:
		return b.checkMountInfo(secret.Data, false)
	case isStatus(err, http.StatusBadRequest) && hasMessage(asResponseError(err), "No secret engine mount"):
		return &MountError{Mount: b.mount, Err: ErrMountNotFound, Cause: err, Detail: "nothing is mounted there; enable one with: vault secrets enable -path=" + b.mount + " kv-v2"}
	case isStatus(err, http.StatusForbidden):
		return &MountError{Mount: b.mount, Err: ErrPermissionDenied, Cause: fmt.Errorf("%w: %w", ErrMountNotFound, b.fail(ctx, "read", "sys/internal/ui/mounts/"+b.mount, uiErr)),
			Detail: "the token is invalid or expired or has no policy for any path in the mount, or nothing is mounted there (Vault does not tell which); check VAULT_TOKEN, the token's policy and the mount path"}
	}
	if err == nil {
		err = errors.New("empty response")
	}
	return fmt.Errorf("vault: reading the configuration of mount %q: %w", b.mount, b.fail(ctx, "read", "sys/mounts/"+b.mount, err))
}

func (b *Backend) checkMountInfo(data map[string]any, hasPath bool) error {
	typ, _ := data["type"].(string)
	var version string
	if o, ok := data["options"].(map[string]any); ok {
		version, _ = o["version"].(string)
	}
	if hasPath {
		if p, _ := data["path"].(string); p != "" && strings.TrimSuffix(p, "/") != b.mount {
			return &MountError{Mount: b.mount, Type: typ, Version: version, Err: ErrMountNotFound,
				Detail: fmt.Sprintf("it is a path inside mount %q, not a mount; use WithMount(%q) and put the rest in the prefix", p, strings.TrimSuffix(p, "/"))}
		}
	}
	switch {
	case typ == "kv" && version == "2":
		return nil
	case typ == "kv" || typ == "generic":
		return &MountError{Mount: b.mount, Type: typ, Version: version, Err: ErrNotKVv2,
			Detail: "it is KV version 1, which has no check-and-set; upgrade it with: vault kv enable-versioning " + b.mount + "/ (or mount a kv-v2 engine elsewhere)"}
	}
	return &MountError{Mount: b.mount, Type: typ, Version: version, Err: ErrNotKVv2,
		Detail: fmt.Sprintf("it is a %q secrets engine, not kv version 2", typ)}
}

func asResponseError(err error) *api.ResponseError {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re
	}
	return &api.ResponseError{}
}

func isStatus(err error, status int) bool {
	var re *api.ResponseError
	return errors.As(err, &re) && re.StatusCode == status
}

// fail maps a Vault error onto this package's errors, wrapping it. When
// ctx has ended, the error wraps ctx.Err() (context.Canceled or
// context.DeadlineExceeded) too, whatever the client made of the
// interruption.
func (b *Backend) fail(ctx context.Context, op, path string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		err = fmt.Errorf("%w (%w)", ctxErr, err)
	}
	var re *api.ResponseError
	if !errors.As(err, &re) {
		return fmt.Errorf("vault: %s %s: %w", op, path, err)
	}
	e := &responseError{op: op, path: path, status: re.StatusCode, messages: re.Errors, cause: err}
	switch re.StatusCode {
	case http.StatusForbidden:
		e.kind = ErrPermissionDenied
	case http.StatusNotFound:
		e.kind = ErrMountNotFound // an error 404 is "no handler for route"
	}
	return e
}

// responseError is a Vault error response, in one line.
type responseError struct {
	op, path string
	status   int
	messages []string
	kind     error // a sentinel, or nil
	cause    error // the *api.ResponseError
}

func (e *responseError) Error() string {
	var parts []string
	for _, m := range e.messages {
		// Vault nests multi-errors ("2 errors occurred:\n\t* permission denied\n\t* invalid token").
		for _, line := range strings.Split(m, "\n") {
			line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "* "))
			if line != "" && !strings.HasSuffix(line, "errors occurred:") && !strings.HasSuffix(line, "error occurred:") {
				parts = append(parts, line)
			}
		}
	}
	msg := strings.Join(parts, "; ")
	if msg == "" {
		msg = http.StatusText(e.status)
	}
	s := fmt.Sprintf("vault: %s %s: HTTP %d: %s", e.op, e.path, e.status, msg)
	switch e.kind {
	case ErrPermissionDenied:
		s += " (the token is invalid or expired, or its policy does not allow this path; see the policy in the README of github.com/cloudtokens/cloudtokens/vault)"
	case ErrMountNotFound:
		s += " (is the mount still there?)"
	}
	return s
}

func (e *responseError) Unwrap() []error {
	if e.kind == nil {
		return []error{e.cause}
	}
	return []error{e.kind, e.cause}
}
