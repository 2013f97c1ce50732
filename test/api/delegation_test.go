package api_test

// Delegation nobody can bypass (issue 9, items 3 and 10): every attempt an
// attacker made with the admin token held by a calling service, replayed
// against the real server. Each refusal is asserted with its status and
// message, and with GET /v1/export identical before and after.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/permatrix/permatrix/test/harness"
)

// delegationFixture (uipath-task-mining-cloud): root administrator, group
// tm-admins holding administrator, p1 created by pa (project_admin on it)
// with ba business_analyst and ru recording_user, pc and alice project
// creators, p2 created by alice, and x7 an unregistered project alice is
// project_admin on. It returns the server and the id of root's assignment.
func delegationFixture(t *testing.T) (*harness.Server, string) {
	s := harness.Start(t, harness.Options{})
	rootID := s.Assign(roleAt(tmc, "user:root", "administrator", service))
	s.Assign(roleAt(tmc, "group:tm-admins", "administrator", service))
	registerProject(t, s, tmc, "p1", "pa", "assisted")
	s.Assign(roleAt(tmc, "user:ba", "business_analyst", project("p1")))
	s.Assign(roleAt(tmc, "user:ru", "recording_user", project("p1")))
	s.Assign(roleAt(tmc, "user:pc", "project_creator", service))
	s.Assign(roleAt(tmc, "user:alice", "project_creator", service))
	registerProject(t, s, tmc, "p2", "alice", "assisted")
	s.Assign(roleAt(tmc, "user:alice", "project_admin", project("x7")))
	return s, rootID
}

