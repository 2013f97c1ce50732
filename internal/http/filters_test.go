package http_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	permhttp "github.com/permatrix/permatrix/internal/http"
)

// A filter naming a system the bundle does not have is a mistake (a typo,
// a system from another bundle), not a question with an empty answer: it
// is 400 "unknown system", as a check's or the permissions' system is —
// an empty listing told an operator there was nothing to delete or audit.
func TestUnknownSystemFilter(t *testing.T) {
	base := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken}))
	for _, path := range []string{
		"/v1/assignments?system=nope",
		"/v1/assignments?system=nope&subject=user:alice&with_groups=true",
		"/v1/subjects/alice/permissions?system=nope",
	} {
		res, raw := exchange(t, http.MethodGet, base+path, docTestToken)
		var body struct {
			Error struct{ Code, Message string }
		}
		if res.StatusCode != http.StatusBadRequest || json.Unmarshal(raw, &body) != nil ||
			body.Error.Code != "invalid" || !strings.Contains(body.Error.Message, `unknown system "nope"`) {
			t.Errorf("GET %s: %d %s, want 400 invalid unknown system \"nope\"", path, res.StatusCode, raw)
		}
	}
	// A system the bundle has lists what it holds: nothing yet.
	res, raw := exchange(t, http.MethodGet, base+"/v1/assignments?system=blueprism", docTestToken)
	if res.StatusCode != http.StatusOK || !strings.Contains(string(raw), `"assignments":[]`) {
		t.Fatalf("GET /v1/assignments?system=blueprism: %d %s", res.StatusCode, raw)
	}
}
