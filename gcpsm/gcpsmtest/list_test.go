package gcpsmtest

import (
	"fmt"
	"slices"
	"testing"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
)

// listAll pages through ListSecrets with the given page size and returns the
// secret IDs in order plus the size of every page.
func listAll(t *testing.T, c *secretmanager.Client, filter string, size int) (ids []string, pages []int) {
	t.Helper()
	it := c.ListSecrets(t.Context(), &secretmanagerpb.ListSecretsRequest{Parent: testProject, Filter: filter})
	p := iterator.NewPager(it, size, "")
	for {
		var page []*secretmanagerpb.Secret
		next, err := p.NextPage(&page)
		if err != nil {
			t.Fatalf("ListSecrets(filter %q): %v", filter, err)
		}
		pages = append(pages, len(page))
		for _, s := range page {
			ids = append(ids, secretID(s.GetName()))
		}
		if next == "" {
			return ids, pages
		}
	}
}

// service.proto ListSecretsRequest.page_size/page_token and
// ListSecretsResponse: secrets "sorted in reverse by create_time (newest
// first)", next_page_token to "retrieve the next page" (empty at the end),
// total_size "but 0 when the ListSecretsRequest.filter field is set".
// Filters: https://cloud.google.com/secret-manager/docs/filtering
// ("labels.environment=production", "name:mysecret").
func TestListSecretsPagingAndFilters(t *testing.T) {
	_, c := newClient(t)
	var all []string
	for i := range 25 {
		labels := map[string]string{"team": "red"}
		if i%2 == 0 {
			labels["team"] = "blue"
		}
		if i%5 == 0 {
			labels["rotate"] = "yes"
		}
		id := fmt.Sprintf("tok-%02d", i)
		createSecret(t, c, id, labels)
		all = append(all, id)
	}
	createSecret(t, c, "other-thing", nil)
	all = append(all, "other-thing")
	slices.Reverse(all) // newest first
	// A secret in another project never shows up.
	if _, err := c.CreateSecret(t.Context(), &secretmanagerpb.CreateSecretRequest{
		Parent: "projects/elsewhere", SecretId: "tok-99", Secret: &secretmanagerpb.Secret{Replication: automatic()},
	}); err != nil {
		t.Fatal(err)
	}

	ids, pages := listAll(t, c, "", 10)
	if !slices.Equal(ids, all) || !slices.Equal(pages, []int{10, 10, 6}) {
		t.Fatalf("unfiltered: ids %v pages %v", ids, pages)
	}
	var first []*secretmanagerpb.Secret
	next, err := iterator.NewPager(c.ListSecrets(t.Context(), &secretmanagerpb.ListSecretsRequest{Parent: testProject}), 1, "").NextPage(&first)
	if err != nil || len(first) != 1 || next == "" || secretID(first[0].GetName()) != all[0] {
		t.Fatalf("page size 1: %v, next %q, %v", first, next, err)
	}

	blue := func(ids []string) []string {
		var out []string
		for _, id := range ids {
			var n int
			if _, err := fmt.Sscanf(id, "tok-%d", &n); err == nil && n%2 == 0 {
				out = append(out, id)
			}
		}
		return out
	}
	ids, pages = listAll(t, c, "labels.team=blue", 10)
	if !slices.Equal(ids, blue(all)) || !slices.Equal(pages, []int{10, 3}) {
		t.Fatalf("labels.team=blue: ids %v pages %v", ids, pages)
	}

	for _, tt := range []struct {
		filter string
		want   int
	}{
		{"labels.team:*", 25},
		{"labels:rotate", 5},
		{"labels.rotate:*", 5},
		{"labels.team=red", 12},
		{"labels.team!=red", 14}, // 13 blue + other-thing
		{"labels.team=blue labels.rotate=yes", 3},
		{"labels.team=blue AND labels.rotate=yes", 3},
		{"labels.team=blue AND NOT labels.rotate:*", 10},
		{"labels.team=blue -labels.rotate:*", 10},
		{"name:tok-0", 10},
		{"name:other OR labels.rotate=yes", 6},
		{"(name:tok-1 OR name:tok-2) labels.team=red", 7}, // odd of 10-24
		{"name:tok-*4", 3},                                // tok-04 tok-14 tok-24
		{"name=tok-07", 1},
		{"name=" + testProject + "/secrets/tok-07", 1},
		{`name="tok-07"`, 1},
		{"create_time>2000-01-01T00:00:00Z", 26},
		{"create_time<2000-01-01T00:00:00Z", 0},
		{"labels.team=green", 0},
	} {
		t.Run(tt.filter, func(t *testing.T) {
			ids, _ := listAll(t, c, tt.filter, 100)
			if len(ids) != tt.want {
				t.Fatalf("filter %q matched %d (%v), want %d", tt.filter, len(ids), ids, tt.want)
			}
		})
	}

	// total_size: the total without a filter, 0 with one.
	it := c.ListSecrets(t.Context(), &secretmanagerpb.ListSecretsRequest{Parent: testProject})
	if _, err := it.Next(); err != nil {
		t.Fatal(err)
	}
	if ts := it.Response.(*secretmanagerpb.ListSecretsResponse).GetTotalSize(); ts != 26 {
		t.Errorf("total_size = %d, want 26", ts)
	}
	it = c.ListSecrets(t.Context(), &secretmanagerpb.ListSecretsRequest{Parent: testProject, Filter: "labels.team:*"})
	if _, err := it.Next(); err != nil {
		t.Fatal(err)
	}
	if ts := it.Response.(*secretmanagerpb.ListSecretsResponse).GetTotalSize(); ts != 0 {
		t.Errorf("total_size with filter = %d, want 0", ts)
	}
}

