package api_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/test/harness"
)

// TestGroupMembersPages: GET /v1/groups/{group}/members takes limit and
// cursor as the assignments listing does (next_cursor "" on the last page),
// and without a limit answers a page of the default size (100: here all 7)
// after the cursor (TestMembersWithoutLimitArePaged in internal/http pages
// a larger group).
func TestGroupMembersPages(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	c := s.API()
	var want []string
	for i := range 7 {
		u := fmt.Sprintf("u%d", i)
		if _, err := c.AddMember(ctx, "big", u); err != nil {
			t.Fatal(err)
		}
		want = append(want, u)
	}
	members := func(r harness.Response) []string {
		var out []string
		for _, u := range r.Body["members"].([]any) {
			out = append(out, u.(string))
		}
		return out
	}

	// Without a limit: a page of 100, so all of them, next_cursor "".
	r := s.Do(http.MethodGet, "/v1/groups/big/members", nil, true)
	if r.Status != http.StatusOK || !slices.Equal(members(r), want) || r.Body["next_cursor"] != "" || r.Body["group"] != "big" || r.Body["revision"] == nil {
		t.Fatalf("all members: %d %s", r.Status, r.Raw)
	}
	r = s.Do(http.MethodGet, "/v1/groups/big/members?cursor=u4", nil, true)
	if r.Status != http.StatusOK || !slices.Equal(members(r), want[5:]) || r.Body["next_cursor"] != "" {
		t.Fatalf("members after u4: %d %s", r.Status, r.Raw)
	}

	// Pages of 3: 3, 3, 1.
	var got []string
	cursor := ""
	for page := 0; ; page++ {
		r := s.Do(http.MethodGet, "/v1/groups/big/members?limit=3&cursor="+url.QueryEscape(cursor), nil, true)
		if r.Status != http.StatusOK || len(members(r)) > 3 || page > 3 {
			t.Fatalf("page %d: %d %s", page, r.Status, r.Raw)
		}
		got = append(got, members(r)...)
		next, _ := r.Body["next_cursor"].(string)
		if next == "" {
			if page != 2 {
				t.Fatalf("%d pages", page+1)
			}
			break
		}
		cursor = next
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged %v, want %v", got, want)
	}

	// An unknown group: no members.
	r = s.Do(http.MethodGet, "/v1/groups/none/members?limit=3", nil, true)
	if r.Status != http.StatusOK || len(members(r)) != 0 || r.Body["next_cursor"] != "" {
		t.Fatalf("unknown group: %d %s", r.Status, r.Raw)
	}
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "limit=2&limit=3", "cursor=a&cursor=b", "limt=3"} {
		r := s.Do(http.MethodGet, "/v1/groups/big/members?"+q, nil, true)
		if r.Status != http.StatusBadRequest {
			t.Fatalf("?%s: %d %s", q, r.Status, r.Raw)
		}
		if e, _ := r.Body["error"].(map[string]any); e["code"] != permatrix.EINVALID {
			t.Fatalf("?%s: %s", q, r.Raw)
		}
	}
}

// TestClientMembersPage: the Go client pages a group's members.
func TestClientMembersPage(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	c := s.API()
	for _, u := range []string{"a", "b", "c"} {
		if _, err := c.AddMember(ctx, "ops", u); err != nil {
			t.Fatal(err)
		}
	}
	p, err := c.MembersPage(ctx, "ops", "", 2)
	if err != nil || !slices.Equal(p.Members, []string{"a", "b"}) || p.NextCursor != "b" || p.Revision == 0 {
		t.Fatalf("first page: %+v %v", p, err)
	}
	p, err = c.MembersPage(ctx, "ops", p.NextCursor, 2)
	if err != nil || !slices.Equal(p.Members, []string{"c"}) || p.NextCursor != "" {
		t.Fatalf("second page: %+v %v", p, err)
	}
	_, err = c.MembersPage(ctx, "ops", "", 1001)
	wantError(t, err, http.StatusBadRequest, permatrix.EINVALID, "limit")
}
