package http_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/bolt"
	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
	"github.com/permatrix/permatrix/internal/store"
)

// TestListRetiredSystem: a bundle that drops a system leaves its stored
// assignments; GET /v1/assignments?system= lists them, so that they can be
// found and deleted (DELETE, by the operator). A system neither the bundle nor the store knows is
// still 400 (a typo of a known one lists nothing, and would say nothing is
// there).
func TestListRetiredSystem(t *testing.T) {
	// Stored as a former bundle took them: this bundle has no "retired-system".
	retired := []permatrix.Assignment{
		{Subject: "user:ann", System: "retired-system", Role: "viewer", Scope: permatrix.ServiceScope},
		{Subject: "user:bob", System: "retired-system", Permission: "read", Scope: permatrix.Scope{Type: "project", ID: "p1"}},
		{Subject: "user:ann", System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope},
	}
	base := serveStored(t, func(tx *store.Tx) error {
		for i := range retired {
			if err := tx.CreateAssignment(&retired[i]); err != nil {
				return err
			}
		}
		return nil
	})

	list := func(query string) (int, []permatrix.Assignment, string) {
		t.Helper()
		code, raw := request(t, http.MethodGet, base+"/v1/assignments?"+query, docTestToken)
		var page struct{ Assignments []permatrix.Assignment }
		if code == http.StatusOK {
			if err := json.Unmarshal(raw, &page); err != nil {
				t.Fatalf("%s: %v", raw, err)
			}
		}
		return code, page.Assignments, string(raw)
	}
	ids := func(as []permatrix.Assignment) []string {
		var out []string
		for _, a := range as {
			out = append(out, a.Subject+" "+a.System)
		}
		return out
	}
	if code, got, raw := list("system=retired-system"); code != http.StatusOK || len(got) != 2 || got[0].ID != retired[0].ID || got[1].ID != retired[1].ID {
		t.Errorf("system=retired-system: %d %q %s", code, ids(got), raw)
	}
	if code, got, raw := list("system=retired-system&subject=user:bob"); code != http.StatusOK || len(got) != 1 || got[0].ID != retired[1].ID {
		t.Errorf("system=retired-system&subject=user:bob: %d %q %s", code, ids(got), raw)
	}
	// Its scope types are the bundle's no more: any well-formed one is taken.
	if code, got, raw := list("system=retired-system&scope_type=project&scope_id=p1"); code != http.StatusOK || len(got) != 1 || got[0].ID != retired[1].ID {
		t.Errorf("system=retired-system&scope_type=project&scope_id=p1: %d %q %s", code, ids(got), raw)
	}
	// What it held can be found, page by page.
	code, got, raw := list("system=retired-system&limit=1")
	var first struct {
		NextCursor string `json:"next_cursor"`
	}
	_ = json.Unmarshal([]byte(raw), &first)
	if code != http.StatusOK || len(got) != 1 || first.NextCursor == "" {
		t.Fatalf("system=retired-system&limit=1: %d %s", code, raw)
	}
	if code, got, raw := list("system=retired-system&limit=1&cursor=" + first.NextCursor); code != http.StatusOK || len(got) != 1 || got[0].ID != retired[1].ID {
		t.Errorf("second page: %d %q %s", code, ids(got), raw)
	}
	// And removed by the operator, until none is left: then the system is
	// one the store does not hold either.
	for _, a := range retired[:2] {
		if code, raw := request(t, http.MethodDelete, base+"/v1/assignments/"+a.ID, docTestToken); code != http.StatusOK {
			t.Fatalf("DELETE %s: %d %s", a.ID, code, raw)
		}
	}
	if code, _, raw := list("system=retired-system"); code != http.StatusBadRequest || !strings.Contains(raw, "unknown system") {
		t.Errorf("system=retired-system, its assignments deleted: %d %s, want 400 unknown system", code, raw)
	}
	// A system neither the bundle has nor the store holds: a typo.
	for _, q := range []string{"system=celonis-task-minig", "system=celonis-task-minig&subject=user:ann", "system=retired-systen"} {
		if code, _, raw := list(q); code != http.StatusBadRequest || !strings.Contains(raw, "unknown system") {
			t.Errorf("%s: %d %s, want 400 unknown system", q, code, raw)
		}
	}
	// A known system still checks its scope types.
	if code, _, raw := list("system=celonis-task-mining&scope_type=process_group"); code != http.StatusBadRequest {
		t.Errorf("a known system's unknown scope type: %d %s", code, raw)
	}
	if code, got, raw := list("system=celonis-task-mining"); code != http.StatusOK || len(got) != 1 || got[0].ID != retired[2].ID {
		t.Errorf("system=celonis-task-mining: %d %q %s", code, ids(got), raw)
	}
}