// A page token stays valid while secrets are created and deleted between
// pages (the emulator's cursor is a creation number): a deleted secret
// is never listed, one created after the first page is not listed by the
// pages that follow (it is newer than the cursor), and every other secret
// is listed once, newest first; total_size counts the live ones, also
// after most secrets are deleted (which compacts the emulator's order).
func TestListSecretsAcrossDeletes(t *testing.T) {
	_, c := newClient(t)
	var want []string
	for i := range 40 {
		id := fmt.Sprintf("s-%02d", i)
		createSecret(t, c, id, nil)
		want = append(want, id)
	}
	slices.Reverse(want)
	it := c.ListSecrets(t.Context(), &secretmanagerpb.ListSecretsRequest{Parent: testProject})
	p := iterator.NewPager(it, 7, "")
	var got []string
	deleted := map[string]bool{}
	var created []string
	for page := 0; ; page++ {
		var secrets []*secretmanagerpb.Secret
		next, err := p.NextPage(&secrets)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			got = append(got, secretID(s.GetName()))
		}
		if next == "" {
			break
		}
		// Between pages: delete 3 secrets not yet listed (the oldest)
		// and create a new one.
		for i := page * 3; i < page*3+3 && page < 3; i++ {
			id := fmt.Sprintf("s-%02d", i)
			if err := c.DeleteSecret(t.Context(), &secretmanagerpb.DeleteSecretRequest{Name: testProject + "/secrets/" + id}); err != nil {
				t.Fatal(err)
			}
			deleted[id] = true
		}
		created = append(created, fmt.Sprintf("new-%d", page))
		createSecret(t, c, created[len(created)-1], nil)
	}
	want = slices.DeleteFunc(want, func(id string) bool { return deleted[id] })
	if !slices.Equal(got, want) {
		t.Fatalf("listed %v\nwant %v", got, want)
	}
	// Delete all the first secrets but the 5 oldest left (compaction),
	// then list again.
	var kept []string
	for i := range 40 {
		id := fmt.Sprintf("s-%02d", i)
		if deleted[id] {
			continue
		}
		if len(kept) < 5 {
			kept = append(kept, id)
			continue
		}
		if err := c.DeleteSecret(t.Context(), &secretmanagerpb.DeleteSecretRequest{Name: testProject + "/secrets/" + id}); err != nil {
			t.Fatal(err)
		}
	}
	ids, pages := listAll(t, c, "", 4)
	wantIDs := slices.Concat(kept, created) // oldest first
	slices.Reverse(wantIDs)
	if !slices.Equal(ids, wantIDs) || len(pages) != (len(wantIDs)+3)/4 {
		t.Fatalf("after deleting most: %v (pages %v), want %v", ids, pages, wantIDs)
	}
	it = c.ListSecrets(t.Context(), &secretmanagerpb.ListSecretsRequest{Parent: testProject})
	if _, err := it.Next(); err != nil {
		t.Fatal(err)
	}
	if ts := it.Response.(*secretmanagerpb.ListSecretsResponse).GetTotalSize(); int(ts) != len(wantIDs) {
		t.Errorf("total_size = %d, want %d", ts, len(wantIDs))
	}
}

