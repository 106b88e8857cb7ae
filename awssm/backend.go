package awssm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	"golang.org/x/sync/errgroup"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

const (
	// stageCurrent is the label of a secret's current version. Every
	// read asks for it explicitly: moto_server answers a read without a
	// stage (and BatchGetSecretValue) from the version that was current
	// before the last UpdateSecretVersionStage.
	stageCurrent = "AWSCURRENT"
	// stagePending labels the version a compare-and-swap has just put.
	// It is one fixed label: each PutSecretValue moves it to its own new
	// version, so the losers of a race lose it without a cleanup call and
	// their versions become unlabelled, which AWS deletes by itself.
	stagePending = "CLOUDTOKENS_PENDING"
	// batchSize is the most secrets BatchGetSecretValue reads per call.
	batchSize = 20
	// batchWorkers bounds the BatchGetSecretValue calls in flight.
	batchWorkers = 4
)

// backend implements casstore.Backend and casstore.Lister on Secrets
// Manager.
type backend struct {
	c            *secretsmanager.Client
	prefix       string // with the trailing "/"
	kmsKeyID     *string
	tags         []types.Tag
	recoveryDays *int64
	forceDelete  bool
	logger       *slog.Logger
}

var (
	_ casstore.Backend = (*backend)(nil)
	_ casstore.Lister  = (*backend)(nil)

	_ casstore.BatchReader = (*backend)(nil)
)

// secretID maps an engine name onto the full secret name. A name that
// AWS would reject, or could confuse with an ARN, cannot exist: the error
// wraps tokenstore.ErrNotFound for reads, updates and deletes (see
// notFoundName) and tokenstore.ErrInvalidID for creates.
func (b *backend) secretID(name string) (string, error) {
	full := b.prefix + name
	if err := validateName(full); err != nil {
		return "", err
	}
	return full, nil
}

// notFoundName: reading, updating or deleting a name that can never be
// created finds nothing, without asking AWS.
func notFoundName(op, name string, err error) error {
	return fmt.Errorf("awssm: %s %q: %w (%w)", op, name, tokenstore.ErrNotFound, err)
}

// Read implements casstore.Backend with one GetSecretValue call.
func (b *backend) Read(ctx context.Context, name string) (casstore.Object, error) {
	id, err := b.secretID(name)
	if err != nil {
		return casstore.Object{}, notFoundName("read", name, err)
	}
	out, err := b.c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
		SecretId:     aws.String(id),
		VersionStage: aws.String(stageCurrent),
	}, retryThrottling)
	if err != nil {
		return casstore.Object{}, mapErr(ctx, "read", id, err)
	}
	return casstore.Object{Value: secretValue(out.SecretString, out.SecretBinary), Version: aws.ToString(out.VersionId)}, nil
}

func secretValue(s *string, bin []byte) []byte {
	if s != nil {
		return []byte(*s)
	}
	return bin // not written by this package; decoding reports it as malformed
}

