package http_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// A consistency token given twice in the query (?min_revision=1&
// min_revision=99999: a proxy or a client library appending its own to
// the caller's) was read as its first value, the other dropped without a
// word: a check, a batch, a forward-auth request or a Data API decision
// was answered at a revision below a token the client sent — a decision
// from before the write it waited for. GET /v1/subjects/{user}/permissions
// refused it already. Every endpoint refuses it with 400, whichever value
// comes first (a batch: each item), and nothing is decided.
func TestMinRevisionGivenTwiceInTheQueryRefused(t *testing.T) {
	base := serveOn(t, newDocTestServer(t))
	check := `{"subject":"alice","system":"blueprism","action":"audit_alerts"}`
	for _, tc := range []struct{ method, path, body string }{
		{http.MethodPost, "/v1/check", check},
		{http.MethodPost, "/v1/check/batch", `{"checks":[` + check + `]}`},
		{http.MethodPost, "/v1/data/permatrix/allow", `{"input":` + check + `}`},
		{http.MethodPost, "/v0/data/permatrix/allow", check},
		{http.MethodPost, "/", check},
		{http.MethodGet, "/v1/forward-auth", ""},
		{http.MethodGet, "/v1/subjects/alice/permissions", ""},
	} {
		for _, q := range []string{"min_revision=1&min_revision=99999", "min_revision=99999&min_revision=1", "min_revision=0&min_revision=0"} {
			req, err := http.NewRequest(tc.method, base+tc.path+"?"+q, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Forwarded-User", "alice")
			req.Header.Set("X-Permatrix-System", "blueprism")
			req.Header.Set("X-Permatrix-Action", "audit_alerts")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if tc.path == "/v1/check/batch" {
				// The batch's token is every item's: each item is refused
				// (as with the header given twice), none decided.
				if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `{"results":[{"error":`) || !strings.Contains(string(body), "min_revision") || !strings.Contains(string(body), "once") {
					t.Errorf("%s %s?%s: %d %s, want the item refused: min_revision given more than once", tc.method, tc.path, q, res.StatusCode, body)
				}
				continue
			}
			if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "min_revision") || !strings.Contains(string(body), "once") {
				t.Errorf("%s %s?%s: %d %s, want 400 saying min_revision is given more than once", tc.method, tc.path, q, res.StatusCode, body)
			}
		}
	}
}
