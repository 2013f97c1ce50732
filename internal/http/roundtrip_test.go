package http_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	permhttp "github.com/permatrix/permatrix/internal/http"
)

// An export imports back: GET /v1/export?format=ndjson writes every record
// of the store — custom roles, projects, assignments with their ids, group
// memberships — as lines POST /v1/import takes, so that a store exported
// and imported into an empty one exports again as the same document (its
// revision aside). Before, the import took assignments only: memberships,
// custom roles and projects were lost on the way.
func TestExportImportRoundTrip(t *testing.T) {
	from := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken}))
	write := func(method, path, body string) {
		t.Helper()
		status, raw := requestBody(t, method, from+path, docTestToken, strings.NewReader(body))
		if status != http.StatusOK && status != http.StatusCreated {
			t.Fatalf("%s %s: %d %s", method, path, status, raw)
		}
	}
	// Every kind of record: a custom role and its assignment, a project
	// whose creator got its role on it, a project that creator's role was
	// then taken from, assignments of users and groups at every scope,
	// and members.
	write(http.MethodPut, "/v1/systems/blueprism/roles/release_manager", `{"permissions":["design_global_dashboards","import_global_dashboard"]}`)
	write(http.MethodPost, "/v1/assignments", `{"subject":"group:releasers","system":"blueprism","role":"release_manager","scope":{"type":"process_group","id":"pg1"}}`)
	write(http.MethodPut, "/v1/systems/uipath-task-mining-cloud/projects/p1", `{"created_by":"carol","kind":"unassisted"}`)
	write(http.MethodPut, "/v1/systems/uipath-task-mining-cloud/projects/p2", `{"created_by":"dave","kind":"assisted"}`)
	status, raw := request(t, http.MethodGet, from+"/v1/assignments?subject=user:dave", docTestToken)
	var daves struct{ Assignments []struct{ ID string } }
	if status != http.StatusOK || json.Unmarshal(raw, &daves) != nil || len(daves.Assignments) != 1 {
		t.Fatalf("dave's creator role: %d %s", status, raw)
	}
	write(http.MethodDelete, "/v1/assignments/"+daves.Assignments[0].ID, "")
	write(http.MethodPost, "/v1/assignments", `{"subject":"user:alice","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"project","id":"p1"}}`)
	write(http.MethodPost, "/v1/assignments", `{"subject":"user:bob","system":"celonis-task-mining","role":"analyst","scope":{"type":"service"}}`)
	write(http.MethodPut, "/v1/groups/releasers/members/erin", "")
	write(http.MethodPut, "/v1/groups/releasers/members/frank", "")
	write(http.MethodPut, "/v1/groups/ops/members/erin", "")

	exported := exportDoc(t, from)
	res, lines := exchange(t, http.MethodGet, from+"/v1/export?format=ndjson", docTestToken)
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("GET /v1/export?format=ndjson: %d %s %s", res.StatusCode, res.Header.Get("Content-Type"), lines)
	}
	// its header, custom role, 2 projects, 4 assignments, 3 members, its end
	if n := bytes.Count(lines, []byte("\n")); n != 12 {
		t.Fatalf("the NDJSON export has %d lines, want 12:\n%s", n, lines)
	}

	// Into an empty store, in chunks smaller than the export: each chunk
	// is judged by the write rules against the chunks before it.
	to := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken}))
	status, raw = requestBody(t, http.MethodPost, to+"/v1/import?chunk=3", docTestToken, bytes.NewReader(lines))
	var got struct {
		Lines         int `json:"lines"`
		Imported      int `json:"imported"`
		AlreadyStored int `json:"already_stored"`
	}
	if status != http.StatusOK || json.Unmarshal(raw, &got) != nil || got.Lines != 10 || got.Imported != 10 {
		t.Fatalf("POST /v1/import of the export: %d %s", status, raw)
	}
	if again := exportDoc(t, to); !reflect.DeepEqual(again, exported) {
		a, _ := json.Marshal(exported)
		b, _ := json.Marshal(again)
		t.Fatalf("the import exports as\n%s\nnot as the store it came from\n%s", b, a)
	}
	// Imported again, every line is stored already.
	status, raw = requestBody(t, http.MethodPost, to+"/v1/import", docTestToken, bytes.NewReader(lines))
	if status != http.StatusOK || json.Unmarshal(raw, &got) != nil || got.Imported != 0 || got.AlreadyStored != 10 {
		t.Fatalf("the export imported again: %d %s", status, raw)
	}
}