// rawDo sends body as is with the admin token and header (values may
// repeat), and decodes the answer.
func rawDo(t *testing.T, s *harness.Server, method, path, body string, header http.Header) harness.Response {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("Authorization", "Bearer "+harness.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := harness.Response{Status: resp.StatusCode, Raw: raw}
	if err := json.Unmarshal(raw, &r.Body); err != nil {
		t.Fatalf("%s %s: not JSON: %q", method, path, raw)
	}
	return r
}

const adminGrant = `"subject":"user:ba","system":"uipath-task-mining-cloud","role":"administrator","scope":{"type":"service"}`

// Item 3: {"actor":"ba","Actor":""}, duplicate "actor" keys with the last
// empty, or "ACTOR":"ba" alone made the write as the operator (Go's
// case-insensitive field match, last key wins). Every body is now decoded
// strictly: case variants, unknown and duplicate keys are 400, anywhere.
func TestStrictBodiesRefuseCaseVariantsAndDuplicateKeys(t *testing.T) {
	s, rootID := delegationFixture(t)
	before := export(s)
	cases := []struct {
		method, path, body, msg string
	}{
		{"POST", "/v1/assignments", `{"actor":"ba","Actor":"",` + adminGrant + `}`, `unknown key "Actor" in the body (keys are case-sensitive: did you mean "actor"?)`},
		{"POST", "/v1/assignments", `{"actor":"ba","actor":"",` + adminGrant + `}`, `duplicate key "actor" in the body`},
		{"POST", "/v1/assignments", `{"ACTOR":"ba",` + adminGrant + `}`, `unknown key "ACTOR"`},
		{"POST", "/v1/assignments", `{"actor":"ba",` + adminGrant + `,"Subject":"user:x"}`, `unknown key "Subject"`},
		{"POST", "/v1/assignments", `{"actor":"ba","subject":"user:ba","system":"uipath-task-mining-cloud","role":"administrator","scope":{"type":"service","Type":"project"}}`, `unknown key "Type" in object scope`},
		{"POST", "/v1/assignments", `{"actor":"ba","subject":"user:ba","system":"uipath-task-mining-cloud","role":"administrator","scope":{"type":"project","type":"service"}}`, `duplicate key "type" in object scope`},
		{"POST", "/v1/assignments", `{"actor":null,` + adminGrant + `}`, "actor: expected a string, got null"},
		{"POST", "/v1/assignments", `{"actor":"",` + adminGrant + `}`, "actor must be a user id"},
		{"POST", "/v1/assignments", `{"actor":"ba","role_":"x",` + adminGrant + `}`, `unknown key "role_"`},
		{"DELETE", "/v1/assignments/" + rootID, `{"actor":"ru","ACTOR":""}`, `unknown key "ACTOR" in the body (keys are case-sensitive: did you mean "actor"?)`},
		{"DELETE", "/v1/assignments/" + rootID, `{"actor":"ru","actor":""}`, `duplicate key "actor"`},
		{"DELETE", "/v1/assignments/" + rootID, `{"actor":"ru","reason":"x"}`, `unknown key "reason" in the body (known keys: actor)`},
		{"DELETE", "/v1/assignments/" + rootID, `["ru"]`, "the body must be a JSON object, got array"},
		{"PUT", "/v1/groups/tm-admins/members/ba", `{"Actor":"ba"}`, `unknown key "Actor"`},
		{"DELETE", "/v1/groups/tm-admins/members/ba", `{"actor":"ba","actor":""}`, `duplicate key "actor"`},
		{"PUT", "/v1/systems/" + tmc + "/projects/p1", `{"actor":"pc","Created_By":"pc","kind":"unassisted"}`, `unknown key "Created_By"`},
		{"PUT", "/v1/systems/" + tmc + "/projects/pnull", `null`, "the body must be a JSON object, got null"},
		{"PUT", "/v1/systems/" + tmc + "/projects/pnull", `{"created_by":null}`, "created_by: expected a string, got null"},
		{"PUT", "/v1/systems/blueprism/roles/r", `{"permissions":["edit_process"],"Actor":"x"}`, `unknown key "Actor"`},
		{"PUT", "/v1/systems/blueprism/roles/r", `{"permissions":["edit_process"],"permissions":[]}`, `duplicate key "permissions"`},
		{"DELETE", "/v1/systems/blueprism/roles/r", `{"actor":"x","ACTOR":""}`, `unknown key "ACTOR"`},
		{"POST", "/v1/import", `{"Actor":"ba",` + adminGrant + `}`, `line 1: unknown key "Actor"`},
		{"POST", "/v1/import", "\n" + `{"actor":"ba","actor":"",` + adminGrant + `}`, `line 2: duplicate key "actor"`},
	}
	for _, c := range cases {
		r := rawDo(t, s, c.method, c.path, c.body, nil)
		wantRefused(t, s, c.method+" "+c.path+" "+c.body, r, http.StatusBadRequest, "invalid", c.msg, before)
	}
	// Control: the same write with one actor is judged as ba's (403), and
	// nothing above made ba an administrator.
	r := rawDo(t, s, "POST", "/v1/assignments", `{"actor":"ba",`+adminGrant+`}`, nil)
	wantRefused(t, s, "ba granting itself administrator", r, http.StatusForbidden, "forbidden", "only an Administrator", before)
	if s.Allowed(sysCheck(tmc, "ba", "assign_roles", nil, map[string]any{"role": "administrator"})) {
		t.Fatal("ba became an administrator")
	}
}

// Checks and batches are decoded by the same decoder: a check cannot say two
// things either (duplicate keys inside context too).
func TestStrictCheckBodies(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	for body, msg := range map[string]string{
		`{"subject":"a","Subject":"root","system":"celonis-task-mining","action":"edit_users"}`:                        `unknown key "Subject"`,
		`{"subject":"root","subject":"a","system":"celonis-task-mining","action":"edit_users"}`:                        `duplicate key "subject"`,
		`{"subject":"a","system":"celonis-task-mining","action":"create_project","context":{"space":"s","space":"t"}}`: `duplicate key "space" in object context`,
		`{"subject":"a","system":"celonis-task-mining","action":"edit_users","resource":{"type":"project","ID":"p"}}`:  `unknown key "ID" in object resource`,
		`{"checks":[{"subject":"a","system":"celonis-task-mining","action":"edit_users","context":{"k":1,"k":2}}]}`:    `duplicate key "k" in object checks[0].context`,
	} {
		path := "/v1/check"
		if strings.HasPrefix(body, `{"checks"`) {
			path = "/v1/check/batch"
		}
		r := s.Do(http.MethodPost, path, body, false)
		if code, m := errorOf(r); r.Status != 400 || code != "invalid" || !strings.Contains(m, msg) {
			t.Errorf("%s %s: %d %s, want 400 with %q", path, body, r.Status, r.Raw, msg)
		}
	}
	// A case variant inside one batch item is that item's error only.
	r := s.Do(http.MethodPost, "/v1/check/batch", `{"checks":[{"subject":"a","system":"celonis-task-mining","action":"edit_users"},{"Subject":"a","system":"celonis-task-mining","action":"edit_users"}]}`, false)
	res := items(r, "results")
	if r.Status != 200 || len(res) != 2 || res[0]["allow"] != false {
		t.Fatalf("batch with one case-variant item: %d %s", r.Status, r.Raw)
	}
	if e, _ := res[1]["error"].(map[string]any); e["code"] != "invalid" || !strings.Contains(fmt.Sprint(e["message"]), `unknown key "Subject"`) {
		t.Fatalf("batch with one case-variant item: %d %s", r.Status, r.Raw)
	}
}

// The actor has one owner (internal/http/actor.go): the body's actor or the
// header, never two different ones, never an empty one.
func TestActorRules(t *testing.T) {
	s, rootID := delegationFixture(t)
	before := export(s)
	grant := `{` + adminGrant + `}`
	for _, c := range []struct {
		what, method, path, body string
		header                   http.Header
		msg                      string
	}{
		{"header twice", "POST", "/v1/assignments", grant, http.Header{"X-Permatrix-Actor": {"root", "ba"}}, "X-Permatrix-Actor is given 2 times"},
		{"body and header differ", "POST", "/v1/assignments", `{"actor":"root",` + adminGrant + `}`, http.Header{"X-Permatrix-Actor": {"ba"}}, `the body's actor "root" and the X-Permatrix-Actor header "ba" differ`},
		{"empty header", "POST", "/v1/assignments", grant, http.Header{"X-Permatrix-Actor": {""}}, "X-Permatrix-Actor must be a user id"},
		{"DELETE body and header differ", "DELETE", "/v1/assignments/" + rootID, `{"actor":"root"}`, http.Header{"X-Permatrix-Actor": {"ru"}}, "differ"},
		{"import line and header differ", "POST", "/v1/import", `{"actor":"root",` + adminGrant + `}`, http.Header{"X-Permatrix-Actor": {"ba"}}, "line 1: the body's actor"},
	} {
		wantRefused(t, s, c.what, rawDo(t, s, c.method, c.path, c.body, c.header), http.StatusBadRequest, "invalid", c.msg, before)
	}
	// Body and header naming the same actor: that actor's write.
	r := rawDo(t, s, "POST", "/v1/assignments", `{"actor":"ba",`+adminGrant+`}`, http.Header{"X-Permatrix-Actor": {"ba"}})
	wantRefused(t, s, "same actor twice", r, http.StatusForbidden, "forbidden", `"ba" may not assign role "administrator"`, before)
}

// A write's actor is in its body or its header, never in its query: a
// query parameter was ignored, so POST /v1/assignments?actor=ba made the
// write as the operator (ba an administrator). A write takes no query
// parameter but an import's chunk; any other is 400, as an unknown body key.
func TestWriteQueryNamesNothing(t *testing.T) {
	s, rootID := delegationFixture(t)
	before := export(s)
	for _, c := range []struct {
		method, path, body, msg string
	}{
		{"POST", "/v1/assignments?actor=ba", `{` + adminGrant + `}`, `unknown query parameter "actor"`},
		{"POST", "/v1/assignments?Actor=ba&x", `{` + adminGrant + `}`, `unknown query parameter "Actor"`},
		{"DELETE", "/v1/assignments/" + rootID + "?actor=ru", "", `unknown query parameter "actor"`},
		{"PUT", "/v1/groups/tm-admins/members/ba?actor=ba", "", `unknown query parameter "actor"`},
		{"DELETE", "/v1/groups/tm-admins/members/ba?actor=ba", "", `unknown query parameter "actor"`},
		{"PUT", "/v1/systems/" + tmc + "/projects/p1?actor=pc", `{"created_by":"pa","kind":"unassisted"}`, `unknown query parameter "actor"`},
		{"PUT", "/v1/systems/blueprism/roles/r?actor=x", `{"permissions":["edit_process"]}`, `unknown query parameter "actor"`},
		{"DELETE", "/v1/systems/blueprism/roles/r?actor=x", "", `unknown query parameter "actor"`},
		{"POST", "/v1/import?actor=ba", `{` + adminGrant + `}`, `unknown query parameter "actor"`},
		{"POST", "/v1/import?chunk=1&actor=ba", `{` + adminGrant + `}`, `unknown query parameter "actor"`},
		{"POST", "/v1/assignments?%zz", `{` + adminGrant + `}`, "query"},
	} {
		r := rawDo(t, s, c.method, c.path, c.body, nil)
		wantRefused(t, s, c.method+" "+c.path, r, http.StatusBadRequest, "invalid", c.msg, before)
	}
	// Without the token the answer is still 401, whatever the query.
	if r := s.Do(http.MethodPost, "/v1/assignments?actor=ba", `{`+adminGrant+`}`, false); r.Status != http.StatusUnauthorized {
		t.Fatalf("no token: %d %s", r.Status, r.Raw)
	}
	// An import still takes chunk.
	r := rawDo(t, s, "POST", "/v1/import?chunk=1", `{"subject":"user:u1","system":"uipath-task-mining-cloud","role":"recording_user","scope":{"type":"project","id":"p1"}}`, nil)
	if r.Status != 200 {
		t.Fatalf("import with chunk: %d %s", r.Status, r.Raw)
	}
}

// Item 3: POST /v1/import ignored the actor (header and per line). Every
// line is judged with its actor; the first refused line fails the import
// (all or nothing) with its line number and the rule's reason.
func TestImportJudgesEachLineWithItsActor(t *testing.T) {
	s, _ := delegationFixture(t)
	before := export(s)
	recording := func(user string) string {
		return `{"subject":"user:` + user + `","system":"uipath-task-mining-cloud","role":"recording_user","scope":{"type":"project","id":"p1"}}`
	}
	withActor := func(actor, line string) string { return `{"actor":"` + actor + `",` + line[1:] }
	for _, c := range []struct {
		what, body, header, msg string
	}{
		{"header actor ba granting itself administrator", `{` + adminGrant + `}`, "ba", `line 1: "ba" may not assign role "administrator"`},
		{"line actor ba after an operator line", recording("u1") + "\n" + withActor("ba", `{`+adminGrant+`}`), "", `line 2: "ba" may not assign role "administrator"`},
		{"line actor ba assigning recording_user", recording("u1") + "\n\n" + withActor("ba", recording("u2")), "", `line 3: "ba" may not assign role "recording_user" at project "p1"`},
		{"header actor pa: its second line is refused", recording("u1") + "\n" + `{` + adminGrant + `}`, "pa", `line 2: "pa" may not assign role "administrator"`},
	} {
		h := http.Header{}
		if c.header != "" {
			h.Set("X-Permatrix-Actor", c.header)
		}
		wantRefused(t, s, c.what, rawDo(t, s, "POST", "/v1/import", c.body, h), http.StatusForbidden, "forbidden", c.msg, before)
	}
	// pa (project_admin on p1) may import recording users on p1, by header or per line.
	r := rawDo(t, s, "POST", "/v1/import", recording("u1")+"\n"+withActor("pa", recording("u2")), http.Header{"X-Permatrix-Actor": {"pa"}})
	if r.Status != 200 || r.Body["imported"] != float64(2) {
		t.Fatalf("pa importing recording users: %d %s", r.Status, r.Raw)
	}
}

// Item 3: an actor added itself to tm-admins (which holds administrator)
// and became an administrator. Adding a member is judged as assigning the
// member everything the group holds.
func TestGroupMembershipDelegation(t *testing.T) {
	s, _ := delegationFixture(t)
	before := export(s)
	put := func(group, user string, actor string, header bool) harness.Response {
		if header {
			return s.Do(http.MethodPut, "/v1/groups/"+group+"/members/"+user, nil, true, "X-Permatrix-Actor", actor)
		}
		return s.Do(http.MethodPut, "/v1/groups/"+group+"/members/"+user, map[string]any{"actor": actor}, true)
	}
	for _, header := range []bool{true, false} {
		wantRefused(t, s, fmt.Sprintf("ba adding itself to tm-admins (header %v)", header), put("tm-admins", "ba", "ba", header),
			http.StatusForbidden, "forbidden", `"ba" may not add "ba" to group "tm-admins": the group holds role "administrator"`, before)
	}
	// The default group of the Administrators reading: holding by default.
	wantRefused(t, s, "ba adding itself to administrators", put("administrators", "ba", "ba", true),
		http.StatusForbidden, "forbidden", "(by default)", before)
	// A group holding nothing: only the operator manages it (least privilege).
	wantRefused(t, s, "root adding to an empty group", put("empty", "ba", "root", true),
		http.StatusForbidden, "forbidden", "the group holds no role or permission", before)
	if s.Allowed(sysCheck(tmc, "ba", "assign_roles", nil, map[string]any{"role": "administrator"})) {
		t.Fatal("ba became an administrator")
	}
	// An administrator may; then ba is one, and ru may not take it out again.
	if r := put("tm-admins", "ba", "root", true); r.Status != 200 {
		t.Fatalf("root adding ba to tm-admins: %d %s", r.Status, r.Raw)
	}
	after := export(s)
	r := s.Do(http.MethodDelete, "/v1/groups/tm-admins/members/ba", map[string]any{"actor": "ru"}, true)
	wantRefused(t, s, "ru removing ba from tm-admins", r, http.StatusForbidden, "forbidden", `"ru" may not remove "ba" from group "tm-admins"`, after)
	if r := s.Do(http.MethodDelete, "/v1/groups/tm-admins/members/ba", nil, true, "X-Permatrix-Actor", "root"); r.Status != 200 {
		t.Fatalf("root removing ba: %d %s", r.Status, r.Raw)
	}
	if r := s.Do(http.MethodPut, "/v1/groups/empty/members/ba", nil, true); r.Status != 200 {
		t.Fatalf("the operator adding to an empty group: %d %s", r.Status, r.Raw)
	}
}

// Item 3: a project creator re-registered someone else's project and
// flipped its kind; registered an existing, unregistered project alice
// administers, then removed alice; registered a project naming another user
// as its creator. Item 11: body null registered a project with no creator.
func TestProjectDelegation(t *testing.T) {
	s, _ := delegationFixture(t)
	before := export(s)
	put := func(id string, body any) harness.Response {
		return s.Do(http.MethodPut, "/v1/systems/"+tmc+"/projects/"+id, body, true)
	}
	for _, c := range []struct {
		what string
		id   string
		body any
		msg  string
	}{
		{"pc flipping alice's p2 to unassisted", "p2", map[string]any{"kind": "unassisted", "actor": "pc"}, `"pc" may not re-register project "p2"`},
		{"pc re-registering p2 naming alice", "p2", map[string]any{"created_by": "alice", "kind": "unassisted", "actor": "pc"}, `it was registered as created by "alice"`},
		{"pc registering x7, which alice administers", "x7", map[string]any{"kind": "assisted", "actor": "pc"}, `"pc" may not register project "x7" of uipath-task-mining-cloud: assignments on it exist already`},
		{"pc registering p9 naming alice", "p9", map[string]any{"created_by": "alice", "kind": "assisted", "actor": "pc"}, `"pc" may register projects only as itself: created_by "alice" names another user`},
		{"ba registering a project", "p9", map[string]any{"kind": "assisted", "actor": "ba"}, "creating projects needs administrator or project_creator"},
	} {
		wantRefused(t, s, c.what, put(c.id, c.body), http.StatusForbidden, "forbidden", c.msg, before)
	}
	wantRefused(t, s, "body null", put("pnull", "null"), http.StatusBadRequest, "invalid", "the body must be a JSON object, got null", before)
	wantRefused(t, s, "empty body", put("pnull", ""), http.StatusBadRequest, "invalid", "request body is empty", before)
	// ... and so pc never got rights over alice on x7.
	list := s.Do(http.MethodGet, "/v1/assignments?subject=user:alice&scope_id=x7", nil, true)
	alice := items(list, "assignments")
	if len(alice) != 1 {
		t.Fatalf("alice on x7: %s", list.Raw)
	}
	r := s.Do(http.MethodDelete, "/v1/assignments/"+alice[0]["id"].(string), nil, true, "X-Permatrix-Actor", "pc")
	wantRefused(t, s, "pc removing alice from x7", r, http.StatusForbidden, "forbidden", `"pc" may not unassign role "project_admin" at project "x7"`, before)

	// An actor registers projects as itself: created_by absent means the actor.
	r = put("p8", map[string]any{"kind": "assisted", "actor": "pc"})
	if r.Status != 200 || r.Body["project"].(map[string]any)["created_by"] != "pc" || r.Body["creator_assignment"].(map[string]any)["subject"] != "user:pc" {
		t.Fatalf("pc registering p8: %d %s", r.Status, r.Raw)
	}
	// Its creator may change its own project; an administrator another's.
	if r := put("p2", map[string]any{"kind": "unassisted", "actor": "alice"}); r.Status != 200 {
		t.Fatalf("alice flipping her own p2: %d %s", r.Status, r.Raw)
	}
	if r := put("p8", map[string]any{"created_by": "pc", "kind": "unassisted", "actor": "root"}); r.Status != 200 {
		t.Fatalf("root (administrator) changing pc's p8: %d %s", r.Status, r.Raw)
	}
	if r := put("x7", map[string]any{"kind": "assisted", "actor": "root"}); r.Status != 200 {
		t.Fatalf("root (administrator) registering x7: %d %s", r.Status, r.Raw)
	}
}

// A project's creator gets project_admin on it when the project is
// registered ("新しい Task Mining プロジェクトを作成する…プロジェクト作成者には、
// …プロジェクト管理者ロールが自動的に割り当てられます": on creating it), once.
// Registering it again (the same body, or its kind changed) gave the role
// back: a creator whose project_admin an administrator had removed sent its
// project again and held it, and assigned it on.
func TestProjectRegisteredAgainGivesNoRoleBack(t *testing.T) {
	s, _ := delegationFixture(t)
	put := func(body map[string]any) harness.Response {
		return s.Do(http.MethodPut, "/v1/systems/"+tmc+"/projects/p8", body, true)
	}
	r := put(map[string]any{"kind": "unassisted", "actor": "pc"})
	ca, _ := r.Body["creator_assignment"].(map[string]any)
	if r.Status != 200 || ca["subject"] != "user:pc" {
		t.Fatalf("pc registering p8: %d %s", r.Status, r.Raw)
	}
	if r := s.Do(http.MethodDelete, "/v1/assignments/"+ca["id"].(string), nil, true, "X-Permatrix-Actor", "root"); r.Status != 200 {
		t.Fatalf("root removing pc's project_admin on p8: %d %s", r.Status, r.Raw)
	}
	for _, c := range []struct {
		who  string
		body map[string]any
	}{
		{"pc, the same body", map[string]any{"kind": "unassisted", "actor": "pc"}},
		{"root (administrator), the same body", map[string]any{"created_by": "pc", "kind": "unassisted", "actor": "root"}},
		{"the operator, its kind changed", map[string]any{"created_by": "pc", "kind": "assisted"}},
		{"pc, its kind changed", map[string]any{"kind": "unassisted", "actor": "pc"}},
	} {
		r := put(c.body)
		if r.Status != 200 {
			t.Fatalf("%s registering p8 again: %d %s", c.who, r.Status, r.Raw)
		}
		if _, ok := r.Body["creator_assignment"]; ok {
			t.Errorf("%s registering p8 again: %s, want no creator_assignment", c.who, r.Raw)
		}
		list := s.Do(http.MethodGet, "/v1/assignments?subject=user:pc&scope_id=p8", nil, true)
		if got := items(list, "assignments"); len(got) != 0 {
			t.Fatalf("after %s registered p8 again, pc holds %s", c.who, list.Raw)
		}
	}
	// And pc, without project_admin on the Unassisted p8, cannot hand it on.
	before := export(s)
	r = assignAs(s, roleAt(tmc, "user:eve", "project_admin", project("p8")), "pc")
	wantRefused(t, s, "pc assigning project_admin on p8", r, http.StatusForbidden, "forbidden", "on an Unassisted Task Mining project only project_admin", before)
}

// On an Unassisted project only project_admin (or business_analyst, for
// business_analyst) assigns project roles — not an administrator. root, an
// administrator, made pc's Unassisted u1 Assisted, assigned itself
// project_admin there and made it Unassisted again. Leaving Unassisted
// changes who assigns roles: it needs project_admin on the project.
func TestUnassistedProjectKindNeedsItsProjectAdmin(t *testing.T) {
	s, _ := delegationFixture(t)
	put := func(body map[string]any) harness.Response {
		return s.Do(http.MethodPut, "/v1/systems/"+tmc+"/projects/u1", body, true)
	}
	if r := put(map[string]any{"kind": "unassisted", "actor": "pc"}); r.Status != 200 {
		t.Fatalf("pc registering u1: %d %s", r.Status, r.Raw)
	}
	before := export(s)
	r := assignAs(s, roleAt(tmc, "user:root", "project_admin", project("u1")), "root")
	wantRefused(t, s, "root assigning itself project_admin on u1", r, http.StatusForbidden, "forbidden", "on an Unassisted Task Mining project only project_admin", before)
	for _, kind := range []string{"assisted", ""} {
		r = put(map[string]any{"created_by": "pc", "kind": kind, "actor": "root"})
		wantRefused(t, s, "root making u1 "+kind, r, http.StatusForbidden, "forbidden", `"root" may not change the kind of Unassisted project "u1"`, before)
	}
	// Its project admin may, and root then assigns there as an administrator.
	if r := put(map[string]any{"kind": "assisted", "actor": "pc"}); r.Status != 200 {
		t.Fatalf("pc (project_admin on u1) making it assisted: %d %s", r.Status, r.Raw)
	}
	if r := assignAs(s, roleAt(tmc, "user:root", "project_admin", project("u1")), "root"); r.Status != 201 {
		t.Fatalf("root assigning on the assisted u1: %d %s", r.Status, r.Raw)
	}
}

// Item 3: Celonis (all three systems) and uipath-orchestrator had no write
// rules: an actor with no role gave itself Celonis admin.
func TestCelonisAndOrchestratorWriteRules(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:root", "system": tm, "role": "admin", "scope": service})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "role": "analyst", "scope": service})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": service})
	before := export(s)
	bucket := map[string]any{"type": "bucket", "id": "b1"}
	writes := []map[string]any{
		{"subject": "user:eve", "system": tm, "role": "admin", "scope": service},
		{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": project("p1")},
		{"subject": "user:ann", "system": "celonis-studio", "permission": "create_package", "scope": map[string]any{"type": "space", "id": "s1"}},
		{"subject": "user:ann", "system": "celonis-storage-manager", "permission": "get", "scope": bucket},
	}
	for _, actor := range []string{"eve", "ann"} {
		for _, a := range writes {
			wantRefused(t, s, actor+" writing "+fmt.Sprint(a), assignAs(s, a, actor), http.StatusForbidden, "forbidden",
				"Celonis roles and permissions are granted by a Celonis admin only", before)
		}
	}
	orch := map[string]any{"subject": "user:ann", "system": "uipath-orchestrator", "permission": "ml_packages_view", "scope": service}
	for _, actor := range []string{"root", "ann"} {
		wantRefused(t, s, actor+" writing in uipath-orchestrator", assignAs(s, orch, actor), http.StatusForbidden, "forbidden",
			`the document names no one who may grant these tenant permissions (uipath-task-mining-automation-suite.txt, "How to grant AICenter permissions in Orchestrator")`, before)
	}
	for _, a := range writes {
		if r := assignAs(s, a, "root"); r.Status != 201 {
			t.Errorf("Celonis admin root writing %v: %d %s", a, r.Status, r.Raw)
		}
	}
	if r := s.Do(http.MethodPost, "/v1/assignments", orch, true); r.Status != 201 {
		t.Fatalf("the operator writing in uipath-orchestrator: %d %s", r.Status, r.Raw)
	}
}