// serveStored serves the default bundle over a real bbolt file that holds
// what stored writes, as an earlier bundle could have stored it.
func serveStored(t *testing.T, stored func(tx *store.Tx) error) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "permatrix.db")
	db, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := store.Update(context.Background(), db, stored); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := pdp.New(db, opa.NewEngine(db), log, nil)
	b, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Activate(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	return serveOn(t, permhttp.NewServer(svc, permhttp.Config{AdminToken: docTestToken, Logger: log}))
}

// TestRetiredSystemRolesAndProjects: a bundle that drops a system leaves
// its custom roles and projects stored, as it leaves its assignments. The
// operator reads them (one by one, and all of a kind through the Data
// API's data.store) and deletes a role as in a system the bundle has: 409
// while an assignment uses it, then 200; an actor may not (no rule says
// who may). Nothing is created there, and a system neither the bundle has
// nor the store holds anything of is still 404 (a typo).
func TestRetiredSystemRolesAndProjects(t *testing.T) {
	uses := permatrix.Assignment{Subject: "user:ann", System: "retired-system", Role: "auditor", Scope: permatrix.ServiceScope}
	base := serveStored(t, func(tx *store.Tx) error {
		for _, r := range []permatrix.Role{
			{System: "retired-system", Name: "auditor", Permissions: []string{"read"}},
			{System: "retired-system", Name: "unused", Permissions: []string{"read", "write"}},
		} {
			if err := tx.PutRole(r); err != nil {
				return err
			}
		}
		if err := tx.PutProject(permatrix.Project{System: "retired-system", ID: "p1", CreatedBy: "ann", Kind: "assisted"}); err != nil {
			return err
		}
		return tx.CreateAssignment(&uses)
	})
	send := func(method, path, actor, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+docTestToken)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if actor != "" {
			req.Header.Set("X-Permatrix-Actor", actor)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(raw)
	}
	expect := func(method, path, actor, body string, want int, says string) {
		t.Helper()
		code, raw := send(method, path, actor, body)
		var e struct{ Error struct{ Message string } } // an error answer's message, unquoted
		_ = json.Unmarshal([]byte(raw), &e)
		if code != want || !strings.Contains(raw, says) && !strings.Contains(e.Error.Message, says) {
			t.Errorf("%s %s (actor %q): %d %s, want %d with %q", method, path, actor, code, raw, want, says)
		}
	}

	// Read one by one, and listed whole in data.store.
	expect("GET", "/v1/systems/retired-system/roles/auditor", "", "", http.StatusOK, `"permissions":["read"]`)
	expect("GET", "/v1/systems/retired-system/projects/p1", "", "", http.StatusOK, `"created_by":"ann"`)
	expect("GET", "/v1/data/store/roles/retired-system", "", "", http.StatusOK, `"unused":{"permissions":["read","write"]}`)
	expect("GET", "/v1/data/store/projects/retired-system", "", "", http.StatusOK, `"p1":{`)

	// Deleted as in a system the bundle has: not while assigned, not by an
	// actor, not twice.
	expect("DELETE", "/v1/systems/retired-system/roles/auditor", "", "", http.StatusConflict, "remove those assignments first")
	expect("DELETE", "/v1/systems/retired-system/roles/unused", "ada", "", http.StatusForbidden, "only the operator")
	expect("DELETE", "/v1/systems/retired-system/roles/unused", "", "", http.StatusOK, `"revision"`)
	expect("GET", "/v1/systems/retired-system/roles/unused", "", "", http.StatusNotFound, `unknown system "retired-system": the systems are blueprism, `)
	expect("GET", "/v1/systems/retired-system/roles/unused", "", "", http.StatusNotFound, `, uipath-task-mining-suite; no role "unused" of it is stored`)
	expect("DELETE", "/v1/systems/retired-system/roles/unused", "", "", http.StatusNotFound, `no role "unused" of it is stored`)
	expect("DELETE", "/v1/assignments/"+uses.ID, "", "", http.StatusOK, `"revision"`)
	expect("DELETE", "/v1/systems/retired-system/roles/auditor", "", "", http.StatusOK, `"revision"`)

	// Never created there.
	expect("PUT", "/v1/systems/retired-system/roles/auditor", "", `{"permissions":["read"]}`, http.StatusNotFound, `unknown system "retired-system"`)
	expect("PUT", "/v1/systems/retired-system/projects/p2", "", `{"created_by":"ann"}`, http.StatusNotFound, `unknown system "retired-system"`)
	expect("GET", "/v1/systems/retired-system/roles/auditor", "", "", http.StatusNotFound, `unknown system "retired-system"`)

	// A system of neither: a typo, whatever the name after it.
	for _, path := range []string{"/v1/systems/blueprsim/roles/auditor", "/v1/systems/retired-systen/roles/auditor", "/v1/systems/retired-systen/projects/p1"} {
		expect("GET", path, "", "", http.StatusNotFound, "unknown system")
		if strings.Contains(path, "/roles/") {
			expect("DELETE", path, "", "", http.StatusNotFound, "unknown system")
		}
	}
}

