package gcpsmtest

import (
	"context"
	"encoding/base64"
	"iter"
	"slices"
	"sort"
	"strconv"
	"strings"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
)

// Page tokens are opaque to clients. Internally a token is a cursor: the
// creation sequence number (secrets) or version number (versions) of the last
// item returned. Lists are ordered newest first, so the next page holds the
// items with a smaller cursor; a cursor stays valid while other clients add
// or delete items concurrently, unlike an offset.
const pageTokenPrefix = "gcpsmtest/v1/"

func encodePageToken(cursor uint64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(pageTokenPrefix + strconv.FormatUint(cursor, 10)))
}

// decodePageToken returns the cursor of a token; an empty token means "from
// the start" and is returned as the largest cursor.
func decodePageToken(tok string) (uint64, error) {
	if tok == "" {
		return ^uint64(0), nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err == nil {
		if rest, ok := strings.CutPrefix(string(raw), pageTokenPrefix); ok {
			if n, perr := strconv.ParseUint(rest, 10, 64); perr == nil {
				return n, nil
			}
		}
	}
	return 0, invalid("Invalid page_token %q", tok)
}

// pageSize applies service.proto's rules for page_size: "If set to 0, the
// server decides the number of results to return. If the number is greater
// than 25000, it is capped at 25000." The emulator's own choice for 0 is the
// cap. Negative sizes are INVALID_ARGUMENT.
func pageSize(n int32) (int, error) {
	switch {
	case n < 0:
		return 0, invalid("page_size must not be negative, got %d", n)
	case n == 0 || n > maxPageSize:
		return maxPageSize, nil
	}
	return int(n), nil
}

// listRequest is what ListSecrets and ListSecretVersions requests share.
type listRequest interface {
	GetPageSize() int32
	GetPageToken() string
	GetFilter() string
}

// parseList validates the paging and filter fields of a list request.
func parseList(req listRequest, target filterTarget) (size int, cursor uint64, match filterFunc, err error) {
	if size, err = pageSize(req.GetPageSize()); err != nil {
		return 0, 0, nil, err
	}
	if cursor, err = decodePageToken(req.GetPageToken()); err != nil {
		return 0, 0, nil, err
	}
	if match, err = compileFilter(req.GetFilter(), target); err != nil {
		return 0, 0, nil, err
	}
	return size, cursor, match, nil
}

// creationOrder is one project's secrets in creation order, so that a page
// of ListSecrets costs its own size, not a sort of every secret (gcpsm
// lists a store of 1,000,000 tokens in 200 pages of 5,000).
type creationOrder struct {
	entries []*secretEntry // ascending seq; deleted ones until compacted
	live    int
}

func (s *service) createdIn(project string) *creationOrder {
	o := s.created[project]
	if o == nil {
		o = &creationOrder{}
		s.created[project] = o
	}
	return o
}

// add appends a new secret: seqs only grow, so the order stays sorted.
func (o *creationOrder) add(e *secretEntry) {
	o.entries = append(o.entries, e)
	o.live++
}

// remove marks e deleted, and compacts once half the entries are.
func (o *creationOrder) remove(e *secretEntry) {
	e.deleted = true
	o.live--
	if o.live < len(o.entries)/2 {
		o.entries = slices.DeleteFunc(o.entries, func(e *secretEntry) bool { return e.deleted })
	}
}

// before yields the live secrets with a seq below cursor, newest first.
// A nil order has none.
func (o *creationOrder) before(cursor uint64) iter.Seq[secretView] {
	return func(yield func(secretView) bool) {
		if o == nil {
			return
		}
		i := sort.Search(len(o.entries), func(i int) bool { return o.entries[i].seq >= cursor })
		for i--; i >= 0; i-- {
			if e := o.entries[i]; !e.deleted && !yield(secretView{seq: e.seq, pb: e.pb}) {
				return
			}
		}
	}
}

// secretView is a secret as a list sees it: its creation order and its
// metadata, current or from a lagging snapshot.
type secretView struct {
	seq uint64
	pb  *secretmanagerpb.Secret
}

// ListSecrets implements service.proto ListSecrets: "Lists Secrets." Results
// are "sorted in reverse by create_time (newest first)"; total_size is "The
// total number of Secrets but 0 when the ListSecretsRequest.filter field is
// set." (ListSecretsResponse). See filter.go for the supported filters.
func (s *service) ListSecrets(_ context.Context, req *secretmanagerpb.ListSecretsRequest) (*secretmanagerpb.ListSecretsResponse, error) {
	project, err := s.parseProject(req.GetParent(), "parent")
	if err != nil {
		return nil, err
	}
	size, cursor, match, err := parseList(req, filterSecrets)
	if err != nil {
		return nil, err
	}

	s.mu.RLock()
	defer s.mu.RUnlock()
	resp := &secretmanagerpb.ListSecretsResponse{}
	// The secrets from the cursor on, newest first.
	var secrets iter.Seq[secretView]
	if t, stale := s.staleTime(); stale {
		all := s.allSecretsAt(project, t)
		sort.Slice(all, func(i, j int) bool { return all[i].seq > all[j].seq })
		if req.GetFilter() == "" {
			resp.TotalSize = int32(len(all))
		}
		i := sort.Search(len(all), func(i int) bool { return all[i].seq < cursor })
		secrets = slices.Values(all[i:])
	} else {
		order := s.created[project]
		if req.GetFilter() == "" && order != nil {
			resp.TotalSize = int32(order.live)
		}
		secrets = order.before(cursor)
	}
	var last uint64
	for e := range secrets {
		subj := filterSubject{
			name:       e.pb.GetName(),
			id:         secretID(e.pb.GetName()),
			labels:     e.pb.GetLabels(),
			createTime: e.pb.GetCreateTime().AsTime(),
		}
		if !match(&subj) {
			continue
		}
		if len(resp.Secrets) == size {
			resp.NextPageToken = encodePageToken(last)
			break
		}
		resp.Secrets = append(resp.Secrets, cloneSecret(e.pb))
		last = e.seq
	}
	return resp, nil
}

// ListSecretVersions implements service.proto ListSecretVersions: "Lists
// SecretVersions. This call does not return secret data." Versions are
// "sorted in reverse by create_time (newest first)"; total_size is 0 when a
// filter is set. Filters: state, name, create_time (see filter.go).
func (s *service) ListSecretVersions(_ context.Context, req *secretmanagerpb.ListSecretVersionsRequest) (*secretmanagerpb.ListSecretVersionsResponse, error) {
	secret, err := s.parseSecretName(req.GetParent(), "parent")
	if err != nil {
		return nil, err
	}
	size, cursor, match, err := parseList(req, filterVersions)
	if err != nil {
		return nil, err
	}

	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.secrets[secret]
	var count int64
	if ok {
		count = int64(len(e.versions))
	}
	view := func(v *versionEntry) *secretmanagerpb.SecretVersion { return v.pb }
	if t, stale := s.staleTime(); stale {
		var snap secretSnap
		e, snap, ok = s.secretAt(secret, t)
		count = snap.versions
		view = func(v *versionEntry) *secretmanagerpb.SecretVersion { return versionAt(v, t) }
	}
	if !ok {
		return nil, errSecretNotFound(secret)
	}
	resp := &secretmanagerpb.ListSecretVersionsResponse{}
	if req.GetFilter() == "" {
		resp.TotalSize = int32(count)
	}
	var last uint64
	for n := uint64(count); n >= 1; n-- {
		if n >= cursor {
			continue
		}
		v := view(e.versions[n-1])
		subj := filterSubject{
			name:       v.GetName(),
			createTime: v.GetCreateTime().AsTime(),
			state:      v.GetState(),
		}
		if !match(&subj) {
			continue
		}
		if len(resp.Versions) == size {
			resp.NextPageToken = encodePageToken(last)
			break
		}
		resp.Versions = append(resp.Versions, cloneVersion(v))
		last = n
	}
	return resp, nil
}