// exportDoc is GET /v1/export's store, its revision left out.
func exportDoc(t *testing.T, base string) map[string]any {
	t.Helper()
	status, raw := request(t, http.MethodGet, base+"/v1/export", docTestToken)
	var doc struct{ Store map[string]any }
	if status != http.StatusOK || json.Unmarshal(raw, &doc) != nil || doc.Store == nil {
		t.Fatalf("GET /v1/export: %d %s", status, raw)
	}
	delete(doc.Store, "revision")
	return doc.Store
}

// The lines of other records are refused as assignment lines are: by
// their line, with the write rules' reason, all or nothing or after the
// chunks before.
func TestImportRecordLinesRefused(t *testing.T) {
	base := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken}))
	member := `{"membership":{"group":"ops","user":"erin"}}` + "\n"
	for _, c := range []struct {
		line   string
		status int
		msg    string
	}{
		{`{"custom_role":{"system":"celonis-task-mining","name":"x","permissions":["edit_users"]}}`, 422, `line 2: system "celonis-task-mining" has no custom roles`},
		{`{"custom_role":{"system":"blueprism","name":"x","permissions":["fly"]}}`, 422, `line 2: unknown permission "fly"`},
		{`{"project":{"system":"blueprism","id":"p1"}}`, 422, `line 2: system "blueprism" has no projects`},
		{`{"project":{"system":"uipath-task-mining-cloud","id":"p1","kind":"both"}}`, 400, `line 2: kind must be`},
		{`{"membership":{"group":"ops","user":"erin"},"subject":"user:erin"}`, 400, "line 2: a line is one record"},
		{`{"membership":{"group":"ops","user":"erin"},"project":{"system":"uipath-task-mining-cloud","id":"p1"}}`, 400, "line 2: a line is one record"},
		{`{"membership":{"group":"ops"}}`, 400, "line 2: group and user ids"},
		// A record key given null was an assignment line ("subject is
		// required"), and {"export":null} first made an export plain lines.
		{`{"membership":null}`, 400, "line 2: membership: expected an object, got null"},
		{`{"custom_role":null,"subject":"user:erin","system":"celonis-task-mining","role":"analyst","scope":{"type":"service"}}`, 400, "line 2: custom_role: expected an object, got null"},
		{`{"project":null}`, 400, "line 2: project: expected an object, got null"},
		{`{"end":null}`, 400, "line 2: end: expected an object, got null"},
		{`{"export":null}`, 400, "line 2: export: expected an object, got null"},
		{`{"membership":{"group":"ops","user":"erin","admin":true}}`, 400, `line 2: unknown key "admin"`},
		{`{"project":{"system":"uipath-task-mining-cloud","id":"p1","created_by":"carol"}}` + "\n" +
			`{"project":{"system":"uipath-task-mining-cloud","id":"p1","created_by":"dave"}}`, 409, `line 3: project "p1" is registered as created by "carol"`},
	} {
		status, raw := requestBody(t, http.MethodPost, base+"/v1/import", docTestToken, strings.NewReader(member+c.line+"\n"))
		var body struct{ Error struct{ Message string } }
		if status != c.status || json.Unmarshal(raw, &body) != nil || !strings.Contains(body.Error.Message, c.msg) {
			t.Errorf("%s: %d %s, want %d with %q", c.line, status, raw, c.status, c.msg)
		}
	}
	// All or nothing: line 1's member was not stored.
	status, raw := request(t, http.MethodGet, base+"/v1/groups/ops/members", docTestToken)
	if status != http.StatusOK || !strings.Contains(string(raw), `"members":[]`) {
		t.Fatalf("a refused import stored its first line: %d %s", status, raw)
	}
	// In chunks, the chunk before the refused line stays.
	res, raw := exchangeBody(t, http.MethodPost, base+"/v1/import?chunk=1", docTestToken,
		strings.NewReader(member+`{"project":{"system":"blueprism","id":"p1"}}`+"\n"))
	if res.StatusCode != 422 || res.Header.Get("X-Permatrix-Import-Last-Line") != "1" ||
		!strings.Contains(string(raw), "lines 1 to 1 are imported: 1 record in 1 commit") && !strings.Contains(string(raw), "line 1 is imported: 1 record in 1 commit") {
		t.Fatalf("chunked: %d %v %s", res.StatusCode, res.Header, raw)
	}
	status, raw = request(t, http.MethodGet, base+"/v1/groups/ops/members", docTestToken)
	if status != http.StatusOK || !strings.Contains(string(raw), `"members":["erin"]`) {
		t.Fatalf("the chunk before the refused line: %d %s", status, raw)
	}
}