// Item 10: an actor holding security_users assigned itself a role with
// security_user_roles and system_settings. "A user with permission to
// access System Manager may set the roles and permissions of another user".
func TestBluePrismActorNeverGrantsItself(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	bpPutRole(t, s, "useradmin", "security_users")
	bpPutRole(t, s, "boss", "security_user_roles", "system_settings")
	s.Assign(roleAt(bp, "user:eve", "useradmin", service))
	s.Assign(roleAt(bp, "group:ops", "useradmin", service))
	s.Do(http.MethodPut, "/v1/groups/ops/members/eve", nil, true)
	before := export(s)
	for _, a := range []map[string]any{
		roleAt(bp, "user:eve", "boss", service),
		{"subject": "user:eve", "system": bp, "permission": "system_settings", "scope": service},
		roleAt(bp, "group:ops", "boss", service),
	} {
		wantRefused(t, s, "eve granting "+fmt.Sprint(a), assignAs(s, a, "eve"), http.StatusForbidden, "forbidden",
			"a user sets the roles and permissions of another user only", before)
	}
	wantRefused(t, s, "eve joining ops (which holds useradmin)", s.Do(http.MethodPut, "/v1/groups/ops/members/eve", nil, true, "X-Permatrix-Actor", "eve"),
		http.StatusForbidden, "forbidden", "another user only", before)
	if r := assignAs(s, roleAt(bp, "user:bob", "boss", service), "eve"); r.Status != 201 {
		t.Fatalf("eve assigning bob: %d %s", r.Status, r.Raw)
	}
}

