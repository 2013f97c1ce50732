package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/permatrix/permatrix/test/harness"
)

// A write sent with a user's JWT instead of the admin token is made as that
// user: the delegation rules judge it with the token's subject as the actor,
// and the body cannot name another actor.
func TestUserJWTWritesAreJudgedAsTheUser(t *testing.T) {
	iss := harness.NewIssuer(t)
	s := harness.Start(t, harness.Options{Identity: iss.Identity(t)})
	const suite = "uipath-task-mining-suite"
	grant := map[string]any{"subject": "user:zed", "system": suite, "role": "user", "scope": service}
	as := func(token string, body any) harness.Response {
		return s.Do(http.MethodPost, "/v1/assignments", body, false, "Authorization", "Bearer "+token)
	}
	before := string(s.Do(http.MethodGet, "/v1/export", nil, true).Raw)

	// ann holds nothing: as herself she may not assign suite roles.
	ann := iss.Token(t, "ann", nil)
	if r := as(ann, grant); r.Status != 403 || !strings.Contains(string(r.Raw), "ann") {
		t.Fatalf("ann, holding nothing, assigns with her JWT: %d %s", r.Status, r.Raw)
	}
	// Naming another actor in the body does not make the write that actor's.
	withActor := map[string]any{"subject": "user:zed", "system": suite, "role": "user", "scope": service, "actor": "boss"}
	if r := as(ann, withActor); r.Status != 400 {
		t.Fatalf("ann's JWT with actor boss: %d %s", r.Status, r.Raw)
	}
	if after := string(s.Do(http.MethodGet, "/v1/export", nil, true).Raw); after != before {
		t.Fatalf("refused JWT writes changed the store:\n%s\n%s", before, after)
	}
	// A user token reads nothing store-wide.
	if r := s.Do(http.MethodGet, "/v1/assignments", nil, false, "Authorization", "Bearer "+ann); r.Status != 403 {
		t.Fatalf("GET /v1/assignments with a user JWT: %d %s", r.Status, r.Raw)
	}

	// Once the operator makes ann a Task Mining Admin, her own token assigns.
	s.Assign(map[string]any{"subject": "user:ann", "system": suite, "role": "admin", "scope": service})
	if r := as(ann, grant); r.Status != 201 {
		t.Fatalf("ann, now admin, assigns with her JWT: %d %s", r.Status, r.Raw)
	}
}
