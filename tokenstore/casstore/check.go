package casstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/cloudtokens/cloudtokens/observe"
	"github.com/cloudtokens/cloudtokens/tokenstore"
	"github.com/cloudtokens/cloudtokens/tokenstore/index"
)

// Lister is implemented by backends that can list the names of the
// documents under their prefix. Check, Repair and DeleteTokens (to find
// documents the index does not list) need it.
type Lister interface {
	// List returns the names (as given to Create) of every document that
	// exists under the backend's prefix.
	List(ctx context.Context) ([]string, error)
}

// Report is the result of Store.Check. It holds token IDs and key kinds,
// never token values or user names.
type Report struct {
	// Tokens is the number of live token documents found.
	Tokens int
	// Buckets is the number of index buckets (or shards, in a fixed
	// layout); Layout names the layout: "linear" or "fixed".
	Buckets int
	Layout  string
	// Unindexed lists live token documents with no ID entry in the index.
	Unindexed []string
	// Missing lists IDs the index lists whose document is missing or a
	// tombstone.
	Missing []string
	// MissingKeys lists tokens one of whose keys has no index entry, as
	// "id: kind".
	MissingKeys []string
	// Duplicates lists keys held by more than one token, as
	// "kind: id1, id2".
	Duplicates []string
	// Corrupt lists token documents that do not decode.
	Corrupt []string
	// UnfinishedDeletes lists token documents whose delete stopped half
	// way (see ErrDeleteUnfinished): deleted for the store, but the backend
	// still holds earlier versions of them. Repair finishes the deletes.
	UnfinishedDeletes []string
	// StaleEntries lists dead index entries (their document no longer
	// holds the key) and entries in a bucket that does not cover their
	// key, as "kind: id".
	StaleEntries []string
	// PendingClaims lists entries of saves that have not finished, or
	// never will (a crash), as "kind: id". A store in use has some for a
	// moment; Repair fences and drops those that stay.
	PendingClaims []string
	// MissingBuckets lists buckets the layout has but the backend does not.
	MissingBuckets []int
	// Tombstones lists the documents of deleted tokens and fences (see
	// package documentation); they are not errors, and Repair removes them
	// once they are older than Options.TombstoneTTL.
	Tombstones []string
	// ShardSizes is the encoded size in bytes of each bucket.
	ShardSizes []int
}

// OK reports whether the index and the documents agree exactly.
func (r *Report) OK() bool {
	return len(r.Unindexed)+len(r.Missing)+len(r.MissingKeys)+len(r.Duplicates)+len(r.Corrupt)+
		len(r.StaleEntries)+len(r.PendingClaims)+len(r.MissingBuckets)+len(r.UnfinishedDeletes) == 0
}

// String summarises the report; it holds IDs, never token values.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d tokens, %d buckets (%s), bucket sizes %v", r.Tokens, r.Buckets, r.Layout, r.ShardSizes)
	for _, p := range []struct {
		name string
		list []string
	}{{"unindexed", r.Unindexed}, {"missing", r.Missing}, {"missing keys", r.MissingKeys},
		{"duplicates", r.Duplicates}, {"corrupt", r.Corrupt}, {"stale entries", r.StaleEntries},
		{"pending claims", r.PendingClaims}, {"unfinished deletes", r.UnfinishedDeletes},
		{"tombstones", r.Tombstones}} {
		if len(p.list) > 0 {
			fmt.Fprintf(&b, "; %s: %v", p.name, p.list)
		}
	}
	if len(r.MissingBuckets) > 0 {
		fmt.Fprintf(&b, "; missing buckets: %v", r.MissingBuckets)
	}
	return b.String()
}

// survey is a snapshot of a whole store: every token document the backend
// lists and every bucket of the index.
type survey struct {
	docs       map[string]*storedToken // live tokens and tombstones, by ID
	corrupt    []string
	unfinished []string        // token IDs whose delete did not finish (ErrDeleteUnfinished)
	buckets    []*index.Bucket // by number; nil for a missing bucket
	versions   []string
	fixed      int
	extra      []int // index documents outside the layout
}

