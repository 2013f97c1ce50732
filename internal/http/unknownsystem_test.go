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