// vendor-docs/README.md: a Celonis admin needs the bucket grants for
// screenshots like anyone else, and missing names them.
func TestCelonisAdminNeedsBucketGrantsForScreenshots(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:root", "system": tm, "role": "admin", "scope": service})
	bucket := map[string]any{"type": "bucket", "id": "b1"}
	r := s.Check(map[string]any{"subject": "root", "system": tm, "action": "view_screenshots", "resource": bucket})
	var missing []string
	for _, m := range items(r, "missing") {
		missing = append(missing, fmt.Sprint(m["system"], "/", m["permission"]))
	}
	if r.Body["allow"] != false || strings.Join(missing, ",") != "celonis-storage-manager/get,celonis-storage-manager/list,celonis-storage-manager/use_file_storage_manager" {
		t.Fatalf("admin without bucket grants: %s", r.Raw)
	}
	for _, p := range []string{"get", "list"} {
		s.Assign(map[string]any{"subject": "user:root", "system": "celonis-storage-manager", "permission": p, "scope": bucket})
	}
	s.Assign(map[string]any{"subject": "user:root", "system": "celonis-storage-manager", "permission": "use_file_storage_manager", "scope": service})
	if !s.Allowed(map[string]any{"subject": "root", "system": tm, "action": "view_screenshots", "resource": bucket}) {
		t.Fatal("admin with the bucket grants should view screenshots")
	}
}

