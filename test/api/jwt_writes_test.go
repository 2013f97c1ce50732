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

// A user token's groups are the user's groups at every check it makes
// (forward-auth, ext_authz), and the write rules read asserted groups
// (lib.asserted_groups): a user's writes are judged with them. They were
// left out, so a Blue Prism user manager whose token puts it in "ops"
// assigned a stronger role to group:ops — "never to a group it belongs to
// (stored or asserted)" saw no membership — and then held that role at its
// checks; and a member of the administrators group by its token was no
// administrator for its own writes.
func TestUserJWTWritesAreJudgedWithTheTokensGroups(t *testing.T) {
	iss := harness.NewIssuer(t)
	s := harness.Start(t, harness.Options{Identity: iss.Identity(t)})
	bpPutRole(t, s, "useradmin", "security_users")
	bpPutRole(t, s, "strong", "security_users", "security_user_roles")
	s.Assign(roleAt(bp, "user:mgr", "useradmin", service))
	mgr := iss.Token(t, "mgr", func(c map[string]any) { c["groups"] = []string{"ops"} })
	as := func(token string, body any) harness.Response {
		return s.Do(http.MethodPost, "/v1/assignments", body, false, "Authorization", "Bearer "+token)
	}
	before := export(s)
	r := as(mgr, roleAt(bp, "group:ops", "strong", service))
	wantRefused(t, s, "mgr assigning a role to its token's group", r, http.StatusForbidden, "forbidden", `actor "mgr" may not assign roles or permissions of group:ops`, before)
	if s.Allowed(map[string]any{"subject": "mgr", "groups": []string{"ops"}, "system": bp, "action": "security_user_roles"}) {
		t.Fatal("mgr holds security_user_roles through ops")
	}
	// A group mgr is not in is another's: its to grant.
	if r := as(mgr, roleAt(bp, "group:others", "strong", service)); r.Status != http.StatusCreated {
		t.Fatalf("mgr assigning to group:others: %d %s", r.Status, r.Raw)
	}
	// The token's administrators group makes its user an administrator of
	// uipath-task-mining-cloud (catalog default_group_roles), for its
	// checks and for its writes alike.
	adm := iss.Token(t, "adm", func(c map[string]any) { c["groups"] = []string{"administrators"} })
	if !s.Allowed(map[string]any{"subject": "adm", "groups": []string{"administrators"}, "system": tmc, "action": "assign_roles", "context": map[string]any{"role": "administrator"}}) {
		t.Fatal("adm is no administrator at its checks")
	}
	if r := as(adm, roleAt(tmc, "user:zed", "project_creator", service)); r.Status != http.StatusCreated {
		t.Fatalf("adm (administrators by its token) assigning project_creator: %d %s", r.Status, r.Raw)
	}
}

// A service writing with the admin token on behalf of a user whose groups
// only the identity provider knows asserts them with
// X-Permatrix-Actor-Groups: the user's writes are judged with them, as its
// checks are decided with a check's groups. Without them the Blue Prism
// user manager above could give group:ops — its group, by assertion only —
// a stronger role through such a service. The header needs the actor's
// own header, with the admin token only, and is refused otherwise.
func TestActorGroupsHeaderAssertsTheActorsGroups(t *testing.T) {
	iss := harness.NewIssuer(t)
	s := harness.Start(t, harness.Options{Identity: iss.Identity(t)})
	bpPutRole(t, s, "useradmin", "security_users")
	bpPutRole(t, s, "strong", "security_users", "security_user_roles")
	s.Assign(roleAt(bp, "user:mgr", "useradmin", service))
	before := export(s)
	r := s.Do(http.MethodPost, "/v1/assignments", roleAt(bp, "group:ops", "strong", service), true,
		"X-Permatrix-Actor", "mgr", "X-Permatrix-Actor-Groups", "dev, ops")
	wantRefused(t, s, "mgr, in ops by assertion, assigning a role to ops", r, http.StatusForbidden, "forbidden", `actor "mgr" may not assign roles or permissions of group:ops`, before)
	// Another group is another's to be granted by mgr.
	if r := s.Do(http.MethodPost, "/v1/assignments", roleAt(bp, "group:others", "strong", service), true,
		"X-Permatrix-Actor", "mgr", "X-Permatrix-Actor-Groups", "ops"); r.Status != http.StatusCreated {
		t.Fatalf("mgr assigning to group:others: %d %s", r.Status, r.Raw)
	}
	before = export(s)
	for _, c := range []struct {
		what    string
		admin   bool
		headers []string
		msg     string
	}{
		{"without the actor header", true, []string{"X-Permatrix-Actor-Groups", "ops"}, "give that header"},
		{"an invalid group id", true, []string{"X-Permatrix-Actor", "mgr", "X-Permatrix-Actor-Groups", "ops," + strings.Repeat("g", 257)}, "not valid"},
		{"with a user token", false, []string{"Authorization", "Bearer " + iss.Token(t, "mgr", nil), "X-Permatrix-Actor-Groups", "dev"}, "a user token's groups are the token's"},
	} {
		r := s.Do(http.MethodPost, "/v1/assignments", roleAt(bp, "group:zz", "strong", service), c.admin, c.headers...)
		wantRefused(t, s, c.what, r, http.StatusBadRequest, "invalid", c.msg, before)
	}
}
