package http_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	permhttp "github.com/permatrix/permatrix/internal/http"
)

// The service scope is the whole system and has no id (contract §2). A
// check, batch item, permissions query or assignment that gives it one is
// a mistake (a project meant, its type left out), not a question about the
// service scope: 400 naming the field, nothing decided or stored. A check's
// id was dropped, so a caller asking about one resource was answered about
// the whole system.
func TestServiceScopeHasNoID(t *testing.T) {
	base := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken}))
	type answer struct {
		Error struct{ Code, Message string }
	}
	refused := func(what string, status int, raw []byte, field string) {
		t.Helper()
		var a answer
		if status != http.StatusBadRequest || json.Unmarshal(raw, &a) != nil || a.Error.Code != "invalid" ||
			!strings.Contains(a.Error.Message, field) || !strings.Contains(a.Error.Message, `"service"`) {
			t.Errorf("%s: %d %s, want 400 invalid naming %s", what, status, raw, field)
		}
	}
	check := `{"subject":"alice","system":"celonis-task-mining","action":"edit_users","resource":{"type":"service","id":"p1"}}`
	status, raw := requestBody(t, http.MethodPost, base+"/v1/check", "", strings.NewReader(check))
	refused("POST /v1/check", status, raw, "resource.id")

	status, raw = requestBody(t, http.MethodPost, base+"/v1/check/batch", "", strings.NewReader(`{"checks":[`+check+`]}`))
	var batch struct{ Results []json.RawMessage }
	if status != http.StatusOK || json.Unmarshal(raw, &batch) != nil || len(batch.Results) != 1 {
		t.Fatalf("POST /v1/check/batch: %d %s", status, raw)
	}
	refused("a batch item", http.StatusBadRequest, batch.Results[0], "resource.id")

	status, raw = request(t, http.MethodGet, base+"/v1/subjects/alice/permissions?system=celonis-task-mining&resource_type=service&resource_id=p1", "")
	refused("GET permissions", status, raw, "resource_id")

	status, raw = requestBody(t, http.MethodPost, base+"/v1/assignments", docTestToken, strings.NewReader(
		`{"subject":"user:alice","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"service","id":"p1"}}`))
	refused("POST /v1/assignments", status, raw, "scope.id")
	if n := stored(t, base, "user:alice"); n != 0 {
		t.Fatalf("a refused assignment is stored: %d", n)
	}

	// Without the id, each is the service scope's question.
	status, raw = requestBody(t, http.MethodPost, base+"/v1/check", "", strings.NewReader(strings.Replace(check, `,"id":"p1"`, "", 1)))
	if status != http.StatusOK {
		t.Fatalf("a service check: %d %s", status, raw)
	}
	status, raw = request(t, http.MethodGet, base+"/v1/subjects/alice/permissions?system=celonis-task-mining&resource_type=service", "")
	if status != http.StatusOK {
		t.Fatalf("service permissions: %d %s", status, raw)
	}
}