// Filters and tokens the emulator cannot honour are rejected, never ignored.
func TestListSecretsRejectsBadInput(t *testing.T) {
	_, c := newClient(t)
	createSecret(t, c, "x", nil)
	for _, req := range []*secretmanagerpb.ListSecretsRequest{
		{Parent: testProject, Filter: "colour=blue"},
		{Parent: testProject, Filter: `name ~ "secret_ab.*"`}, // "Regex is not supported in the API."
		{Parent: testProject, Filter: "labels.team="},
		{Parent: testProject, Filter: "(labels.team=blue"},
		{Parent: testProject, Filter: "state:ENABLED"}, // versions only
		{Parent: testProject, Filter: "create_time>yesterday"},
		{Parent: testProject, PageToken: "not-a-token"},
		{Parent: testProject, PageSize: -1},
		{Parent: "projects"},
	} {
		_, err := c.ListSecrets(t.Context(), req).Next()
		wantCode(t, err, codes.InvalidArgument)
	}
}

// service.proto ListSecretVersions: versions "sorted in reverse by
// create_time (newest first)", paged like ListSecrets; filter per
// https://cloud.google.com/secret-manager/docs/filtering (state).
func TestListSecretVersions(t *testing.T) {
	_, c := newClient(t)
	s := createSecret(t, c, "versions", nil).GetName()
	for i := 1; i <= 5; i++ {
		addVersion(t, c, s, fmt.Sprint(i))
	}
	if _, err := c.DisableSecretVersion(t.Context(), &secretmanagerpb.DisableSecretVersionRequest{Name: s + "/versions/2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DestroySecretVersion(t.Context(), &secretmanagerpb.DestroySecretVersionRequest{Name: s + "/versions/4"}); err != nil {
		t.Fatal(err)
	}
	list := func(filter string, size int) (nums []string, pages []int) {
		it := c.ListSecretVersions(t.Context(), &secretmanagerpb.ListSecretVersionsRequest{Parent: s, Filter: filter})
		p := iterator.NewPager(it, size, "")
		for {
			var page []*secretmanagerpb.SecretVersion
			next, err := p.NextPage(&page)
			if err != nil {
				t.Fatalf("ListSecretVersions(%q): %v", filter, err)
			}
			pages = append(pages, len(page))
			for _, v := range page {
				nums = append(nums, v.GetName()[len(s)+len("/versions/"):])
			}
			if next == "" {
				return nums, pages
			}
		}
	}
	if nums, pages := list("", 2); !slices.Equal(nums, []string{"5", "4", "3", "2", "1"}) || !slices.Equal(pages, []int{2, 2, 1}) {
		t.Fatalf("all versions: %v pages %v", nums, pages)
	}
	for _, tt := range []struct {
		filter string
		want   []string
	}{
		{"state:ENABLED", []string{"5", "3", "1"}},
		{"state=DISABLED", []string{"2"}},
		{"state:destroyed", []string{"4"}},
		{"NOT state:ENABLED", []string{"4", "2"}},
		{"state:ENABLED OR state:DISABLED", []string{"5", "3", "2", "1"}},
		{"name:versions/3", []string{"3"}},
	} {
		if nums, _ := list(tt.filter, 100); !slices.Equal(nums, tt.want) {
			t.Errorf("filter %q = %v, want %v", tt.filter, nums, tt.want)
		}
	}
	_, err := c.ListSecretVersions(t.Context(), &secretmanagerpb.ListSecretVersionsRequest{Parent: s, Filter: "state:BROKEN"}).Next()
	wantCode(t, err, codes.InvalidArgument)
	_, err = c.ListSecretVersions(t.Context(), &secretmanagerpb.ListSecretVersionsRequest{Parent: s, Filter: "labels.a=b"}).Next()
	wantCode(t, err, codes.InvalidArgument)
}