// An export cut short on a line boundary (a connection cut, a full disk
// under a redirected stdout, a copy truncated) imported as a smaller
// store, 200, with nothing to say records were missing. An export begins
// with its header and ends with its count of records: cut after any line,
// it is refused saying so and changes nothing; a count that does not
// match, an end line not last or without the header is refused too; an
// import without the header (assignment lines) is taken as before.
func TestExportCutShortRefused(t *testing.T) {
	from := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken}))
	for _, body := range []string{
		`{"subject":"user:alice","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"service"}}`,
		`{"subject":"user:bob","system":"celonis-task-mining","role":"analyst","scope":{"type":"service"}}`,
		`{"subject":"group:ops","system":"celonis-task-mining","role":"analyst","scope":{"type":"service"}}`,
	} {
		if status, raw := requestBody(t, http.MethodPost, from+"/v1/assignments", docTestToken, strings.NewReader(body)); status != http.StatusCreated {
			t.Fatalf("POST /v1/assignments: %d %s", status, raw)
		}
	}
	if status, raw := requestBody(t, http.MethodPut, from+"/v1/groups/ops/members/erin", docTestToken, nil); status != http.StatusOK {
		t.Fatalf("PUT member: %d %s", status, raw)
	}
	status, export := request(t, http.MethodGet, from+"/v1/export?format=ndjson", docTestToken)
	if status != http.StatusOK {
		t.Fatalf("GET /v1/export?format=ndjson: %d %s", status, export)
	}
	lines := strings.SplitAfter(string(export), "\n")
	lines = lines[:len(lines)-1] // after the last newline: nothing
	if len(lines) != 6 || !strings.HasPrefix(lines[0], `{"export":{`) || !strings.HasPrefix(lines[5], `{"end":{"records":4,`) {
		t.Fatalf("the export is not its header, 4 records and its end:\n%s", export)
	}

	to := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken}))
	empty := exportDoc(t, to)
	refused := func(what, body, msg string) {
		t.Helper()
		status, raw := requestBody(t, http.MethodPost, to+"/v1/import", docTestToken, strings.NewReader(body))
		var e struct{ Error struct{ Message string } }
		if status != http.StatusBadRequest || json.Unmarshal(raw, &e) != nil || !strings.Contains(e.Error.Message, msg) {
			t.Fatalf("%s: %d %s, want 400 with %q", what, status, raw, msg)
		}
		if got := exportDoc(t, to); !reflect.DeepEqual(got, empty) {
			t.Fatalf("%s: a refused import changed the store: %v", what, got)
		}
	}
	// Cut after any line but the last.
	for n := 1; n < len(lines); n++ {
		refused(fmt.Sprintf("cut after line %d", n), strings.Join(lines[:n], ""), "the export is cut short")
	}
	record := lines[2]
	refused("a record line missing", strings.Join(append(lines[:2:2], lines[3:]...), ""), "the export's end (line 5) counts 4 records, and 3 came before it")
	refused("a record line added", strings.Join(append(lines[:2:2], append([]string{record, record}, lines[3:]...)...), ""), "counts 4 records, and 5 came before it")
	refused("two records, the end counting 1", lines[0]+record+record+strings.Replace(lines[5], `"records":4`, `"records":1`, 1), "line 4: the export's end (line 4) counts 1 record, and 2 came before it")
	refused("a line after the end", string(export)+record, "line 7: the export ended at line 6")
	refused("two exports joined", string(export)+string(export), "line 7: the export ended at line 6")
	refused("an end without its header", strings.Join(lines[1:], ""), "line 5: an end line")
	refused("a header not first", record+string(export), "line 2: an export's header")
	refused("a header with an assignment", `{"export":{"version":1,"revision":1},"subject":"user:x"}`+"\n", "line 1: a line is one record")
	refused("a later version", `{"export":{"version":2,"revision":1}}`+"\n", "line 1: export version 2")

	// In chunks, the chunks before the end are committed: the answer says
	// how far it got, and the whole export imported again completes the
	// store (the records stored count as already_stored).
	res, raw := exchangeBody(t, http.MethodPost, to+"/v1/import?chunk=1", docTestToken, strings.NewReader(strings.Join(lines[:3], "")))
	if res.StatusCode != http.StatusBadRequest || res.Header.Get("X-Permatrix-Import-Last-Line") != "3" ||
		!strings.Contains(string(raw), "the export is cut short") || !strings.Contains(string(raw), "lines 1 to 3 are imported: 2 assignments in 2 commits") {
		t.Fatalf("a cut export in chunks: %d %v %s", res.StatusCode, res.Header, raw)
	}
	status, raw = requestBody(t, http.MethodPost, to+"/v1/import?chunk=1", docTestToken, bytes.NewReader(export))
	var got struct {
		Lines         int `json:"lines"`
		Imported      int `json:"imported"`
		AlreadyStored int `json:"already_stored"`
	}
	if status != http.StatusOK || json.Unmarshal(raw, &got) != nil || got.Lines != 4 || got.Imported != 2 || got.AlreadyStored != 2 {
		t.Fatalf("POST /v1/import of the whole export: %d %s", status, raw)
	}
	if a, b := exportDoc(t, from), exportDoc(t, to); !reflect.DeepEqual(a, b) {
		t.Fatalf("the import exports as\n%v\nnot as the store it came from\n%v", b, a)
	}
	// An import without the header is assignment lines, as ever.
	plain := `{"subject":"user:carol","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"service"}}` + "\n"
	if status, raw := requestBody(t, http.MethodPost, to+"/v1/import", docTestToken, strings.NewReader(plain)); status != http.StatusOK {
		t.Fatalf("a plain import: %d %s", status, raw)
	}
}