// ReadMany implements casstore.Backend with BatchGetSecretValue, 20
// secrets per call, up to batchWorkers calls in parallel. A secret the
// batch returns without the AWSCURRENT label (moto_server's batch reads
// ignore stage moves) is read again with GetSecretValue.
func (b *backend) ReadMany(ctx context.Context, names []string) ([]casstore.Result, error) {
	out := make([]casstore.Result, len(names))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(batchWorkers)
	for start := 0; start < len(names); start += batchSize {
		end := min(start+batchSize, len(names))
		g.Go(func() error { return b.readBatch(gctx, names[start:end], out[start:end]) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

func (b *backend) readBatch(ctx context.Context, names []string, out []casstore.Result) error {
	pos := map[string]int{} // full secret name → index in names
	var ids []string
	for i, name := range names {
		out[i].Name = name
		id, err := b.secretID(name)
		if err != nil {
			out[i].Err = notFoundName("read", name, err)
			continue
		}
		if _, dup := pos[id]; dup {
			continue // filled in below from the first occurrence
		}
		pos[id] = i
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return nil
	}
	done := make([]bool, len(names))
	var reread []int
	in := &secretsmanager.BatchGetSecretValueInput{SecretIdList: ids}
	for {
		res, err := b.c.BatchGetSecretValue(ctx, in, retryThrottling)
		if err != nil {
			return mapErr(ctx, "batch read", fmt.Sprintf("%d secrets from %s", len(ids), ids[0]), err)
		}
		for _, v := range res.SecretValues {
			i, ok := pos[aws.ToString(v.Name)]
			if !ok {
				continue
			}
			done[i] = true
			if !slices.Contains(v.VersionStages, stageCurrent) {
				reread = append(reread, i) // a stale version (moto_server)
				continue
			}
			out[i].Value = secretValue(v.SecretString, v.SecretBinary)
			out[i].Version = aws.ToString(v.VersionId)
		}
		for _, e := range res.Errors {
			i, ok := pos[aws.ToString(e.SecretId)]
			if !ok {
				continue
			}
			done[i] = true
			apiErr := &smithy.GenericAPIError{Code: aws.ToString(e.ErrorCode), Message: aws.ToString(e.Message)}
			out[i].Err = mapCode("read", aws.ToString(e.SecretId), apiErr.Code, apiErr.Message, apiErr)
		}
		if res.NextToken == nil || aws.ToString(res.NextToken) == "" {
			break
		}
		in = &secretsmanager.BatchGetSecretValueInput{SecretIdList: ids, NextToken: res.NextToken}
	}
	for _, i := range pos {
		if !done[i] {
			reread = append(reread, i) // neither a value nor an error: ask again
		}
	}
	slices.Sort(reread)
	for _, i := range reread {
		obj, err := b.Read(ctx, names[i])
		out[i].Value, out[i].Version, out[i].Err = obj.Value, obj.Version, err
	}
	for i, name := range names { // duplicates
		if id, err := b.secretID(name); err == nil && pos[id] != i {
			out[i] = out[pos[id]]
			out[i].Name = name
		}
	}
	return nil
}

// Create implements casstore.Backend with one CreateSecret call. The
// call carries a ClientRequestToken of our own, which becomes the
// VersionId of the first version, so it is idempotent: when the SDK
// retries a create whose response was lost, Secrets Manager (and moto
// since 5.1.11) ignores the repeat and answers as the first time. If a
// server refuses the repeat with ResourceExistsException instead (moto
// before 5.1.11), one GetSecretValue of our version tells whether the
// secret is ours, and then the create succeeded.
func (b *backend) Create(ctx context.Context, name string, value []byte) (string, error) {
	id, err := b.secretID(name)
	if err != nil {
		return "", fmt.Errorf("awssm: create %q: %w: %w", name, tokenstore.ErrInvalidID, err)
	}
	if err := checkSize(name, value); err != nil {
		return "", err
	}
	token := newRequestToken()
	var attempts atomic.Int32
	_, err = b.c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name:               aws.String(id),
		SecretString:       aws.String(string(value)),
		ClientRequestToken: aws.String(token),
		KmsKeyId:           b.kmsKeyID,
		Tags:               b.tags,
	}, retryThrottling, countAttempts(&attempts))
	if err != nil {
		var exists *types.ResourceExistsException
		if errors.As(err, &exists) && attempts.Load() > 1 && b.holdsVersion(ctx, id, token, value) {
			return token, nil
		}
		if errors.As(err, &exists) {
			// moto answers a create of a name in its recovery window with
			// ResourceExistsException (AWS with InvalidRequestException,
			// see mapCode): the name may belong to a deleted secret.
			deleted, derr := b.scheduledForDeletion(ctx, id)
			if derr != nil {
				return "", mapErr(ctx, "describe", id, derr)
			}
			if deleted {
				return "", fmt.Errorf("awssm: create %q: %w: %w", id, casstore.ErrDeleted, err)
			}
		}
		return "", mapErr(ctx, "create", id, err)
	}
	// Our token is the version we created. (The VersionId of the answer
	// is not: moto answers a repeated create with the secret's current
	// version, which may be another writer's by then.)
	return token, nil
}

// scheduledForDeletion reports whether secret id is scheduled for
// deletion: one DescribeSecret, only after a create was refused. A secret
// that is gone by now is not (a create may succeed).
func (b *backend) scheduledForDeletion(ctx context.Context, id string) (bool, error) {
	out, err := b.c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)}, retryThrottling)
	var notFound *types.ResourceNotFoundException
	switch {
	case errors.As(err, &notFound):
		return false, nil
	case err != nil:
		return false, err
	}
	return out.DeletedDate != nil, nil
}

