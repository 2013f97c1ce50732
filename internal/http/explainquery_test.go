package http_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestExplainCellQueryOnceEach: GET /v1/matrix/{system}/explain read each
// of holder, action and scope with QueryParam, the first of two: a cell
// asked as holder=a&holder=b was explained as a's, the b dropped without
// a word, and a misspelt parameter beside them was ignored. Each is given
// once, and nothing else, as the other listings take their parameters.
func TestExplainCellQueryOnceEach(t *testing.T) {
	base := serveOn(t, newDocTestServer(t))
	const cell = "holder=audit_alerts&action=audit_alerts&scope=service"
	if status, b := request(t, http.MethodGet, base+"/v1/matrix/blueprism/explain?"+cell, ""); status != http.StatusOK {
		t.Fatalf("the cell: %d %s", status, b)
	}
	for q, want := range map[string]string{
		cell + "&holder=nobody":     "holder is given 2 times",
		"action=x&" + cell:          "action is given 2 times",
		cell + "&scope=project":     "scope is given 2 times",
		cell + "&hold=audit_alerts": `unknown query parameter \"hold\"`,
		cell + "&x=1;y=2":           "malformed query",
	} {
		status, b := request(t, http.MethodGet, base+"/v1/matrix/blueprism/explain?"+q, "")
		if status != http.StatusBadRequest || !strings.Contains(string(b), want) {
			t.Errorf("?%s: %d %s, want 400 %q", q, status, b, want)
		}
	}
}
