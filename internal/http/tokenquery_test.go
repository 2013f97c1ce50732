package http_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestTokenInAnUnreadableQueryRefused: a consistency token in a query
// that cannot be read (a semicolon, a bad escape: net/url drops the pair)
// or in another case (MIN_REVISION) was dropped without a word, and the
// check decided at whatever revision the store had — an allow or a deny
// the client asked not to get before its write. Such a query is refused
// (400), as a token given twice is, on every route that reads one.
func TestTokenInAnUnreadableQueryRefused(t *testing.T) {
	base := serveOn(t, newDocTestServer(t))
	status, b := requestBody(t, http.MethodPost, base+"/v1/assignments", docTestToken, strings.NewReader(
		`{"subject":"user:alice","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"project","id":"p1"}}`))
	if status != http.StatusCreated {
		t.Fatalf("assignment: %d %s", status, b)
	}
	var created struct{ Revision uint64 }
	if err := json.Unmarshal(b, &created); err != nil {
		t.Fatal(err)
	}
	ahead := strconv.FormatUint(created.Revision+1000, 10)
	check := `{"subject":"alice","system":"celonis-task-mining","action":"edit_users","resource":{"type":"project","id":"p1"}}`
	queries := []string{
		"min_revision=" + ahead + ";x=1",
		"x=1;y=2&min_revision=" + ahead,
		"min_revision=" + ahead + "%zz",
		"MIN_REVISION=" + ahead,
		"Min_Revision=" + ahead,
	}
	for _, q := range queries {
		for _, r := range []struct{ method, path, body string }{
			{http.MethodPost, "/v1/check", check},
			{http.MethodPost, "/v1/data/permatrix/allow", `{"input":` + check + `}`},
			{http.MethodPost, "/v0/data/permatrix/allow", check},
			{http.MethodGet, "/v1/subjects/alice/permissions", ""},
			{http.MethodGet, "/v1/forward-auth", ""},
		} {
			req, err := http.NewRequest(r.method, base+r.path+"?"+q, strings.NewReader(r.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Forwarded-User", "alice")
			req.Header.Set("X-Permatrix-System", "celonis-task-mining")
			req.Header.Set("X-Permatrix-Action", "edit_users")
			req.Header.Set("X-Permatrix-Resource-Type", "project")
			req.Header.Set("X-Permatrix-Resource-Id", "p1")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body bytes.Buffer
			_, _ = body.ReadFrom(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusBadRequest {
				t.Errorf("%s %s?%s: %d %s, want 400 (the token is lost)", r.method, r.path, q, res.StatusCode, body.String())
			}
		}
		status, b := requestBody(t, http.MethodPost, base+"/v1/check/batch?"+q, "", strings.NewReader(`{"checks":[`+check+`]}`))
		if status != http.StatusOK || !strings.Contains(string(b), `"error"`) || strings.Contains(string(b), `"allow"`) {
			t.Errorf("POST /v1/check/batch?%s: %d %s, want the item's error (the token is lost)", q, status, b)
		}
	}
	// A query that can be read, without a token or with one reached, is
	// as it was.
	status, b = requestBody(t, http.MethodPost, base+"/v1/check?min_revision=1&other=x", "", strings.NewReader(check))
	if status != http.StatusOK || !strings.Contains(string(b), `"allow":true`) {
		t.Errorf("POST /v1/check?min_revision=1&other=x: %d %s, want allowed", status, b)
	}
}