// entryState classifies an index entry against the surveyed documents.
func (sv *survey) entryState(e index.Entry) ownerState {
	return stateOf(e, sv.docs[e.ID])
}

// live counts the live token documents of the survey.
func (sv *survey) live() int {
	n := 0
	for _, st := range sv.docs {
		if !st.tombstone() {
			n++
		}
	}
	return n
}

// takeSurvey reads every document and bucket. Missing buckets are left
// nil rather than failing.

func (s *Store) takeSurvey(ctx context.Context) (*survey, error) {
	l, ok := s.b.(Lister)
	if !ok {
		return nil, errors.New("casstore: Check and Repair need a backend that implements Lister")
	}
	names, err := l.List(ctx)
	if err != nil {
		return nil, err
	}
	// The survey reads the backend as it is now: a bucket that was lost
	// and created again has a lower generation than the one remembered.
	s.bucketsMu.Lock()
	clear(s.buckets)
	s.bucketsMu.Unlock()
	sv := &survey{docs: map[string]*storedToken{}}
	var ids []string
	indexDocs := map[int]bool{}
	for _, n := range names {
		if id, ok := strings.CutPrefix(n, "token-"); ok {
			ids = append(ids, id)
		} else if num, ok := strings.CutPrefix(n, "index-"); ok {
			if i, err := strconv.Atoi(num); err == nil {
				indexDocs[i] = true
			}
		}
	}
	res, err := s.b.ReadMany(ctx, tokenNames(ids))
	if err != nil {
		return nil, err
	}
	for i, r := range res {
		id := ids[i]
		if errors.Is(r.Err, tokenstore.ErrNotFound) {
			if errors.Is(r.Err, ErrDeleteUnfinished) {
				sv.unfinished = append(sv.unfinished, id)
			}
			continue
		}
		if r.Err != nil && !errors.Is(r.Err, tokenstore.ErrMalformed) {
			return nil, r.Err
		}
		var st *storedToken
		if r.Err == nil {
			st, err = s.admit(id, r.Value, r.Version)
		}
		if r.Err != nil || err != nil {
			sv.corrupt = append(sv.corrupt, id)
			continue
		}
		sv.docs[id] = st
	}
	// The listing decides which buckets are waited for when a read misses
	// them (a lagging read); the others are missing at once.
	s.indexSeen.Store(indexDocs[0])
	// The buckets of the layout, as far as they can be read.
	b0, v0, err := s.readBucket(ctx, 0, nil)
	if err != nil {
		return nil, err
	}
	sv.buckets, sv.versions = []*index.Bucket{b0}, []string{v0}
	for {
		l := s.currentLayout()
		want := l.m
		if l.fixed > 0 {
			want, sv.fixed = l.fixed, l.fixed
		}
		if len(sv.buckets) >= want {
			break
		}
		names := make([]string, 0, want-len(sv.buckets))
		for n := len(sv.buckets); n < want; n++ {
			names = append(names, IndexName(n))
		}
		res, err := s.b.ReadMany(ctx, names)
		if err != nil {
			return nil, err
		}
		for _, r := range res {
			n := len(sv.buckets)
			var b *index.Bucket
			var v string
			switch {
			case errors.Is(r.Err, tokenstore.ErrNotFound) && (indexDocs[n] || l.fixed > 0):
				b, v, err = s.readBucket(ctx, n, nil) // listed: a lagging read is waited out
			case errors.Is(r.Err, tokenstore.ErrNotFound):
				err = errNoBucket
			case r.Err != nil:
				err = r.Err
			default:
				b, v, err = s.admitBucket(n, r.Value, r.Version, nil)
			}
			if errors.Is(err, errNoBucket) {
				b, v, err = nil, "", nil
			}
			if err != nil {
				return nil, err
			}
			sv.buckets, sv.versions = append(sv.buckets, b), append(sv.versions, v)
		}
	}
	for i := range indexDocs {
		if i >= len(sv.buckets) {
			sv.extra = append(sv.extra, i)
		}
	}
	slices.Sort(sv.extra)
	return sv, nil
}

