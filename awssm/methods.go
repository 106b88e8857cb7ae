package awssm

import (
	"context"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/casstore"
)

// The methods of Store: each forwards to the engine (package casstore),
// which implements the contract once for every backend; they are spelled
// out here so that the whole method set is documented with the Store
// (the same in every adapter; integration/adapters checks that none is
// missing).

var (
	_ tokenstore.Store         = (*Store)(nil)
	_ tokenstore.Leaser        = (*Store)(nil)
	_ tokenstore.Importer      = (*Store)(nil)
	_ tokenstore.BatchImporter = (*Store)(nil)
	_ tokenstore.LeaseSaver    = (*Store)(nil)
)

// FindToken implements [tokenstore.Store]: it returns the stored token
// that matches the partial token query under the lookup rules
// ([tokenstore.QueryRuleOf]), or an error wrapping
// [tokenstore.ErrNotFound] or [tokenstore.ErrInvalidToken].
func (s *Store) FindToken(ctx context.Context, query *tokenstore.Token) (*tokenstore.Token, error) {
	return s.engine.FindToken(ctx, query)
}

// FindTokenByID implements [tokenstore.Store]: one read of the token's
// secret.
func (s *Store) FindTokenByID(ctx context.Context, id string) (*tokenstore.Token, error) {
	return s.engine.FindTokenByID(ctx, id)
}

// SaveToken implements [tokenstore.Store]: it updates the record t
// identifies (by ID, else by the lookup rules) or inserts a new one, and
// writes the record's ID back into t.ID. A refresh of a token this Store
// has read or written is one compare-and-swap write of its secret.
func (s *Store) SaveToken(ctx context.Context, t *tokenstore.Token) error {
	return s.engine.SaveToken(ctx, t)
}

// DeleteToken implements [tokenstore.Store].
func (s *Store) DeleteToken(ctx context.Context, id string) error {
	return s.engine.DeleteToken(ctx, id)
}

// Tokens implements [tokenstore.Store]: every token the index lists.
func (s *Store) Tokens(ctx context.Context) ([]*tokenstore.Token, error) {
	return s.engine.Tokens(ctx)
}

// DeleteTokens implements [tokenstore.Store]: it deletes every token of
// the store, listed or not, and clears the index.
func (s *Store) DeleteTokens(ctx context.Context) error {
	return s.engine.DeleteTokens(ctx)
}

// AcquireLease implements [tokenstore.Leaser]: a compare-and-swap write
// of the token's secret that only one process wins; package tokensource
// uses it so that a fleet refreshes a token once.
func (s *Store) AcquireLease(ctx context.Context, id, holder string, ttl time.Duration) (bool, error) {
	return s.engine.AcquireLease(ctx, id, holder, ttl)
}

// SaveTokenLeased implements [tokenstore.LeaseSaver]: SaveToken with the
// lease for holder until until in the same write, so that the process
// that refreshed a token refreshes it next time without a lease write.
func (s *Store) SaveTokenLeased(ctx context.Context, t *tokenstore.Token, holder string, until time.Time) error {
	return s.engine.SaveTokenLeased(ctx, t, holder, until)
}

// Migrate moves an index made with a fixed number of shards by an earlier
// version to the layout that grows by itself; see [casstore.Store.Migrate].
func (s *Store) Migrate(ctx context.Context) (bool, error) {
	return s.engine.Migrate(ctx)
}

// ReleaseLease implements [tokenstore.Leaser]. Saving the token releases
// the lease too.
func (s *Store) ReleaseLease(ctx context.Context, id, holder string) error {
	return s.engine.ReleaseLease(ctx, id, holder)
}

// ImportToken implements [tokenstore.Importer]: it stores t exactly,
// under t.ID (migrations, restores).
func (s *Store) ImportToken(ctx context.Context, t *tokenstore.Token) error {
	return s.engine.ImportToken(ctx, t)
}

// ImportTokens implements [tokenstore.BatchImporter]: ImportToken for a
// batch of tokens, with the index writes of the batch grouped (bulk
// imports and migrations; see [casstore.Store.ImportTokens]).
func (s *Store) ImportTokens(ctx context.Context, toks []*tokenstore.Token) []error {
	return s.engine.ImportTokens(ctx, toks)
}

// Check compares the index with the secrets the store lists and reports
// every disagreement; it changes nothing. See [casstore.Store.Check].
func (s *Store) Check(ctx context.Context) (*casstore.Report, error) {
	return s.engine.Check(ctx)
}

// Repair makes the index agree with the token secrets, which it treats as
// the truth, while other processes keep working. See
// [casstore.Store.Repair].
func (s *Store) Repair(ctx context.Context) (casstore.RepairReport, error) {
	return s.engine.Repair(ctx)
}
