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

// TestAssignmentsWithGroups: GET /v1/assignments?subject=user:X&with_groups=true
// lists the user's assignments and those of every group the user is stored
// in, in one listing ordered by id and paged as any other: what a user
// holds, in pages, not one request per group.
func TestAssignmentsWithGroups(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	c := s.API()
	var want []string
	add := func(subject, project string) {
		r := s.Do(http.MethodPost, "/v1/assignments", map[string]any{"subject": subject, "system": tm, "permission": "edit_users",
			"scope": map[string]any{"type": "project", "id": project}}, true)
		if r.Status != http.StatusCreated {
			t.Fatalf("assign: %d %s", r.Status, r.Raw)
		}
		if subject != "group:other" && subject != "user:bob" {
			want = append(want, r.Body["id"].(string))
		}
	}
	add("user:alice", "p0")
	for i := range 12 {
		g := fmt.Sprintf("g%02d", i)
		if _, err := c.AddMember(ctx, g, "alice"); err != nil {
			t.Fatal(err)
		}
		add("group:"+g, "p1")
		if i%3 == 0 {
			add("group:"+g, "p2")
		}
	}
	add("user:alice", "p3")
	add("group:other", "p1")
	add("user:bob", "p1")
	slices.Sort(want)

	var got []string
	held := map[string]string{}
	cursor := ""
	for page := 0; ; page++ {
		r := s.Do(http.MethodGet, "/v1/assignments?subject=user:alice&with_groups=true&limit=5&cursor="+url.QueryEscape(cursor), nil, true)
		if r.Status != http.StatusOK || page > 10 {
			t.Fatalf("page %d: %d %s", page, r.Status, r.Raw)
		}
		list := r.Body["assignments"].([]any)
		if len(list) > 5 {
			t.Fatalf("page of %d", len(list))
		}
		for _, a := range list {
			a := a.(map[string]any)
			got = append(got, a["id"].(string))
			held[a["id"].(string)] = a["subject"].(string)
		}
		if cursor = r.Body["next_cursor"].(string); cursor == "" {
			break
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listed %v\nwant %v", got, want)
	}
	if held[want[0]] != "user:alice" || held[want[1]] != "group:g00" {
		t.Fatalf("subjects: %v", held)
	}

	// Other filters still apply; the client asks the same.
	p, err := c.Assignments(ctx, permatrix.AssignmentFilter{Subject: "user:alice", WithGroups: true, ScopeType: "project", ScopeID: "p2", Limit: 100})
	if err != nil || len(p.Assignments) != 4 || p.NextCursor != "" {
		t.Fatalf("at p2: %+v %v", p, err)
	}
	for _, q := range []string{"subject=group:g00&with_groups=true", "with_groups=true", "subject=user:alice&with_groups=yes"} {
		if r := s.Do(http.MethodGet, "/v1/assignments?"+q, nil, true); r.Status != http.StatusBadRequest {
			t.Fatalf("?%s: %d %s", q, r.Status, r.Raw)
		}
	}
	// with_groups=false is the plain listing.
	if r := s.Do(http.MethodGet, "/v1/assignments?subject=user:alice&with_groups=false", nil, true); r.Status != http.StatusOK || len(r.Body["assignments"].([]any)) != 2 {
		t.Fatalf("with_groups=false: %d %s", r.Status, r.Raw)
	}
}
