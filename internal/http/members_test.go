package http_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// TestMembersWithoutLimitArePaged: GET /v1/groups/{group}/members without a
// limit answered every member in one body (and held one snapshot open
// while a client read it, however slowly): a group's size, not the client,
// bounded the answer. Without a limit it is a page of the listings'
// default size, with the cursor of the next, as the assignment listing.
func TestMembersWithoutLimitArePaged(t *testing.T) {
	n := permatrix.DefaultPageLimit*2 + permatrix.DefaultPageLimit/2
	var want []string
	base := serveStored(t, func(tx *store.Tx) error {
		for i := range n {
			u := fmt.Sprintf("u%04d", i)
			want = append(want, u)
			if err := tx.AddMember(permatrix.Membership{Group: "big", User: u}); err != nil {
				return err
			}
		}
		return nil
	})
	var got []string
	sizes := []int{}
	for query := ""; ; {
		code, raw := request(t, http.MethodGet, base+"/v1/groups/big/members"+query, docTestToken)
		var page struct {
			Members    []string `json:"members"`
			NextCursor *string  `json:"next_cursor"`
		}
		if err := json.Unmarshal(raw, &page); code != http.StatusOK || err != nil || page.NextCursor == nil {
			t.Fatalf("members%s: %d %s", query, code, raw)
		}
		got = append(got, page.Members...)
		sizes = append(sizes, len(page.Members))
		if *page.NextCursor == "" || len(sizes) > n {
			break
		}
		query = "?cursor=" + *page.NextCursor
	}
	if wantSizes := []int{permatrix.DefaultPageLimit, permatrix.DefaultPageLimit, permatrix.DefaultPageLimit / 2}; !slices.Equal(sizes, wantSizes) {
		t.Errorf("pages of %v members, want %v", sizes, wantSizes)
	}
	if !slices.Equal(got, want) {
		t.Errorf("%d members listed, want %d in order", len(got), len(want))
	}
	// The largest page is the listings' largest.
	code, raw := request(t, http.MethodGet, base+fmt.Sprintf("/v1/groups/big/members?limit=%d", permatrix.MaxPageLimit), docTestToken)
	var all struct{ Members []string }
	if err := json.Unmarshal(raw, &all); code != http.StatusOK || err != nil || len(all.Members) != n {
		t.Errorf("limit=%d: %d, %d members", permatrix.MaxPageLimit, code, len(all.Members))
	}
	if code, raw := request(t, http.MethodGet, base+fmt.Sprintf("/v1/groups/big/members?limit=%d", permatrix.MaxPageLimit+1), docTestToken); code != http.StatusBadRequest {
		t.Errorf("limit=%d: %d %s", permatrix.MaxPageLimit+1, code, raw)
	}
}