// TestListingBySystemReadsABudget: a listing by system walks the assignment
// index by id; a system with one assignment among thousands (or none) read
// the whole index on every page. A page stops after a budget, short or
// empty, with the cursor of where it stopped; the pages find what there
// is. A system the bundle does not have is still known while an
// assignment of it is stored, wherever its id is (a role's, or one below
// the service scope, found in an index; another found among the ids a page
// of 1000 reads, or listed as any system is, if there is more to read),
// and a typo is still 400 where a page of 1000 reads every id.
func TestListingBySystemReadsABudget(t *testing.T) {
	for _, n := range []int{10000, 20000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) { listingBySystemReadsABudget(t, n) })
	}
}

func listingBySystemReadsABudget(t *testing.T, n int) {
	var last, retiredRole, retiredDeep permatrix.Assignment
	base := serveStored(t, func(tx *store.Tx) error {
		for i := range n {
			a := permatrix.Assignment{Subject: fmt.Sprintf("user:u%d", i), System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.ServiceScope}
			if err := tx.CreateAssignment(&a); err != nil {
				return err
			}
		}
		last = permatrix.Assignment{Subject: "user:ann", System: "blueprism", Role: "system_administrator", Scope: permatrix.ServiceScope}
		retiredRole = permatrix.Assignment{Subject: "user:ann", System: "retired-a", Role: "viewer", Scope: permatrix.ServiceScope}
		retiredDeep = permatrix.Assignment{Subject: "user:ann", System: "retired-b", Permission: "read", Scope: permatrix.ServiceScope}
		for _, a := range []*permatrix.Assignment{&last, &retiredRole, &retiredDeep} {
			if err := tx.CreateAssignment(a); err != nil {
				return err
			}
		}
		return nil
	})
	type page struct {
		Assignments []permatrix.Assignment
		NextCursor  string `json:"next_cursor"`
	}
	get := func(query string) (int, page, string) {
		t.Helper()
		code, raw := request(t, http.MethodGet, base+"/v1/assignments?"+query, docTestToken)
		var p page
		if code == http.StatusOK {
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatalf("%s: %v", raw, err)
			}
		}
		return code, p, string(raw)
	}
	all := func(query string) (ids []string, pages int) {
		t.Helper()
		for cursor := ""; pages <= n; pages++ {
			code, p, raw := get(query + "&cursor=" + cursor)
			if code != http.StatusOK || len(p.Assignments) > 1 {
				t.Fatalf("%s page %d: %d %s", query, pages, code, raw)
			}
			for _, a := range p.Assignments {
				ids = append(ids, a.ID)
			}
			if p.NextCursor == "" {
				return ids, pages + 1
			}
			cursor = p.NextCursor
		}
		t.Fatalf("%s: more pages than assignments", query)
		return nil, 0
	}
	code, first, raw := get("system=blueprism&limit=1")
	if code != http.StatusOK || len(first.Assignments) != 0 || first.NextCursor == "" {
		t.Errorf("system=blueprism&limit=1, its one assignment after %d others: %d %.300s; want an empty page and where it stopped", n, code, raw)
	}
	for _, tc := range []struct {
		system string
		want   permatrix.Assignment
	}{{"blueprism", last}, {"retired-a", retiredRole}, {"retired-b", retiredDeep}} {
		ids, pages := all("limit=1&system=" + tc.system)
		if !slices.Equal(ids, []string{tc.want.ID}) || pages < 2 {
			t.Errorf("system=%s: %v in %d pages, want [%s] in more than one", tc.system, ids, pages, tc.want.ID)
		}
	}
	// Every id read by a page of 1000: a typo is known as such.
	if code, _, raw := get("system=celonis-task-minig&limit=1"); n < 16000 && (code != http.StatusBadRequest || !strings.Contains(raw, "unknown system")) {
		t.Errorf("a typo: %d %s", code, raw)
	}
}

