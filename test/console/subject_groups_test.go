package console_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// TestSubjectReadsGroupsInOneListing: the Subject page lists a user's
// assignments and its groups' with one listing
// (GET /v1/assignments?subject=user:…&with_groups=true), paged, not one
// request per group: a user in 40 groups costs one request, not 41.
func TestSubjectReadsGroupsInOneListing(t *testing.T) {
	tb := newTab(t)
	var lines []string
	lines = append(lines, `{"subject":"user:joiner","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"project","id":"own"}}`)
	for i := range 40 {
		g := fmt.Sprintf("g%02d", i)
		if r := tb.srv.Do(http.MethodPut, "/v1/groups/"+g+"/members/joiner", nil, true); r.Status != http.StatusOK {
			t.Fatalf("membership: %d %s", r.Status, r.Raw)
		}
		lines = append(lines, fmt.Sprintf(`{"subject":"group:%s","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"project","id":"p%02d"}}`, g, i))
	}
	importLines(t, tb, lines)
	requests := chromedp.Events(tb.ctx, network.RequestWillBeSent)
	tb.open("overview")
	tb.setToken()
	tb.goTo("subject?user=joiner")
	tb.waitFor(`document.querySelectorAll('#subject-assignment-table tbody tr').length === 41`)
	var via []string
	tb.evalInto(`[...document.querySelectorAll('#subject-assignment-table tbody tr td:nth-child(2)')].map((td) => td.textContent)`, &via)
	if via[0] != "directly" || via[1] != "via group:g00" || via[40] != "via group:g39" {
		t.Fatalf("held: %v", via)
	}
	tb.eval(`fetch('/ui/end-of-test').catch(() => {}); true`)
	var listings []string
	for ev, err := range requests {
		if err != nil {
			t.Fatal(err)
		}
		u := strings.TrimPrefix(ev.Request.URL, tb.srv.URL)
		if strings.HasPrefix(u, "/v1/assignments?") && strings.Contains(u, "subject=") {
			listings = append(listings, u)
		}
		if u == "/ui/end-of-test" {
			break
		}
	}
	if len(listings) != 1 || !strings.Contains(listings[0], "with_groups=true") {
		t.Fatalf("the page listed assignments with %d requests: %v", len(listings), listings)
	}
}
