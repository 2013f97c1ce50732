package http_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// notJSONSpace are bodies of whitespace that is not JSON's (JSON's is
// space, tab, CR and LF): a vertical tab, a form feed, a no-break space,
// NEL, an em space. bytes.TrimSpace trims each of them.
var notJSONSpace = []string{"\v", "\f", "\u00a0", "\u0085", "\u2003", " \v\n"}

// TestNotJSONWhitespaceBodyRefused: a body that is only whitespace JSON
// does not know is malformed, not "no body". A write whose body is
// optional (a membership, a deletion) took such a body for none and was
// made with the operator's authority — a body that is not {"actor":…}
// is refused, never ignored (optionalActor) — and the Data API took it
// for no input, where stock OPA answers 400 ("body contains malformed
// input document"). JSON's own whitespace is still no body.
func TestNotJSONWhitespaceBodyRefused(t *testing.T) {
	base := serveOn(t, newDocTestServer(t))
	revision := func() float64 {
		t.Helper()
		_, b := exchangeBody(t, http.MethodGet, base+"/health", "", nil)
		var h struct {
			Store struct {
				Revision float64 `json:"revision"`
			} `json:"store"`
		}
		if err := json.Unmarshal(b, &h); err != nil {
			t.Fatalf("/health: %v %s", err, b)
		}
		return h.Store.Revision
	}
	// assignment is the path of an assignment stored (again, if a
	// refusal that failed deleted it).
	assignment := func() string {
		t.Helper()
		status, b := requestBody(t, http.MethodPost, base+"/v1/assignments", docTestToken, strings.NewReader(
			`{"subject":"user:alice","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"project","id":"p1"}}`))
		var created struct{ ID string }
		if err := json.Unmarshal(b, &created); err != nil || status != http.StatusCreated {
			t.Fatalf("assignment: %d %s", status, b)
		}
		return "/v1/assignments/" + created.ID
	}
	type write struct{ method, path string }
	writes := func() []write {
		return []write{
			{http.MethodPut, "/v1/groups/g1/members/bob"},
			{http.MethodDelete, assignment()},
			{http.MethodDelete, "/v1/groups/g1/members/bob"},
		}
	}
	reads := []string{"/v1/data/permatrix/allow", "/v0/data/permatrix/allow", "/"}
	for _, body := range notJSONSpace {
		for _, w := range writes() {
			before := revision()
			status, b := requestBody(t, w.method, base+w.path, docTestToken, strings.NewReader(body))
			if status != http.StatusBadRequest || !strings.Contains(string(b), `"invalid"`) {
				t.Errorf("%s %s with body %q: %d %s, want 400 invalid", w.method, w.path, body, status, b)
			}
			if after := revision(); after != before {
				t.Errorf("%s %s with body %q: the store changed (revision %v → %v)", w.method, w.path, body, before, after)
			}
		}
		for _, path := range reads {
			status, b := requestBody(t, http.MethodPost, base+path, "", strings.NewReader(body))
			if status != http.StatusBadRequest {
				t.Errorf("POST %s with body %q: %d %s, want 400", path, body, status, b)
			}
		}
	}
	// JSON's whitespace is no body: the write is made, the input absent.
	for _, w := range writes() {
		status, b := requestBody(t, w.method, base+w.path, docTestToken, strings.NewReader(" \t\r\n"))
		if status != http.StatusOK {
			t.Errorf("%s %s with a body of JSON whitespace: %d %s, want 200", w.method, w.path, status, b)
		}
	}
	for _, path := range reads {
		status, b := requestBody(t, http.MethodPost, base+path, "", strings.NewReader(" \t\r\n"))
		if status != http.StatusOK {
			t.Errorf("POST %s with a body of JSON whitespace: %d %s, want 200", path, status, b)
		}
	}
}
