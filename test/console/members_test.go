package console_test

import (
	"fmt"
	"net/http"
	"testing"
)

// TestMembersArePaged: the Assignments page lists a group's members 100 at
// a time (GET …/members?limit=100), with a button that reads the next
// page after the cursor and adds it, rather than every member in one
// answer rendered at once.
func TestMembersArePaged(t *testing.T) {
	tb := newTab(t)
	for i := range 150 {
		if r := tb.srv.Do(http.MethodPut, fmt.Sprintf("/v1/groups/big/members/u%03d", i), nil, true); r.Status != http.StatusOK {
			t.Fatalf("membership: %d %s", r.Status, r.Raw)
		}
	}
	tb.open("overview")
	tb.setToken()
	tb.goTo("assignments?group=big")
	tb.waitFor(`document.querySelectorAll('#member-list li').length > 0`)
	var members []string
	tb.evalInto(`[...document.querySelectorAll('#member-list .member')].map((e) => e.textContent)`, &members)
	if len(members) != 100 || members[0] != "u000" || members[99] != "u099" {
		t.Fatalf("first page: %d members %v…", len(members), members[:min(3, len(members))])
	}
	if note := tb.text("#member-more"); note == "" {
		t.Fatal("no button reads the next page of members")
	}
	tb.click("#member-more")
	tb.waitFor(`document.querySelectorAll('#member-list .member').length === 150`)
	tb.evalInto(`[...document.querySelectorAll('#member-list .member')].map((e) => e.textContent)`, &members)
	for i, u := range members {
		if u != fmt.Sprintf("u%03d", i) {
			t.Fatalf("member %d is %q", i, u)
		}
	}
	var more bool
	tb.evalInto(`!!document.querySelector('#member-more') && !document.querySelector('#member-more').hidden`, &more)
	if more {
		t.Fatal("the last page still offers more members")
	}
}
