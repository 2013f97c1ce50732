package console_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestProjectDelete: the Projects form registers a project and deletes it.
// A project with assignments on it (its creator's role) is refused with
// the API's own message and stays; once they are removed, the button
// deletes it: the API answers 404 for it and the form lists none.
func TestProjectDelete(t *testing.T) {
	tb := newTab(t)
	srv := tb.srv
	const system = "uipath-task-mining-cloud"
	tb.open("overview")
	tb.setToken()
	tb.goTo("assignments")
	tb.choose("#project-system", system)
	tb.typeInto("#project-id", "gone1")
	tb.typeInto("#project-created-by", "owner")
	tb.click("#project-save")
	tb.waitFor(`document.querySelector('#assignments-status [data-outcome]')`)
	if o := tb.text("#assignments-status"); !strings.Contains(o, "Register project gone1 — done") {
		t.Fatalf("registering: %q", o)
	}
	tb.waitFor(`document.getElementById('project-existing').textContent.includes('gone1')`)
	if r := srv.Do(http.MethodGet, "/v1/systems/"+system+"/projects/gone1", nil, true); r.Status != http.StatusOK {
		t.Fatalf("the registered project: %d %s", r.Status, r.Raw)
	}

	// Its creator holds a role on it: the delete is refused, as the API
	// words it, and the project stays.
	want := apiMessage(t, srv, http.MethodDelete, "/v1/systems/"+system+"/projects/gone1", nil, http.StatusConflict)
	tb.eval(`document.getElementById('assignments-status').replaceChildren()`)
	tb.click("#project-delete")
	tb.waitFor(`document.querySelector('#assignments-status [data-outcome]')`)
	if o := tb.text(`#assignments-status [data-outcome]`); !strings.Contains(o, "Delete project gone1 — refused") {
		t.Errorf("the outcome reads %q", o)
	}
	if got := tb.text("#assignments-status .error .message"); got != want {
		t.Errorf("the page shows %q; the API's message is %q", got, want)
	}
	if r := srv.Do(http.MethodGet, "/v1/systems/"+system+"/projects/gone1", nil, true); r.Status != http.StatusOK {
		t.Fatalf("a refused delete removed the project: %d %s", r.Status, r.Raw)
	}

	// Its assignments removed, the button deletes it.
	r := srv.Do(http.MethodGet, "/v1/assignments?system="+system+"&scope_type=project&scope_id=gone1", nil, true)
	list, _ := r.Body["assignments"].([]any)
	if len(list) == 0 {
		t.Fatalf("the creator holds no role on the project: %s", r.Raw)
	}
	for _, a := range list {
		id := a.(map[string]any)["id"].(string)
		if r := srv.Do(http.MethodDelete, "/v1/assignments/"+urlPath(id), nil, true); r.Status != http.StatusOK {
			t.Fatalf("removing %s: %d %s", id, r.Status, r.Raw)
		}
	}
	tb.eval(`document.getElementById('assignments-status').replaceChildren()`)
	tb.click("#project-delete")
	tb.waitFor(`document.querySelector('#assignments-status [data-outcome]')`)
	if o := tb.text("#assignments-status"); !strings.Contains(o, "Delete project gone1 — done") {
		t.Fatalf("deleting: %q", o)
	}
	tb.waitFor(`document.getElementById('project-existing').textContent.includes('No projects registered yet.')`)
	if r := srv.Do(http.MethodGet, "/v1/systems/"+system+"/projects/gone1", nil, true); r.Status != http.StatusNotFound {
		t.Errorf("the deleted project: %d %s", r.Status, r.Raw)
	}
}