// Check compares the index with the token documents the backend lists and
// reports every disagreement. It needs a Backend that implements Lister
// and should run while no other process writes (a save in progress shows
// as pending claims). It changes nothing; Repair fixes what it reports.
func (s *Store) Check(ctx context.Context) (_ *Report, err error) {
	ctx, span := s.start(ctx, observe.Check, "")
	defer span.End(&err)
	sv, err := s.takeSurvey(ctx)
	if err != nil {
		return nil, err
	}
	r := &Report{Buckets: len(sv.buckets), Layout: "linear", Corrupt: slices.Clone(sv.corrupt),
		UnfinishedDeletes: slices.Clone(sv.unfinished)}
	if sv.fixed > 0 {
		r.Layout = "fixed"
	}
	entries := map[index.Key][]string{}
	for n, b := range sv.buckets {
		if b == nil {
			r.MissingBuckets = append(r.MissingBuckets, n)
			r.ShardSizes = append(r.ShardSizes, 0)
			continue
		}
		r.ShardSizes = append(r.ShardSizes, b.Size())
		for _, e := range b.Entries {
			label := e.Kind + ": " + e.ID
			if !covers(b, e.Key) {
				r.StaleEntries = append(r.StaleEntries, label+" (misplaced)")
				continue
			}
			switch sv.entryState(e) {
			case ownerLive:
				entries[e.Key] = append(entries[e.Key], e.ID)
			case ownerDead:
				if e.Kind == index.KindID {
					r.Missing = append(r.Missing, e.ID)
				} else {
					r.StaleEntries = append(r.StaleEntries, label)
				}
			default:
				if e.Kind == index.KindID && sv.docs[e.ID] == nil {
					r.Missing = append(r.Missing, e.ID)
				} else {
					r.PendingClaims = append(r.PendingClaims, label)
				}
			}
		}
	}
	holders := map[index.Key][]*storedToken{}
	for id, st := range sv.docs {
		if st.tombstone() {
			r.Tombstones = append(r.Tombstones, id)
			continue
		}
		r.Tokens++
		for _, k := range index.KeysOf(st.tok) {
			if !slices.Contains(entries[k], id) {
				if k.Kind == index.KindID {
					r.Unindexed = append(r.Unindexed, id)
				} else {
					r.MissingKeys = append(r.MissingKeys, id+": "+k.Kind)
				}
			}
			if k.Kind != index.KindID && k.Kind != index.KindAccess {
				hk := k
				if k.Kind == index.KindUser {
					hk.ClientID = "" // user names clash across an empty client: group per user
				}
				holders[hk] = append(holders[hk], st)
			}
		}
	}
	for _, group := range duplicateGroups(holders) {
		r.Duplicates = append(r.Duplicates, group.kind+": "+strings.Join(group.ids(), ", "))
	}
	for _, l := range [][]string{r.Unindexed, r.Missing, r.MissingKeys, r.Duplicates, r.Corrupt, r.StaleEntries, r.PendingClaims, r.Tombstones} {
		slices.Sort(l)
	}
	return r, nil
}

type dupGroup struct {
	kind string
	toks []*storedToken
}

func (g dupGroup) ids() []string {
	out := make([]string, len(g.toks))
	for i, st := range g.toks {
		out[i] = st.tok.ID
	}
	slices.Sort(out)
	return out
}

// duplicateGroups returns the sets of live tokens that share a key,
// except tokens of one user name with distinct, non-empty client IDs
// (which may coexist).
func duplicateGroups(holders map[index.Key][]*storedToken) []dupGroup {
	var out []dupGroup
	for k, toks := range holders {
		if len(toks) < 2 {
			continue
		}
		if k.Kind == index.KindUser && distinctClients(toks) {
			continue
		}
		out = append(out, dupGroup{kind: k.Kind, toks: toks})
	}
	slices.SortFunc(out, func(a, b dupGroup) int { return strings.Compare(a.kind+a.ids()[0], b.kind+b.ids()[0]) })
	return out
}

// distinctClients reports whether tokens that share a user name all have
// distinct, non-empty client IDs.
func distinctClients(toks []*storedToken) bool {
	seen := map[string]bool{}
	for _, st := range toks {
		c := st.tok.ClientID
		if c == "" || seen[c] {
			return false
		}
		seen[c] = true
	}
	return true
}
