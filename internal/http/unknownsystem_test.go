package http_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// TestUnknownSystemFilterOnALargeStore: on a store holding more
// assignments than one page of the listing reads (17 040 index entries
// for limit 1000), a misspelt ?system= was taken as a system a bundle
// dropped whose assignments may lie further on: 200, an empty page and a
// cursor to the next, page after empty page. Now the listing and the
// permissions refuse a system that neither the bundle has nor the store
// holds an assignment of with one 400, naming the bundle's systems;
// a dropped system whose one assignment lies past the first page is still
// listed, and one deleted from it is unknown again.
func TestUnknownSystemFilterOnALargeStore(t *testing.T) {
	const grants = 18000
	retired := permatrix.Assignment{Subject: "user:zed", System: "retired-system", Permission: "read", Scope: permatrix.ServiceScope}
	base := serveStored(t, func(tx *store.Tx) error {
		for i := range grants {
			a := permatrix.Assignment{Subject: fmt.Sprintf("user:u%05d", i), System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.ServiceScope}
			if err := tx.CreateAssignment(&a); err != nil {
				return err
			}
		}
		return tx.CreateAssignment(&retired) // its id is the last
	})
	type page struct {
		Assignments []permatrix.Assignment
		NextCursor  string `json:"next_cursor"`
		Error       struct{ Code, Message string }
	}
	get := func(path string) (int, page, string) {
		t.Helper()
		code, raw := request(t, http.MethodGet, base+path, docTestToken)
		var p page
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatalf("GET %s: %d %s: %v", path, code, raw, err)
		}
		return code, p, string(raw)
	}
	for _, path := range []string{
		"/v1/assignments?system=celonis-task-minig",
		"/v1/assignments?system=celonis-task-minig&limit=10",
		"/v1/assignments?system=retired-systen",
		"/v1/subjects/u00001/permissions?system=celonis-task-minig",
	} {
		code, p, raw := get(path)
		if code != http.StatusBadRequest || p.Error.Code != "invalid" || !strings.Contains(p.Error.Message, `unknown system "`) ||
			!strings.Contains(p.Error.Message, "celonis-task-mining") || !strings.Contains(p.Error.Message, "blueprism") {
			t.Errorf("GET %s: %d %.300s, want 400 invalid unknown system naming the bundle's systems", path, code, raw)
		}
	}

	// The dropped system's one assignment, past the first page: listed,
	// page by page from the first.
	cursor, found := "", []string{}
	for range 10 {
		code, p, raw := get("/v1/assignments?system=retired-system&limit=1000&cursor=" + cursor)
		if code != http.StatusOK {
			t.Fatalf("system=retired-system: %d %.300s", code, raw)
		}
		for _, a := range p.Assignments {
			found = append(found, a.ID)
		}
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if len(found) != 1 || found[0] != retired.ID {
		t.Errorf("system=retired-system lists %q, want [%s]", found, retired.ID)
	}
	if code, raw := request(t, http.MethodDelete, base+"/v1/assignments/"+retired.ID, docTestToken); code != http.StatusOK {
		t.Fatalf("DELETE %s: %d %s", retired.ID, code, raw)
	}
	if code, _, raw := get("/v1/assignments?system=retired-system"); code != http.StatusBadRequest || !strings.Contains(raw, `unknown system \"retired-system\"`) {
		t.Errorf("system=retired-system, its assignment deleted: %d %.300s, want 400 unknown system", code, raw)
	}
}

// TestUnknownSystemNamesTheSystems: a check of a system the bundle does
// not have, the Data API's decision of one, and every path naming one
// (the catalog's entry, the matrix, a custom role), a grant in one and an
// import's lines of one said only "unknown system" and left the caller to
// find the list: each names the systems now, in one wording
// (Catalog.UnknownSystem, lib.unknown_system_error).
func TestUnknownSystemNamesTheSystems(t *testing.T) {
	base := serveStored(t, func(*store.Tx) error { return nil })
	want := `unknown system "celonis-task-minig": the systems are blueprism, celonis-storage-manager, celonis-studio, celonis-task-mining, uipath-orchestrator, uipath-task-mining-cloud, uipath-task-mining-suite`
	check := `{"subject":"ann","system":"celonis-task-minig","action":"edit_users"}`
	grant := `{"subject":"user:ann","system":"celonis-task-minig","role":"viewer","scope":{"type":"service"}}`
	for _, c := range []struct {
		method, path, body string
		code               int
		line               string // an import's "line N: "
	}{
		{http.MethodPost, "/v1/check", check, http.StatusBadRequest, ""},
		{http.MethodPost, "/v1/data/permatrix/decision", `{"input":` + check + `}`, http.StatusOK, ""},
		{http.MethodGet, "/v1/systems/celonis-task-minig", "", http.StatusNotFound, ""},
		{http.MethodGet, "/v1/matrix/celonis-task-minig", "", http.StatusNotFound, ""},
		{http.MethodGet, "/v1/systems/celonis-task-minig/roles/viewer", "", http.StatusNotFound, ""},
		{http.MethodPut, "/v1/systems/celonis-task-minig/roles/viewer", `{"permissions":["read"]}`, http.StatusNotFound, ""},
		// The write rules' violation (data.permatrix.admin) and an
		// import's custom role line said only "unknown system".
		{http.MethodPost, "/v1/assignments", grant, http.StatusUnprocessableEntity, ""},
		{http.MethodPost, "/v1/import", grant + "\n", http.StatusUnprocessableEntity, "line 1: "},
		{http.MethodPost, "/v1/import", `{"custom_role":{"system":"celonis-task-minig","name":"r","permissions":["read"]}}` + "\n", http.StatusUnprocessableEntity, "line 1: "},
	} {
		var code int
		var raw []byte
		if c.body == "" {
			code, raw = request(t, c.method, base+c.path, docTestToken)
		} else {
			code, raw = requestBody(t, c.method, base+c.path, docTestToken, strings.NewReader(c.body))
		}
		var answer struct {
			Error  struct{ Message string }
			Result struct{ Errors []string }
		}
		if err := json.Unmarshal(raw, &answer); err != nil {
			t.Fatalf("%s %s: %d %s: %v", c.method, c.path, code, raw, err)
		}
		got := answer.Error.Message
		if c.code == http.StatusOK && len(answer.Result.Errors) == 1 {
			got = answer.Result.Errors[0]
		}
		// A custom role's path adds that none of it is stored (a system
		// a bundle dropped may hold some).
		if code != c.code || got != c.line+want && !strings.HasPrefix(got, want+"; no ") {
			t.Errorf("%s %s: %d %q, want %d %q", c.method, c.path, code, got, c.code, c.line+want)
		}
	}
}