// An empty store's export — its header and an end counting 0 records — is
// a whole export and imports back as an empty store: it was 400 "no
// assignments in the import", and a backup script exporting and importing
// every store failed on the empty one. A header alone is cut short still,
// and an empty body is no import.
func TestEmptyExportImportsBack(t *testing.T) {
	from := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken}))
	status, export := request(t, http.MethodGet, from+"/v1/export?format=ndjson", docTestToken)
	if status != http.StatusOK || bytes.Count(export, []byte("\n")) != 2 {
		t.Fatalf("an empty store's export: %d %s", status, export)
	}
	to := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken}))
	// Into a store at revision 1, the answer's revision is the store's (it
	// said 0, and `permatrix import` "store … at revision 0").
	if status, raw := requestBody(t, http.MethodPut, to+"/v1/groups/ops/members/erin", docTestToken, nil); status != http.StatusOK {
		t.Fatalf("PUT member: %d %s", status, raw)
	}
	for _, path := range []string{"/v1/import", "/v1/import?chunk=1"} {
		status, raw := requestBody(t, http.MethodPost, to+path, docTestToken, bytes.NewReader(export))
		var got struct{ Lines, Imported, Revision int }
		if status != http.StatusOK || json.Unmarshal(raw, &got) != nil || got.Lines != 0 || got.Imported != 0 || got.Revision != 1 {
			t.Fatalf("POST %s of an empty store's export: %d %s", path, status, raw)
		}
	}
	header := string(export[:bytes.IndexByte(export, '\n')+1])
	for body, msg := range map[string]string{header: "the export is cut short", "": "no assignments in the import", "\n\n": "no assignments in the import"} {
		status, raw := requestBody(t, http.MethodPost, to+"/v1/import", docTestToken, strings.NewReader(body))
		if status != http.StatusBadRequest || !strings.Contains(string(raw), msg) {
			t.Fatalf("%q: %d %s, want 400 with %q", body, status, raw, msg)
		}
	}
}
