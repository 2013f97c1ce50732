package security_test

// Delegation nobody can bypass: each attempt of issue 9 (items 3 and 10,
// and item 11's PUT of a project with body null) replayed against
// `permatrix serve` started from the binary, with the admin token held by
// the calling service and the attacker choosing the body and the headers.
// For each: the status, and GET /v1/export byte-identical before and after.

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/permatrix/permatrix/test/harness"
)

const delegationToken = "security-delegation-token"

// delegationClient talks to one `permatrix serve` with the admin token.
type delegationClient struct {
	t   *testing.T
	url string
}

// do sends body as is, with the admin token and headers (name, value pairs;
// a name may repeat), and returns the status and the raw answer.
func (c delegationClient) do(method, path, body string, headers ...string) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.url+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+delegationToken)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, raw
}

// write makes a setup write as the operator and returns the new
// assignment's id, if any; anything but 200/201 fails the test.
func (c delegationClient) write(method, path, body string) string {
	c.t.Helper()
	status, raw := c.do(method, path, body)
	if status != http.StatusOK && status != http.StatusCreated {
		c.t.Fatalf("setup %s %s %s: %d %s", method, path, body, status, raw)
	}
	var out struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(raw, &out)
	return out.ID
}

func (c delegationClient) export() []byte {
	c.t.Helper()
	status, raw := c.do(http.MethodGet, "/v1/export", "")
	if status != http.StatusOK {
		c.t.Fatalf("export: %d %s", status, raw)
	}
	return raw
}

const tmc = "uipath-task-mining-cloud"