// holdsVersion reports whether secret id has version, with value: a
// version created by this backend under its own request token.
func (b *backend) holdsVersion(ctx context.Context, id, version string, value []byte) bool {
	out, err := b.c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
		SecretId:  aws.String(id),
		VersionId: aws.String(version),
	}, retryThrottling)
	return err == nil && out.SecretString != nil && *out.SecretString == string(value)
}

func checkSize(name string, value []byte) error {
	if len(value) > MaxValueSize {
		return fmt.Errorf("awssm: %q: %w: %d bytes, AWS Secrets Manager accepts %d", name, tokenstore.ErrTooLarge, len(value), MaxValueSize)
	}
	return nil
}

// Update implements casstore.Backend as a compare-and-swap of the
// AWSCURRENT label, in two calls:
//
//  1. PutSecretValue stores value as a new version labelled only
//     stagePending, so readers still see the current version;
//  2. UpdateSecretVersionStage moves AWSCURRENT to the new version and
//     removes it from version, which AWS refuses with
//     InvalidParameterException unless version still holds AWSCURRENT.
//
// Of concurrent writers that read the same version exactly one moves the
// label; the others get casstore.ErrVersionMismatch. Their versions keep
// no label once the next PutSecretValue takes stagePending, and AWS
// deletes unlabelled versions by itself, so a lost race costs no cleanup
// call.
//
// Both calls survive a lost response. PutSecretValue carries a
// ClientRequestToken of our own (the new VersionId), so the SDK's retry
// of a put that had applied is ignored by Secrets Manager and answered
// like the first. If the SDK retried the stage move, a refusal is checked
// with one GetSecretValue of the new version: the first attempt may have
// succeeded.
func (b *backend) Update(ctx context.Context, name string, value []byte, version string) (string, error) {
	id, err := b.secretID(name)
	if err != nil {
		return "", notFoundName("update", name, err)
	}
	if err := checkSize(name, value); err != nil {
		return "", err
	}
	if version == "" {
		return "", fmt.Errorf("awssm: update %q: %w: no expected version", id, casstore.ErrVersionMismatch)
	}
	newVersion := newRequestToken()
	var putAttempts atomic.Int32
	_, err = b.c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId:           aws.String(id),
		SecretString:       aws.String(string(value)),
		ClientRequestToken: aws.String(newVersion),
		VersionStages:      []string{stagePending},
	}, retryThrottling, countAttempts(&putAttempts))
	if err != nil {
		var exists *types.ResourceExistsException
		if !errors.As(err, &exists) || putAttempts.Load() < 2 || !b.holdsVersion(ctx, id, newVersion, value) {
			return "", mapErr(ctx, "update", id, err)
		}
		// The first attempt stored our version; its answer was lost.
	}
	var attempts atomic.Int32
	_, err = b.c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
		SecretId:            aws.String(id),
		VersionStage:        aws.String(stageCurrent),
		MoveToVersionId:     aws.String(newVersion),
		RemoveFromVersionId: aws.String(version),
	}, retryThrottling, countAttempts(&attempts))
	if err == nil {
		return newVersion, nil
	}
	var invalidParam *types.InvalidParameterException
	var notFound *types.ResourceNotFoundException
	switch {
	case errors.As(err, &invalidParam), errors.As(err, &notFound):
		// version no longer holds AWSCURRENT (or no longer exists).
		if attempts.Load() > 1 {
			current, cerr := b.holdsCurrent(ctx, id, newVersion)
			if current {
				return newVersion, nil
			}
			if ctxErr := ctx.Err(); ctxErr != nil {
				// Whether the first move applied is unknown.
				return "", fmt.Errorf("awssm: update %q: checking a retried stage move: %w: %w", id, cerr, ctxErr)
			}
		}
		return "", fmt.Errorf("awssm: update %q: %w: %w", id, casstore.ErrVersionMismatch, err)
	}
	return "", mapErr(ctx, "update", id, err)
}

