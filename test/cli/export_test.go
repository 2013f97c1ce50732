package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Without a server: `permatrix export --db FILE --format ndjson` writes a
// store's every record as import lines, `permatrix import` makes an empty
// store of them, and both export as the same document (revision aside).
func TestExportImportRoundTripCommands(t *testing.T) {
	dir := t.TempDir()
	from, to := filepath.Join(dir, "from.db"), filepath.Join(dir, "to.db")
	records := strings.Join([]string{
		`{"custom_role":{"system":"blueprism","name":"release_manager","permissions":["design_global_dashboards"]}}`,
		`{"project":{"system":"uipath-task-mining-cloud","id":"p1","created_by":"carol","kind":"unassisted"}}`,
		`{"id":"a000000000007","subject":"user:carol","system":"uipath-task-mining-cloud","role":"project_admin","scope":{"type":"project","id":"p1"}}`,
		`{"subject":"group:releasers","system":"blueprism","role":"release_manager","scope":{"type":"process_group","id":"pg1"}}`,
		`{"subject":"user:bob","system":"celonis-task-mining","role":"analyst","scope":{"type":"service"}}`,
		`{"membership":{"group":"releasers","user":"erin"}}`,
	}, "\n") + "\n"
	in := filepath.Join(dir, "records.ndjson")
	if err := os.WriteFile(in, []byte(records), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errs, code := importCmd(t, nil, in, "--db", from); code != 0 || !strings.HasPrefix(out, "imported 6 records from 6 lines") {
		t.Fatalf("import: exit %d\n%s%s", code, out, errs)
	}

	lines, code := run(t, "export", "--db", from, "--format", "ndjson")
	if code != 0 || strings.Count(lines, "\n") != 6 || !strings.Contains(lines, `"id":"a000000000007"`) {
		t.Fatalf("export --format ndjson: exit %d\n%s", code, lines)
	}
	exported := filepath.Join(dir, "exported.ndjson")
	if err := os.WriteFile(exported, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errs, code := importCmd(t, nil, exported, "--db", to, "--chunk", "2"); code != 0 {
		t.Fatalf("import of the export: exit %d\n%s%s", code, out, errs)
	}
	if a, b := exportedStore(t, from), exportedStore(t, to); !reflect.DeepEqual(a, b) {
		t.Fatalf("%s exports\n%v\n%s\n%v", from, a, to, b)
	}

	// A store file that is not there is not made (an empty export).
	if out, code := run(t, "export", "--db", filepath.Join(dir, "nope.db")); code != 2 || !strings.Contains(out, "nope.db") {
		t.Fatalf("export of no file: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "nope.db")); !os.IsNotExist(err) {
		t.Fatalf("export made the file it was given: %v", err)
	}
	if out, code := run(t, "export", "--db", from, "--format", "yaml"); code != 2 || !strings.Contains(out, "--format") {
		t.Fatalf("--format yaml: exit %d\n%s", code, out)
	}
}

// exportedStore is `permatrix export --db db` (OPA data), its revision
// left out.
func exportedStore(t *testing.T, db string) map[string]any {
	t.Helper()
	cmd := command(t, "export", "--db", db)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("export --db %s: %v", db, err)
	}
	var doc struct{ Store map[string]any }
	if err := json.Unmarshal(out, &doc); err != nil || doc.Store == nil {
		t.Fatalf("export --db %s: %v\n%s", db, err, out)
	}
	delete(doc.Store, "revision")
	return doc.Store
}