// TestDeleteProject: a registered project could not be removed at all, so
// a system a bundle dropped kept its projects for ever. The operator
// deletes a project's registration, in a system the bundle has or one it
// dropped alike: 409 while assignments are made on it (removed first, as
// a custom role's), 404 when it is not registered; an actor may not (no
// vendor document says who may).
func TestDeleteProject(t *testing.T) {
	onIt := permatrix.Assignment{Subject: "user:bob", System: "retired-system", Permission: "read", Scope: permatrix.Scope{Type: "project", ID: "p1"}}
	base := serveStored(t, func(tx *store.Tx) error {
		for _, p := range []permatrix.Project{
			{System: "retired-system", ID: "p1", CreatedBy: "ann", Kind: "assisted"},
			{System: "retired-system", ID: "p2", CreatedBy: "ann", Kind: "assisted"},
			{System: "uipath-task-mining-cloud", ID: "live", CreatedBy: "ann", Kind: "assisted"},
		} {
			if err := tx.PutProject(p); err != nil {
				return err
			}
		}
		return tx.CreateAssignment(&onIt)
	})
	send := func(method, path, actor string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+docTestToken)
		if actor != "" {
			req.Header.Set("X-Permatrix-Actor", actor)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		var e struct{ Error struct{ Message string } }
		_ = json.Unmarshal(raw, &e)
		if e.Error.Message != "" {
			return res.StatusCode, e.Error.Message
		}
		return res.StatusCode, string(raw)
	}
	for _, tc := range []struct {
		method, path, actor string
		want                int
		says                string
	}{
		{"DELETE", "/v1/systems/retired-system/projects/p1", "", http.StatusConflict, "remove them first"},
		{"DELETE", "/v1/systems/retired-system/projects/p2", "ada", http.StatusForbidden, "only the operator"},
		{"DELETE", "/v1/systems/uipath-task-mining-cloud/projects/live", "ann", http.StatusForbidden, "only the operator"},
		{"DELETE", "/v1/systems/retired-system/projects/p2", "", http.StatusOK, `"revision"`},
		{"GET", "/v1/systems/retired-system/projects/p2", "", http.StatusNotFound, `no project "p2" of it is stored`},
		{"DELETE", "/v1/systems/retired-system/projects/p2", "", http.StatusNotFound, `no project "p2" of it is stored`},
		{"DELETE", "/v1/assignments/" + onIt.ID, "", http.StatusOK, `"revision"`},
		{"DELETE", "/v1/systems/retired-system/projects/p1", "", http.StatusOK, `"revision"`},
		{"DELETE", "/v1/systems/uipath-task-mining-cloud/projects/live", "", http.StatusOK, `"revision"`},
		{"GET", "/v1/systems/uipath-task-mining-cloud/projects/live", "", http.StatusNotFound, `project "live" of system "uipath-task-mining-cloud" not found`},
		{"DELETE", "/v1/systems/uipath-task-mining-cloud/projects/live", "", http.StatusNotFound, `project "live" of system "uipath-task-mining-cloud" not found`},
		{"DELETE", "/v1/systems/retired-systen/projects/p1", "", http.StatusNotFound, "unknown system"},
	} {
		if code, got := send(tc.method, tc.path, tc.actor); code != tc.want || !strings.Contains(got, tc.says) {
			t.Errorf("%s %s (actor %q): %d %s, want %d with %q", tc.method, tc.path, tc.actor, code, got, tc.want, tc.says)
		}
	}
}