// holdsCurrent reports whether version of secret id is labelled
// AWSCURRENT; the error is that of the read, if it failed.
func (b *backend) holdsCurrent(ctx context.Context, id, version string) (bool, error) {
	out, err := b.c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
		SecretId:  aws.String(id),
		VersionId: aws.String(version),
	}, retryThrottling)
	return err == nil && slices.Contains(out.VersionStages, stageCurrent), err
}

// countAttempts counts the attempts the SDK retryer makes for one call.
func countAttempts(n *atomic.Int32) func(*secretsmanager.Options) {
	return func(o *secretsmanager.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
			return s.Finalize.Insert(middleware.FinalizeMiddlewareFunc("cloudtokens.awssm.countAttempts",
				func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
					n.Add(1)
					return next.HandleFinalize(ctx, in)
				}), "Retry", middleware.After)
		})
	}
}

// Delete implements casstore.Backend with DeleteSecret. With a recovery
// window (the default) it is one call. Forced, it is two: AWS reports no
// error when it force-deletes a secret that does not exist, so Delete
// first schedules the deletion with the shortest window (7 days), which
// fails for a missing or already deleted secret, and then deletes the
// secret for good with ForceDeleteWithoutRecovery. That way, of two
// concurrent deletes of one token exactly one succeeds, as the engine
// expects.
//
// A delete whose response was lost and that the SDK retried meets the
// secret it has just scheduled for deletion, which AWS refuses
// ("InvalidRequestException: ... marked for deletion"). Such a refusal of
// a retry is this delete's own success, not tokenstore.ErrNotFound. (A
// concurrent delete of the same secret that lands between the lost answer
// and the retry is then also counted as ours: both callers succeed.)
func (b *backend) Delete(ctx context.Context, name string) error {
	id, err := b.secretID(name)
	if err != nil {
		return notFoundName("delete", name, err)
	}
	in := &secretsmanager.DeleteSecretInput{SecretId: aws.String(id), RecoveryWindowInDays: b.recoveryDays}
	if b.forceDelete {
		in.RecoveryWindowInDays = aws.Int64(7)
	}
	var attempts atomic.Int32
	if _, err := b.c.DeleteSecret(ctx, in, retryThrottling, countAttempts(&attempts)); err != nil {
		var invalidReq *types.InvalidRequestException
		if !errors.As(err, &invalidReq) || attempts.Load() < 2 || !markedDeleted(invalidReq.ErrorMessage()) {
			return mapErr(ctx, "delete", id, err)
		}
		// Our first attempt scheduled the deletion; its answer was lost.
	}
	if !b.forceDelete {
		return nil
	}
	_, err = b.c.DeleteSecret(context.WithoutCancel(ctx), &secretsmanager.DeleteSecretInput{
		SecretId:                   aws.String(id),
		ForceDeleteWithoutRecovery: aws.Bool(true),
	}, retryThrottling)
	if err != nil {
		// The secret is deleted for every reader already; it lingers in
		// the 7-day window instead of going at once.
		b.logger.WarnContext(ctx, "cloudtokens: secret scheduled for deletion but not force-deleted", "secret", id, "error", err)
	}
	return nil
}