// The store-wide reads are the operator's: a user token gets 403 there.
// With the admin token, a read naming an actor (X-Permatrix-Actor, with
// or without X-Permatrix-Actor-Groups) was served whole, the header
// ignored: a service asking "what may ba see" got the operator's answer —
// every assignment, the export, data.store through OPA's Data API. It is 403, as for that user's
// own token; without the header the operator reads as ever.
func TestOperatorReadsNameNoActor(t *testing.T) {
	s, rootID := delegationFixture(t)
	reads := []string{
		"/v1/assignments",
		"/v1/assignments/" + rootID,
		"/v1/groups/tm-admins/members",
		"/v1/systems/" + tmc + "/projects/p1",
		"/v1/export",
		"/v1/export?format=ndjson",
		"/v1/status",
		"/v1/data/store",
		"/v1/data/permatrix/allow?explain=full",
	}
	for _, path := range reads {
		for _, h := range []http.Header{
			{"X-Permatrix-Actor": {"ba"}},
			{"X-Permatrix-Actor": {"ba"}, "X-Permatrix-Actor-Groups": {"tm-admins"}},
		} {
			req, err := http.NewRequest(http.MethodGet, s.URL+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header = h.Clone()
			req.Header.Set("Authorization", "Bearer "+harness.Token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(raw), "an actor reads nothing store-wide") {
				t.Errorf("GET %s with %v: %d %.200s, want 403", path, h, resp.StatusCode, raw)
			}
		}
		if r := s.Do(http.MethodGet, path, nil, true); r.Status != http.StatusOK {
			t.Errorf("GET %s as the operator: %d %.200s", path, r.Status, r.Raw)
		}
	}
}
