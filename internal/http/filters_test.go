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
// an empty listing told an operator there was nothing to delete or audit
// (unless assignments of it are stored: TestListRetiredSystem).
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

// The permissions' filters are read as the listing's are: a misspelt one
// (systems=) answered every system's permissions, and one given twice the
// first's.
func TestPermissionsQueryOnceEach(t *testing.T) {
	base := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken}))
	for q, msg := range map[string]string{
		"systems=blueprism":                             `unknown query parameter "systems"`,
		"system=blueprism&system=celonis-task-mining":   "system is given 2 times",
		"resource_type=project&resource_type=service":   "resource_type is given 2 times",
		"system=celonis-task-mining&resource_id=p1&x=1": `unknown query parameter "x"`,
	} {
		res, raw := exchange(t, http.MethodGet, base+"/v1/subjects/alice/permissions?"+q, "")
		var body struct {
			Error struct{ Code, Message string }
		}
		if res.StatusCode != http.StatusBadRequest || json.Unmarshal(raw, &body) != nil || !strings.Contains(body.Error.Message, msg) {
			t.Errorf("?%s: %d %s, want 400 with %q", q, res.StatusCode, raw, msg)
		}
	}
	res, raw := exchange(t, http.MethodGet, base+"/v1/subjects/alice/permissions?system=celonis-task-mining&resource_type=project&resource_id=p1&min_revision=0", "")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("every known parameter once: %d %s", res.StatusCode, raw)
	}
}

// A listing filtered by the service scope with an id asks for what no
// assignment can be (the service scope is the whole system: it has no id,
// permatrix.Scope.Validate, as a check's resource and the permissions'
// query are refused): it is 400 naming scope_id, not 200 [] after reading
// every assignment of the store for a page that never fills.
func TestServiceScopeFilterWithID(t *testing.T) {
	base := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken}))
	for _, path := range []string{
		"/v1/assignments?scope_type=service&scope_id=x",
		"/v1/assignments?system=blueprism&scope_type=service&scope_id=x",
		"/v1/assignments?subject=user:alice&scope_type=service&scope_id=x",
	} {
		res, raw := exchange(t, http.MethodGet, base+path, docTestToken)
		var body struct {
			Error struct{ Code, Message string }
		}
		if res.StatusCode != http.StatusBadRequest || json.Unmarshal(raw, &body) != nil ||
			body.Error.Code != "invalid" || !strings.Contains(body.Error.Message, `scope_id is not allowed with scope_type "service"`) {
			t.Errorf("GET %s: %d %s, want 400 naming scope_id", path, res.StatusCode, raw)
		}
	}
	// The service scope without an id lists what is held there.
	status, raw := requestBody(t, http.MethodPost, base+"/v1/assignments", docTestToken,
		strings.NewReader(`{"subject":"user:bob","system":"celonis-task-mining","role":"analyst","scope":{"type":"service"}}`))
	if status != http.StatusCreated {
		t.Fatalf("assign: %d %s", status, raw)
	}
	res, raw := exchange(t, http.MethodGet, base+"/v1/assignments?scope_type=service", docTestToken)
	if res.StatusCode != http.StatusOK || !strings.Contains(string(raw), `"subject":"user:bob"`) {
		t.Fatalf("GET /v1/assignments?scope_type=service: %d %s", res.StatusCode, raw)
	}
}

// The permissions at a resource type no system of the bundle has (a typo:
// projet for project) are a mistake, not an empty answer: 400 naming it,
// as with one system that lacks it. Over every system it answered 200 [],
// "no permissions there".
func TestPermissionsAtUnknownResourceType(t *testing.T) {
	base := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken}))
	res, raw := exchange(t, http.MethodGet, base+"/v1/subjects/alice/permissions?resource_type=projet&resource_id=p1", "")
	var body struct {
		Error struct{ Code, Message string }
	}
	if res.StatusCode != http.StatusBadRequest || json.Unmarshal(raw, &body) != nil ||
		body.Error.Code != "invalid" || !strings.Contains(body.Error.Message, `no system has resource type "projet"`) {
		t.Errorf("a resource type no system has: %d %s, want 400 naming it", res.StatusCode, raw)
	}
	// A type some systems have answers over those.
	res, raw = exchange(t, http.MethodGet, base+"/v1/subjects/alice/permissions?resource_type=project&resource_id=p1", "")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("a resource type some systems have: %d %s", res.StatusCode, raw)
	}
}

// A listing's scope type no system has, or the named system has not, is
// 400 naming it (a typo, ?scope_type=proces_group, answered 200 []); one
// a system has lists what it holds.
func TestUnknownScopeTypeFilter(t *testing.T) {
	base := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken}))
	for path, msg := range map[string]string{
		"/v1/assignments?scope_type=proces_group":                         `no system has scope type "proces_group"`,
		"/v1/assignments?system=blueprism&scope_type=project&scope_id=p1": `system "blueprism" has no scope type "project"`,
	} {
		res, raw := exchange(t, http.MethodGet, base+path, docTestToken)
		var body struct {
			Error struct{ Code, Message string }
		}
		if res.StatusCode != http.StatusBadRequest || json.Unmarshal(raw, &body) != nil || !strings.Contains(body.Error.Message, msg) {
			t.Errorf("GET %s: %d %s, want 400 %s", path, res.StatusCode, raw, msg)
		}
	}
	for _, path := range []string{"/v1/assignments?scope_type=process_group", "/v1/assignments?system=blueprism&scope_type=process_group&scope_id=g1"} {
		if res, raw := exchange(t, http.MethodGet, base+path, docTestToken); res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, res.StatusCode, raw)
		}
	}
}