func TestDelegationBypassesThroughTheBinary(t *testing.T) {
	p, err := harness.StartProcess(t, bin, delegationToken, nil,
		"--addr", "127.0.0.1:0", "--admin-token", delegationToken, "--db", filepath.Join(t.TempDir(), "permatrix.db"))
	if err != nil {
		t.Fatalf("%v\n%s", err, p.Logs())
	}
	defer p.Stop(t)
	c := delegationClient{t: t, url: p.URL}

	// The store the attacks run against (uipath-task-mining-cloud, Celonis,
	// Blue Prism), written by the operator.
	role := func(subject, sys, role, scope string) string {
		return `{"subject":"` + subject + `","system":"` + sys + `","role":"` + role + `","scope":` + scope + `}`
	}
	const service = `{"type":"service"}`
	project := func(id string) string { return `{"type":"project","id":"` + id + `"}` }
	rootID := c.write("POST", "/v1/assignments", role("user:root", tmc, "administrator", service))
	c.write("POST", "/v1/assignments", role("group:tm-admins", tmc, "administrator", service))
	c.write("PUT", "/v1/systems/"+tmc+"/projects/p1", `{"created_by":"pa","kind":"assisted"}`)
	c.write("POST", "/v1/assignments", role("user:ba", tmc, "business_analyst", project("p1")))
	c.write("POST", "/v1/assignments", role("user:ru", tmc, "recording_user", project("p1")))
	c.write("POST", "/v1/assignments", role("user:pc", tmc, "project_creator", service))
	c.write("POST", "/v1/assignments", role("user:alice", tmc, "project_creator", service))
	c.write("PUT", "/v1/systems/"+tmc+"/projects/p2", `{"created_by":"alice","kind":"assisted"}`)
	aliceX7 := c.write("POST", "/v1/assignments", role("user:alice", tmc, "project_admin", project("x7")))
	c.write("PUT", "/v1/systems/blueprism/roles/useradmin", `{"permissions":["security_users"]}`)
	c.write("PUT", "/v1/systems/blueprism/roles/boss", `{"permissions":["security_user_roles","system_settings"]}`)
	c.write("POST", "/v1/assignments", role("user:eve", "blueprism", "useradmin", service))

	administrator := `"subject":"user:ba","system":"` + tmc + `","role":"administrator","scope":{"type":"service"}`
	for _, a := range []struct {
		what, method, path, body string
		headers                  []string
		status                   int
	}{
		{"case variant after the actor", "POST", "/v1/assignments", `{"actor":"ba","Actor":"",` + administrator + `}`, nil, 400},
		{"duplicate actor, the last empty", "POST", "/v1/assignments", `{"actor":"ba","actor":"",` + administrator + `}`, nil, 400},
		{"upper-case ACTOR alone", "POST", "/v1/assignments", `{"ACTOR":"ba",` + administrator + `}`, nil, 400},
		{"case variant inside scope", "POST", "/v1/assignments", `{"actor":"ba","subject":"user:ba","system":"` + tmc + `","role":"administrator","scope":{"type":"service","Type":"x"}}`, nil, 400},
		{"actor header twice", "POST", "/v1/assignments", `{` + administrator + `}`, []string{"X-Permatrix-Actor", "root", "X-Permatrix-Actor", "ba"}, 400},
		{"empty actor", "POST", "/v1/assignments", `{"actor":"",` + administrator + `}`, nil, 400},
		{"DELETE of an administrator with ACTOR emptied", "DELETE", "/v1/assignments/" + rootID, `{"actor":"ru","ACTOR":""}`, nil, 400},
		{"DELETE of an administrator by ru", "DELETE", "/v1/assignments/" + rootID, `{"actor":"ru"}`, nil, 403},
		{"import with the header actor ba", "POST", "/v1/import", `{` + administrator + `}`, []string{"X-Permatrix-Actor", "ba"}, 403},
		{"import with a line actor ba", "POST", "/v1/import", `{"subject":"user:u1","system":"` + tmc + `","role":"recording_user","scope":{"type":"project","id":"p1"}}` + "\n" + `{"actor":"ba",` + administrator + `}`, nil, 403},
		{"import line actor differing from the header", "POST", "/v1/import", `{"actor":"root",` + administrator + `}`, []string{"X-Permatrix-Actor", "ba"}, 400},
		{"ba joining tm-admins", "PUT", "/v1/groups/tm-admins/members/ba", ``, []string{"X-Permatrix-Actor", "ba"}, 403},
		{"ba joining tm-admins (body actor)", "PUT", "/v1/groups/tm-admins/members/ba", `{"actor":"ba"}`, nil, 403},
		{"ba joining administrators", "PUT", "/v1/groups/administrators/members/ba", `{"actor":"ba"}`, nil, 403},
		{"pc flipping alice's project to unassisted", "PUT", "/v1/systems/" + tmc + "/projects/p2", `{"kind":"unassisted","actor":"pc"}`, nil, 403},
		{"pc registering x7, which alice administers", "PUT", "/v1/systems/" + tmc + "/projects/x7", `{"kind":"assisted","actor":"pc"}`, nil, 403},
		{"pc removing alice from x7", "DELETE", "/v1/assignments/" + aliceX7, ``, []string{"X-Permatrix-Actor", "pc"}, 403},
		{"pc registering a project naming alice its creator", "PUT", "/v1/systems/" + tmc + "/projects/p9", `{"created_by":"alice","kind":"assisted","actor":"pc"}`, nil, 403},
		{"a project with body null", "PUT", "/v1/systems/" + tmc + "/projects/pnull", `null`, nil, 400},
		{"eve (no role) giving itself Celonis admin", "POST", "/v1/assignments", `{"actor":"eve",` + role("user:eve", "celonis-task-mining", "admin", service)[1:], nil, 403},
		{"eve granting a storage bucket", "POST", "/v1/assignments", `{"actor":"eve","subject":"user:eve","system":"celonis-storage-manager","permission":"get","scope":{"type":"bucket","id":"b1"}}`, nil, 403},
		{"an actor writing in uipath-orchestrator", "POST", "/v1/assignments", `{"actor":"root","subject":"user:root","system":"uipath-orchestrator","permission":"ml_packages_edit","scope":{"type":"service"}}`, nil, 403},
		{"Blue Prism: eve (security_users) giving itself boss", "POST", "/v1/assignments", `{"actor":"eve",` + role("user:eve", "blueprism", "boss", service)[1:], nil, 403},
		{"Blue Prism: eve giving itself system_settings", "POST", "/v1/assignments", `{"subject":"user:eve","system":"blueprism","permission":"system_settings","scope":{"type":"service"}}`, []string{"X-Permatrix-Actor", "eve"}, 403},
	} {
		before := c.export()
		status, raw := c.do(a.method, a.path, a.body, a.headers...)
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal(raw, &e); err != nil || e.Error.Message == "" {
			t.Errorf("%s: answer is not the error envelope: %d %s", a.what, status, raw)
		}
		if status != a.status {
			t.Errorf("%s: %d %s, want %d", a.what, status, raw, a.status)
		}
		if after := c.export(); string(after) != string(before) {
			t.Errorf("%s: the store changed:\n%s\n%s", a.what, before, after)
		}
	}
}