// Restore implements casstore.Restorer with one RestoreSecret call: the
// engine takes back the name of an index secret that was deleted out of
// band with a recovery window (it never restores a token's secret). A
// secret that is not scheduled for deletion (restored already, say by a
// retry whose first answer was lost) is not an error.
func (b *backend) Restore(ctx context.Context, name string) error {
	id, err := b.secretID(name)
	if err != nil {
		return notFoundName("restore", name, err)
	}
	_, err = b.c.RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: aws.String(id)}, retryThrottling)
	var invalidReq *types.InvalidRequestException
	if errors.As(err, &invalidReq) && !markedDeleted(invalidReq.ErrorMessage()) {
		return nil // not scheduled for deletion: nothing to restore
	}
	if err != nil {
		return mapErr(ctx, "restore", id, err)
	}
	return nil
}

// Quotas implements casstore.QuotaReporter: AWS keeps at most 100
// versions created in the last 24 hours per secret (a quota that cannot be
// raised), and every compare-and-swap write puts a version, even one that
// then loses its race. The engine grows its index before any bucket comes
// near it.
func (b *backend) Quotas() casstore.Quotas {
	return casstore.Quotas{VersionsPerDay: 100}
}

// BatchSize implements casstore.BatchReader: ReadMany reads up to 20
// secrets with one BatchGetSecretValue request. A process that knows
// nothing of the index layout yet reads the two buckets a key may be in
// with one request, so bucket 0 needs no version per split to tell it the
// layout.
func (b *backend) BatchSize() int { return batchSize }

// List implements casstore.Lister with ListSecrets (100 per page),
// filtered by name on the prefix; secrets scheduled for deletion are
// left out. Names below a nested prefix (with a further "/") belong to
// another store and are left out too.
func (b *backend) List(ctx context.Context) ([]string, error) {
	p := secretsmanager.NewListSecretsPaginator(b.c, &secretsmanager.ListSecretsInput{
		Filters:    []types.Filter{{Key: types.FilterNameStringTypeName, Values: []string{b.prefix}}},
		MaxResults: aws.Int32(100),
	})
	var names []string
	for p.HasMorePages() {
		page, err := p.NextPage(ctx, retryThrottling)
		if err != nil {
			return nil, mapErr(ctx, "list", b.prefix+"*", err)
		}
		for _, s := range page.SecretList {
			if s.DeletedDate != nil {
				continue
			}
			name, ok := strings.CutPrefix(aws.ToString(s.Name), b.prefix)
			if !ok || name == "" || strings.Contains(name, "/") {
				continue
			}
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// mapErr maps an SDK error onto the casstore and tokenstore sentinels,
// keeping the cause wrapped. AWS error messages hold names and IDs, never
// secret values. When ctx has ended, the error also wraps ctx.Err()
// (context.Canceled or context.DeadlineExceeded), whatever the SDK made
// of the interruption.
func mapErr(ctx context.Context, op, id string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		err = fmt.Errorf("%w (%w)", ctxErr, err)
	}
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return fmt.Errorf("awssm: %s %q: %w", op, id, err)
	}
	return mapCode(op, id, apiErr.ErrorCode(), apiErr.ErrorMessage(), err)
}

func mapCode(op, id, code, msg string, err error) error {
	var sentinel error
	switch code {
	case "ResourceNotFoundException":
		sentinel = tokenstore.ErrNotFound
	case "ResourceExistsException":
		sentinel = casstore.ErrExists
	case "InvalidRequestException":
		if markedDeleted(msg) {
			// AWS: the secret is scheduled for deletion. Its name stays
			// taken for the recovery window (moto reports that to
			// CreateSecret as ResourceExistsException instead).
			if op == "create" {
				sentinel = casstore.ErrDeleted // wraps ErrExists
			} else {
				sentinel = tokenstore.ErrNotFound
			}
		}
	}
	if sentinel == nil {
		return fmt.Errorf("awssm: %s %q: %w", op, id, err)
	}
	return fmt.Errorf("awssm: %s %q: %w: %w", op, id, sentinel, err)
}

// markedDeleted recognises the InvalidRequestException of a secret that
// is scheduled for deletion: AWS says "marked for deletion" or "scheduled
// for deletion", moto "currently marked deleted".
func markedDeleted(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "deletion") || strings.Contains(m, "marked deleted")
}
