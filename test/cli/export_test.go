package cli_test

import (
	"encoding/json"
	"fmt"
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
	// its header, the 6 records, its end
	if code != 0 || strings.Count(lines, "\n") != 8 || !strings.Contains(lines, `"id":"a000000000007"`) {
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

// An export cut short on a line boundary (a full disk under the redirected
// stdout, a copy truncated) imported as a smaller store, exit 0, nothing
// said. `permatrix export --format ndjson` writes a header and an end line
// counting the records; `permatrix import` refuses the export cut after any
// line (exit 2, saying so) and stores nothing, all or nothing or in chunks
// (a file's last line is checked before the store is opened); the whole
// export imports,
// and a file of assignment lines without the header still does.
func TestExportCutShortRefusedByImport(t *testing.T) {
	dir := t.TempDir()
	from := filepath.Join(dir, "from.db")
	plain := filepath.Join(dir, "plain.ndjson")
	if err := os.WriteFile(plain, []byte(assignment("alice")+"\n"+assignment("bob")+"\n"+`{"membership":{"group":"ops","user":"erin"}}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errs, code := importCmd(t, nil, plain, "--db", from); code != 0 || !strings.HasPrefix(out, "imported 3 records from 3 lines") {
		t.Fatalf("a plain import: exit %d\n%s%s", code, out, errs)
	}
	export, err := command(t, "export", "--db", from, "--format", "ndjson").Output()
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	lines := strings.SplitAfter(string(export), "\n")
	lines = lines[:len(lines)-1]
	if len(lines) != 5 || !strings.HasPrefix(lines[0], `{"export":{"version":1,`) || !strings.HasPrefix(lines[4], `{"end":{"records":3,`) {
		t.Fatalf("the export is not its header, 3 records and its end:\n%s", export)
	}
	for n := 1; n < len(lines); n++ {
		cut := filepath.Join(dir, fmt.Sprintf("cut%d.ndjson", n))
		if err := os.WriteFile(cut, []byte(strings.Join(lines[:n], "")), 0o600); err != nil {
			t.Fatal(err)
		}
		// In chunks too (--chunk 1: a commit a record): a file is checked
		// before anything is committed.
		for _, chunk := range []string{"0", "1"} {
			to := filepath.Join(dir, fmt.Sprintf("to%d-%s.db", n, chunk))
			out, errs, code := importCmd(t, nil, cut, "--db", to, "--chunk", chunk)
			if code != 2 || !strings.Contains(errs, "the export is cut short") || !strings.Contains(errs, "nothing was imported") {
				t.Fatalf("the export cut after line %d, --chunk %s: exit %d\n%s%s", n, chunk, code, out, errs)
			}
			if _, err := os.Stat(to); err == nil {
				got, _ := json.Marshal(exportedStore(t, to))
				if strings.Contains(string(got), "alice") || strings.Contains(string(got), "erin") {
					t.Fatalf("the export cut after line %d, --chunk %s, stored %s", n, chunk, got)
				}
			}
		}
	}
	whole := filepath.Join(dir, "whole.ndjson")
	if err := os.WriteFile(whole, export, 0o600); err != nil {
		t.Fatal(err)
	}
	to := filepath.Join(dir, "to.db")
	if out, errs, code := importCmd(t, nil, whole, "--db", to); code != 0 || !strings.HasPrefix(out, "imported 3 records from 3 lines") {
		t.Fatalf("the whole export: exit %d\n%s%s", code, out, errs)
	}
	if a, b := exportedStore(t, from), exportedStore(t, to); !reflect.DeepEqual(a, b) {
		t.Fatalf("%s exports\n%v\n%s\n%v", from, a, to, b)
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

// An export file whose end counts more records than it holds (a line lost
// in the middle: a file filtered or edited) was imported in chunks up to
// its end, and the chunks before stayed when the end's count was found
// wrong (exit 2, a partial store). `permatrix import` reads a file whole
// before it opens the store (counting its lines): it compares the end's
// count with the file's records there and refuses with nothing stored.
func TestExportCountCheckedBeforeImport(t *testing.T) {
	dir := t.TempDir()
	from := filepath.Join(dir, "from.db")
	plain := filepath.Join(dir, "plain.ndjson")
	if err := os.WriteFile(plain, []byte(assignment("alice")+"\n"+assignment("bob")+"\n"+`{"membership":{"group":"ops","user":"erin"}}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errs, code := importCmd(t, nil, plain, "--db", from); code != 0 {
		t.Fatalf("a plain import: exit %d\n%s%s", code, out, errs)
	}
	export, err := command(t, "export", "--db", from, "--format", "ndjson").Output()
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	lines := strings.SplitAfter(string(export), "\n")
	lines = lines[:len(lines)-1]
	if len(lines) != 5 {
		t.Fatalf("the export is not its header, 3 records and its end:\n%s", export)
	}
	for what, body := range map[string]string{
		"a record missing": lines[0] + lines[1] + "\n" + lines[3] + lines[4],
		"a record added":   lines[0] + lines[1] + lines[1] + lines[2] + lines[3] + lines[4],
	} {
		file := filepath.Join(dir, strings.ReplaceAll(what, " ", "-")+".ndjson")
		if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		to := filepath.Join(dir, strings.ReplaceAll(what, " ", "-")+".db")
		out, errs, code := importCmd(t, nil, file, "--db", to, "--chunk", "1")
		if code != 2 || !strings.Contains(errs, "records are missing or added") || !strings.Contains(errs, "nothing was imported") {
			t.Fatalf("%s, --chunk 1: exit %d\n%s%s", what, code, out, errs)
		}
		if _, err := os.Stat(to); err == nil {
			if got, _ := json.Marshal(exportedStore(t, to)); strings.Contains(string(got), "alice") {
				t.Fatalf("%s, --chunk 1, stored %s", what, got)
			}
		}
	}
}

// `permatrix import - < export.ndjson`: standard input redirected from a
// file was read as a pipe, its end checked only after the chunks before it
// were committed (an export cut short left a partial store, exit 2). A
// standard input that is a regular file is checked as a named file is,
// from where it stands, before the store is opened.
func TestExportCutShortRefusedOnRedirectedStdin(t *testing.T) {
	dir := t.TempDir()
	from := filepath.Join(dir, "from.db")
	plain := filepath.Join(dir, "plain.ndjson")
	if err := os.WriteFile(plain, []byte(assignment("alice")+"\n"+assignment("bob")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errs, code := importCmd(t, nil, plain, "--db", from); code != 0 {
		t.Fatalf("a plain import: exit %d\n%s%s", code, out, errs)
	}
	export, err := command(t, "export", "--db", from, "--format", "ndjson").Output()
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	lines := strings.SplitAfter(string(export), "\n")
	cut := filepath.Join(dir, "cut.ndjson")
	if err := os.WriteFile(cut, []byte(strings.Join(lines[:3], "")), 0o600); err != nil {
		t.Fatal(err)
	}
	stdin := func(path string) *os.File {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.Close() })
		return f
	}
	to := filepath.Join(dir, "to.db")
	out, errs, code := importCmd(t, stdin(cut), "-", "--db", to, "--chunk", "1")
	if code != 2 || !strings.Contains(errs, "the export is cut short") || !strings.Contains(errs, "nothing was imported") {
		t.Fatalf("the export cut short on stdin, --chunk 1: exit %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(to); err == nil {
		if got, _ := json.Marshal(exportedStore(t, to)); strings.Contains(string(got), "alice") {
			t.Fatalf("the export cut short on stdin stored %s", got)
		}
	}
	whole := filepath.Join(dir, "whole.ndjson")
	if err := os.WriteFile(whole, export, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errs, code := importCmd(t, stdin(whole), "-", "--db", to, "--chunk", "1"); code != 0 || !strings.HasPrefix(out, "imported 2 ") {
		t.Fatalf("the whole export on stdin: exit %d\n%s%s", code, out, errs)
	}
}
