package casstore

import (
	"context"
	"fmt"
	"math/bits"

	"github.com/cloudtokens/cloudtokens/observe"
	"github.com/cloudtokens/cloudtokens/tokenstore/index"
)

// Migrate moves an index made by an earlier version with a fixed number
// of shards (WithIndexShards(n)) to the layout that grows by itself, in
// place and while other processes keep working. It reports whether it
// changed anything; on a store that grows already it does nothing.
//
// A fixed layout of one shard needs no call: its first write converts it.
// For n a power of two the user name, grant and refresh token entries are
// where the growing layout looks for them already, so Migrate rewrites
// each shard in the new format and moves only the ID entries (which the
// growing layout places beside the token's primary key): while it runs,
// lookups are unaffected, and an ID entry a release misses is dead and
// dropped by the next claim or by Repair. Other shard counts are refused
// with index.ErrLayout: copy the tokens into a new prefix with
// ImportTokens (the cloudtokens CLI's migrate command does it).
func (s *Store) Migrate(ctx context.Context) (changed bool, err error) {
	ctx, span := s.start(ctx, observe.Migrate, "")
	defer span.End(&err)
	b0, _, err := s.readBucket(ctx, 0, nil)
	if err != nil {
		return false, err
	}
	if !b0.Fixed {
		return false, nil
	}
	n := b0.Buckets
	if n == 1 {
		_, err := s.modifyBucket(ctx, 0, nil, func(b *index.Bucket) (bool, error) { return b.Fixed, nil })
		return err == nil, err
	}
	if bits.OnesCount(uint(n)) != 1 {
		return false, fmt.Errorf("%w: a fixed layout of %d shards cannot be moved in place (only a power of two can); copy the tokens into a new prefix", index.ErrLayout, n)
	}
	depth := bits.Len(uint(n)) - 1
	var moved []index.Entry
	for i := range n {
		var out []index.Entry
		_, err := s.modifyBucket(ctx, i, nil, func(b *index.Bucket) (bool, error) {
			out = out[:0]
			if !b.Fixed {
				return false, nil // migrated already
			}
			b.Fixed, b.Format, b.Depth, b.Buckets = false, index.FormatVersion, depth, n
			keep := b.Entries[:0:0]
			for _, e := range b.Entries {
				if b.Covers(index.Hash(e.Key)) {
					keep = append(keep, e)
				} else {
					out = append(out, e)
				}
			}
			b.Entries = keep
			return true, nil
		})
		if err != nil {
			return true, err
		}
		moved = append(moved, out...)
	}
	s.grow(n)
	if len(moved) == 0 {
		return true, nil
	}
	byKey := map[index.Key][]index.Entry{}
	var keys []index.Key
	for _, e := range moved {
		if _, ok := byKey[e.Key]; !ok {
			keys = append(keys, e.Key)
		}
		byKey[e.Key] = append(byKey[e.Key], e)
	}
	return true, s.modifyKeys(ctx, keys, nil, func(b *index.Bucket, keys []index.Key) (bool, error) {
		changed := false
		for _, k := range keys {
			for _, e := range byKey[k] {
				changed = b.Put(e.Key, e.ID, e.Gen) || changed
			}
		}
		return changed, nil
	})
}
