package http_test

import (
	"net/http"
	"strings"
	"testing"

	permhttp "github.com/permatrix/permatrix/internal/http"
)

// An assignment's id is the server's (the answer gives it). One given in
// the body was dropped without a word and the assignment stored under
// another: a client that meant to choose it, or replayed an export's line
// to restore it, was told 201 and holds an id that names nothing. It is
// 400, nothing stored; an empty id is no id.
func TestAssignmentIDIsTheServers(t *testing.T) {
	base := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken}))
	status, body := requestBody(t, http.MethodPost, base+"/v1/assignments", docTestToken,
		strings.NewReader(`{"id":"a000000000042","subject":"user:bob","system":"celonis-task-mining","role":"analyst","scope":{"type":"service"}}`))
	if status != http.StatusBadRequest || !strings.Contains(string(body), "is the server's") {
		t.Errorf("an assignment with its own id: %d %s, want 400 naming id", status, body)
	}
	if status, body := request(t, http.MethodGet, base+"/v1/assignments", docTestToken); status != http.StatusOK || !strings.Contains(string(body), `"assignments":[]`) {
		t.Errorf("after the refused write: %d %s, want nothing stored", status, body)
	}
	status, body = requestBody(t, http.MethodPost, base+"/v1/assignments", docTestToken,
		strings.NewReader(`{"id":"","subject":"user:bob","system":"celonis-task-mining","role":"analyst","scope":{"type":"service"}}`))
	if status != http.StatusCreated {
		t.Errorf("an assignment with an empty id: %d %s, want 201", status, body)
	}
}
