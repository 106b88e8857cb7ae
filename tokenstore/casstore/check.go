package casstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/index"
)

// Lister is implemented by backends that can list the names of the
// documents under their prefix. Store.Check needs it.
type Lister interface {
	// List returns the names (as given to Create) of every document that
	// exists under the backend's prefix.
	List(ctx context.Context) ([]string, error)
}

// Report is the result of Store.Check.
type Report struct {
	// Tokens is the number of token documents found.
	Tokens int
	// Unindexed lists token documents with no ID entry in the index
	// (orphans: for example left by a process that crashed mid-insert).
	Unindexed []string
	// Missing lists IDs the index lists whose document does not exist.
	Missing []string
	// MissingKeys lists tokens one of whose keys has no index entry,
	// as "id: kind".
	MissingKeys []string
	// Duplicates lists keys held by more than one token, as
	// "kind: id1, id2".
	Duplicates []string
	// Corrupt lists token documents that do not decode.
	Corrupt []string
	// ShardSizes is the encoded size in bytes of each index shard.
	ShardSizes []int
}

// OK reports whether the index and the documents agree exactly.
func (r *Report) OK() bool {
	return len(r.Unindexed)+len(r.Missing)+len(r.MissingKeys)+len(r.Duplicates)+len(r.Corrupt) == 0
}

// String summarises the report; it holds IDs, never token values.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d tokens, shard sizes %v", r.Tokens, r.ShardSizes)
	for _, p := range []struct {
		name string
		list []string
	}{{"unindexed", r.Unindexed}, {"missing", r.Missing}, {"missing keys", r.MissingKeys}, {"duplicates", r.Duplicates}, {"corrupt", r.Corrupt}} {
		if len(p.list) > 0 {
			fmt.Fprintf(&b, "; %s: %v", p.name, p.list)
		}
	}
	return b.String()
}

// Check compares the index with the token documents the backend lists and
// reports every disagreement. It needs a Backend that implements Lister
// and should run while no other process writes.
func (s *Store) Check(ctx context.Context) (*Report, error) {
	l, ok := s.b.(Lister)
	if !ok {
		return nil, errors.New("casstore: Check needs a backend that implements Lister")
	}
	names, err := l.List(ctx)
	if err != nil {
		return nil, err
	}
	r := &Report{}
	var docIDs []string
	for _, n := range names {
		if id, ok := strings.CutPrefix(n, "token-"); ok {
			docIDs = append(docIDs, id)
		}
	}
	entries := map[index.Key][]string{}
	listed := map[string]bool{}
	for n := range s.opts.IndexShards {
		sh, _, err := s.readShard(ctx, n, nil)
		if err != nil {
			return nil, err
		}
		r.ShardSizes = append(r.ShardSizes, sh.Size())
		for _, e := range sh.Entries {
			entries[e.Key] = append(entries[e.Key], e.ID)
			if e.Kind == index.KindID {
				listed[e.ID] = true
			}
		}
	}
	present := map[string]bool{}
	res, err := s.b.ReadMany(ctx, tokenNames(docIDs))
	if err != nil {
		return nil, err
	}
	holders := map[index.Key][]string{}
	for i, rr := range res {
		id := docIDs[i]
		if errors.Is(rr.Err, tokenstore.ErrNotFound) {
			continue
		}
		if rr.Err != nil && !errors.Is(rr.Err, tokenstore.ErrMalformed) {
			return nil, rr.Err
		}
		present[id] = true
		r.Tokens++
		if !listed[id] {
			r.Unindexed = append(r.Unindexed, id)
		}
		st, err := decodeToken(id, rr.Value, rr.Version)
		if err != nil || rr.Err != nil {
			r.Corrupt = append(r.Corrupt, id)
			continue
		}
		for _, k := range index.KeysOf(st.tok) {
			if !slices.Contains(entries[k], id) {
				r.MissingKeys = append(r.MissingKeys, id+": "+k.Kind)
			}
			if k.Kind != index.KindID {
				hk := k
				if k.Kind == index.KindUser {
					hk.ClientID = "" // user names clash across empty client IDs; check per user
				}
				holders[hk] = append(holders[hk], id)
			}
		}
	}
	for id := range listed {
		if !present[id] {
			r.Missing = append(r.Missing, id)
		}
	}
	for k, ids := range holders {
		if len(ids) < 2 {
			continue
		}
		if k.Kind == index.KindUser && distinctClients(s, ids, res, docIDs) {
			continue
		}
		r.Duplicates = append(r.Duplicates, k.Kind+": "+strings.Join(ids, ", "))
	}
	slices.Sort(r.Unindexed)
	slices.Sort(r.Missing)
	slices.Sort(r.MissingKeys)
	slices.Sort(r.Duplicates)
	return r, nil
}

func tokenNames(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = TokenName(id)
	}
	return out
}

// distinctClients reports whether the tokens ids, which share a user name,
// all have distinct, non-empty client IDs (which is allowed).
func distinctClients(_ *Store, ids []string, res []Result, docIDs []string) bool {
	seen := map[string]bool{}
	for _, id := range ids {
		i := slices.Index(docIDs, id)
		t, err := tokenstore.UnmarshalDocument(res[i].Value)
		if err != nil || t.ClientID == "" || seen[t.ClientID] {
			return false
		}
		seen[t.ClientID] = true
	}
	return true
}
