package citation_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/permatrix/permatrix/internal/citation"
	"github.com/permatrix/permatrix/internal/matrix"
	"github.com/permatrix/permatrix/internal/opa"
)

// vendorDocs is shared/vendor-docs beside the repository (the source of
// truth the embedded copies are taken from).
func vendorDocs(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "vendor-docs")
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		t.Skipf("%s is not here (it sits beside the repository in a workspace and in CI)", dir)
	}
	return dir
}

// TestDocumentsAreTheVendors: the embedded documents are exactly
// shared/vendor-docs, file for file and byte for byte: a citation's line
// numbers are the vendor document's.
func TestDocumentsAreTheVendors(t *testing.T) {
	dir := vendorDocs(t)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		names = append(names, e.Name())
		want, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		got, ok := citation.Text(e.Name())
		if !ok {
			t.Errorf("%s is not embedded: copy it to internal/citation/documents", e.Name())
			continue
		}
		if strings.TrimRight(got, "\n") != strings.TrimRight(string(want), "\n") {
			t.Errorf("internal/citation/documents/%s differs from %s: copy it again", e.Name(), filepath.Join(dir, e.Name()))
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, citation.Names()) {
		t.Errorf("embedded %v, vendor-docs has %v", citation.Names(), names)
	}
}

func policy(t *testing.T) *opa.Policy {
	t.Helper()
	b, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	p, err := opa.Compile(context.Background(), b, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCellCitations: cells whose passages are known — the row and column
// where the document prints them, the passages the deciding rules quote —
// get exactly those lines, and every citation's text is the document's.
func TestCellCitations(t *testing.T) {
	p := policy(t)
	type cite struct {
		source, doc string
		line        int
	}
	for _, tc := range []struct {
		system, holder, action, scope string
		want                          []cite
	}{
		// The action's table row (newer document wins: it is listed first),
		// the holder's row in the older document's table, and the rules'
		// quotes: the overview table and the table title.
		{"celonis-task-mining", "analyst", "edit_users", "project", []cite{
			{"action", "celonis-task-mining-permissions.txt", 16},
			{"holder", "celonis-task-mining-permissions-older.txt", 8},
			{"rule", "celonis-task-mining-permissions.txt", 5},
			{"rule", "celonis-task-mining-permissions.txt", 10},
		}},
		// Screenshots: "anyone who wants to view these screenshots…" (line
		// 38, quoted and cited by line) and "Admins have always all
		// permissions." (older, line 4).
		{"celonis-task-mining", "admin", "view_screenshots", "bucket", []cite{
			{"rule", "celonis-task-mining-permissions.txt", 38},
			{"holder", "celonis-task-mining-permissions-older.txt", 4},
		}},
		// Blue Prism: Create Process allows Edit Process — the action's
		// name and description, which says so, and the holder's.
		{"blueprism", "create_process", "edit_process", "service", []cite{
			{"action", "blueprism-user-permissions.txt", 168},
			{"holder", "blueprism-user-permissions.txt", 160},
		}},
		// UiPath cloud: the Japanese row label and footnote *.
		{"uipath-task-mining-cloud", "project_creator", "read_project", "project", []cite{
			{"action", "uipath-task-mining-cloud-roles.ja.txt", 24},
			{"holder", "uipath-task-mining-cloud-roles.ja.txt", 20},
			{"rule", "uipath-task-mining-cloud-roles.ja.txt", 61},
		}},
		// A derived Blue Prism action: its description quotes the
		// permission that allows it, elided ("... allows users to retire
		// and unretire processes.").
		{"blueprism", "edit_process_groups", "unretire_process", "service", nil},
	} {
		_, rules, ok, err := matrix.Explain(context.Background(), p, tc.system, tc.holder, tc.action, tc.scope, matrix.Options{})
		if err != nil || !ok {
			t.Fatalf("%v: %v %v", tc, ok, err)
		}
		got := citation.Cell(p, tc.system, tc.holder, tc.action, rules)
		for _, w := range tc.want {
			if !slices.ContainsFunc(got, func(c citation.Citation) bool {
				return c.Source == w.source && c.Document == w.doc && c.Line <= w.line && w.line <= c.EndLine
			}) {
				t.Errorf("%s %s × %s: no %s citation of %s:%d in %+v", tc.system, tc.holder, tc.action, w.source, w.doc, w.line, got)
			}
		}
		if tc.want == nil && len(got) == 0 {
			t.Errorf("%s %s × %s: no citation", tc.system, tc.holder, tc.action)
		}
		for _, c := range got {
			text, _ := citation.Text(c.Document)
			lines := strings.Split(text, "\n")
			if c.Line < 1 || c.EndLine < c.Line || c.EndLine > len(lines) {
				t.Errorf("%+v: lines out of the document", c)
				continue
			}
			if want := strings.Join(lines[c.Line-1:c.EndLine], "\n"); c.Text != want {
				t.Errorf("%+v: text is not the document's lines %d-%d", c, c.Line, c.EndLine)
			}
			if c.Source == "rule" && c.Rule == "" {
				t.Errorf("%+v: a rule citation names no rule", c)
			}
		}
	}
}

// TestNoCitationIsInvented: a quote found in no document, or a document
// named that does not exist, is not a citation; short words are not looked
// for (they would be found anywhere).
func TestNoCitationIsInvented(t *testing.T) {
	p := policy(t)
	rules := []opa.Rule{
		{File: "x.rego", Row: 1, Name: "a", Comment: `celonis-task-mining-permissions.txt: "Admins may do nothing at all."`},
		{File: "x.rego", Row: 2, Name: "b", Comment: `nowhere.txt, line 3: "Anyone"`},
		{File: "x.rego", Row: 3, Name: "c", Comment: `celonis-task-mining-permissions.txt, line 9999`},
		{File: "x.rego", Row: 4, Name: "d", Comment: `the "business_analyst" role`},
	}
	for _, c := range citation.Cell(p, "celonis-task-mining", "no-such-holder", "no-such-action", rules) {
		t.Errorf("invented: %+v", c)
	}
	if got := citation.Cell(p, "no-such-system", "admin", "edit_users", rules); len(got) != 0 {
		t.Errorf("unknown system: %+v", got)
	}
	// The same comment with a real quote is found.
	rules[0].Comment = `celonis-task-mining-permissions-older.txt: "Admins have always
all permissions."`
	got := citation.Cell(p, "celonis-task-mining", "no-such-holder", "no-such-action", rules)
	if len(got) != 1 || got[0].Document != "celonis-task-mining-permissions-older.txt" || got[0].Line != 4 || got[0].Rule != "x.rego:1 a" {
		t.Errorf("a quote wrapped over two comment lines: %+v", got)
	}
}

// TestEveryHolderIsCited: every role (and, for systems without roles,
// every permission that heads a column) is found in its system's
// documents, by its printed name or description — except the Orchestrator
// permissions the document only lists together ("ML Packages: View, Edit,
// Create, Delete"), which have no name of their own to find.
func TestEveryHolderIsCited(t *testing.T) {
	p := policy(t)
	unnamed := []string{"ml_packages_create", "ml_packages_delete", "ml_packages_edit"}
	for _, id := range p.Catalog.IDs() {
		sys := p.Catalog[id]
		holders := sys.Roles
		if len(holders) == 0 {
			holders = sys.Permissions
		}
		for h := range holders {
			cites := citation.Cell(p, id, h, "", nil)
			if len(cites) == 0 && !(id == "uipath-orchestrator" && slices.Contains(unnamed, h)) {
				t.Errorf("%s: holder %s is found in no document", id, h)
			}
			for _, c := range cites {
				if !slices.Contains(sys.Documents, c.Document) {
					t.Errorf("%s: holder %s cited in %s, not one of the system's documents %v", id, h, c.Document, sys.Documents)
				}
			}
		}
	}
}
