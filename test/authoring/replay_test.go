package authoring_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestReplayNamesTheFlippedAction: decisions logged by serve
// --decision-log, replayed against a bundle directory in which the viewer
// lost "read", flip exactly there; against the same policies nothing flips.
func TestReplayNamesTheFlippedAction(t *testing.T) {
	dir := demoLayout(t)
	work := t.TempDir()
	db, log, export := filepath.Join(work, "p.db"), filepath.Join(work, "decisions.log"), filepath.Join(work, "export.json")
	s := serve(t, "--bundle", dir, "--db", db, "--decision-log", log)
	s.assign(t, `{"subject":"user:alice","system":"demo","role":"viewer","scope":{"type":"service"}}`)
	s.assign(t, `{"subject":"user:bob","system":"demo","role":"editor","scope":{"type":"project","id":"p1"}}`)
	checks := []struct {
		body  string
		allow bool
	}{
		{aliceReads, true},
		{aliceWrites, false},
		{`{"subject":"alice","system":"demo","action":"read","resource":{"type":"project","id":"p1"}}`, true},
		{`{"subject":"bob","system":"demo","action":"read","resource":{"type":"project","id":"p1"}}`, true},
		{`{"subject":"bob","system":"demo","action":"write","resource":{"type":"project","id":"p1"}}`, true},
		{`{"subject":"carol","system":"demo","action":"read"}`, false},
	}
	for _, c := range checks {
		if got := s.allowed(t, c.body); got != c.allow {
			t.Fatalf("%s: allow=%v", c.body, got)
		}
	}
	code, raw := s.do(t, "GET", "/v1/export", "")
	if code != 200 {
		t.Fatalf("export: %d %s", code, raw)
	}
	writeFile(t, export, string(raw))
	s.stop(t) // flushes the decision log and releases the db

	candidate := copyTree(t, dir)
	write(t, filepath.Join(candidate, "policies", "demo", "demo.rego"), demoPolicy(`set()`))

	// Against the db file.
	out, errOut, code := permatrix(t, "", "replay", "--decisions", log, "--bundle", candidate, "--db", db)
	if code != 1 {
		t.Fatalf("replay with flips: exit %d, want 1\n%s%s", code, out, errOut)
	}
	t.Logf("permatrix replay:\n%s", out)
	for _, want := range []string{
		"replayed 6 decisions",
		"store: current: " + db + " at revision 2",
		"2 decisions would flip:",
		"demo/read: 2 (allow→deny 2)",
		`subject "alice" on service: allow → deny`,
		`subject "alice" on project:p1: allow → deny`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("replay output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "demo/write") || strings.Contains(out, `"bob"`) {
		t.Errorf("only alice's reads flip:\n%s", out)
	}

	// Against the export, as JSON.
	out, errOut, code = permatrix(t, "", "replay", "--decisions", log, "--bundle", candidate, "--store-export", export, "--format", "json")
	var rep struct {
		Decisions int    `json:"decisions"`
		Flips     int    `json:"flips"`
		Store     string `json:"store"`
		Groups    []struct {
			System, Action string
			AllowToDeny    int `json:"allow_to_deny"`
		} `json:"groups"`
	}
	if code != 1 || json.Unmarshal([]byte(out), &rep) != nil {
		t.Fatalf("replay --format json: exit %d\n%s%s", code, out, errOut)
	}
	if rep.Decisions != 6 || rep.Flips != 2 || len(rep.Groups) != 1 || rep.Groups[0].Action != "read" || rep.Groups[0].AllowToDeny != 2 ||
		!strings.Contains(rep.Store, "export") {
		t.Fatalf("replay report: %+v", rep)
	}

	// The unchanged policies flip nothing.
	out, errOut, code = permatrix(t, "", "replay", "--decisions", log, "--db", db, "--bundle", dir)
	if code != 0 || !strings.Contains(out, "no decision would flip") {
		t.Fatalf("replay against the same policies: exit %d\n%s%s", code, out, errOut)
	}
	// With a baseline, candidate and baseline are compared on the same store.
	out, errOut, code = permatrix(t, "", "replay", "--decisions", log, "--db", db, "--bundle", candidate, "--baseline", dir)
	if code != 1 || !strings.Contains(out, "baseline bundle: ") || !strings.Contains(out, "demo/read: 2 (allow→deny 2)") {
		t.Fatalf("replay --baseline: exit %d\n%s%s", code, out, errOut)
	}

	// The logged store is not available, and says why.
	_, errOut, code = permatrix(t, "", "replay", "--decisions", log, "--bundle", candidate, "--store", "logged")
	if code != 2 || !regexp.MustCompile(`not the store's contents`).MatchString(errOut) {
		t.Fatalf("--store logged: exit %d %s", code, errOut)
	}
	if _, err := os.Stat(log); err != nil {
		t.Fatal(err)
	}
}
