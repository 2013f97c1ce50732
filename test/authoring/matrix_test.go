package authoring_test

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/permatrix/permatrix/internal/matrix"
	"github.com/permatrix/permatrix/test/harness"
)

// fixture is a vendor table transcribed once from the document
// (test/fixtures/<system>/matrix.json): each cell cites its file and line.
type fixture struct {
	System     string        `json:"system"`
	Source     string        `json:"source"`
	MatrixArgs []string      `json:"matrix_args"`
	Cells      []fixtureCell `json:"cells"`
}

type fixtureCell struct {
	Role     string         `json:"role"`
	Action   string         `json:"action"`
	Scope    string         `json:"scope"`
	Context  map[string]any `json:"context"`
	Allow    bool           `json:"allow"`
	Document string         `json:"document"`
	Line     int            `json:"line"`
	Mark     string         `json:"mark"`
	Note     string         `json:"note"`
}

// TestMatrixMatchesVendorTables renders each system's matrix with
// `permatrix matrix SYSTEM --format json` and holds every cell of the
// transcribed vendor table to it. A mismatch names role, action, scope,
// expected and got, and the document line to read.
func TestMatrixMatchesVendorTables(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(harness.Root(), "test", "fixtures", "*", "matrix.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures under test/fixtures: %v", err)
	}
	for _, file := range files {
		var fx fixture
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &fx); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if dir := filepath.Base(filepath.Dir(file)); dir != fx.System {
			t.Fatalf("%s describes system %q: its directory must be named so", file, fx.System)
		}
		t.Run(fx.System, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(harness.Root(), "systems", fx.System)); err != nil {
				t.Skipf("systems/%s does not exist", fx.System)
			}
			if len(fx.Cells) == 0 {
				t.Fatal("fixture has no cells")
			}
			// One render without context, one per action that a cell
			// checks with a context.
			renders := map[string]*matrix.Matrix{}
			render := func(c fixtureCell) *matrix.Matrix {
				args := append([]string{"matrix", fx.System, "--format", "json"}, fx.MatrixArgs...)
				key := ""
				if c.Context != nil {
					ctx, _ := json.Marshal(c.Context)
					key = c.Action + "=" + string(ctx)
					args = append(args, "--context", key)
				}
				if m, ok := renders[key]; ok {
					return m
				}
				out, errOut, code := permatrix(t, "", args...)
				if code != 0 {
					t.Fatalf("permatrix %s: exit %d\n%s", strings.Join(args, " "), code, errOut)
				}
				var m matrix.Matrix
				if err := json.Unmarshal([]byte(out), &m); err != nil {
					t.Fatalf("permatrix %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				renders[key] = &m
				return &m
			}
			var diffs []string
			for _, c := range fx.Cells {
				m := render(c)
				got, ok := m.Get(c.Role, c.Action, c.Scope)
				where := fmt.Sprintf("%s:%d %q", c.Document, c.Line, c.Mark)
				ctx := ""
				if c.Context != nil {
					b, _ := json.Marshal(c.Context)
					ctx = " context=" + string(b)
				}
				switch {
				case !ok:
					diffs = append(diffs, fmt.Sprintf("role=%s action=%s scope=%s%s: expected allow=%v, got no cell (not checked there) — %s",
						c.Role, c.Action, c.Scope, ctx, c.Allow, where))
				case got.Allow != c.Allow:
					missing, _ := json.Marshal(got.Missing)
					d := fmt.Sprintf("role=%s action=%s scope=%s%s: expected allow=%v, got %v — %s", c.Role, c.Action, c.Scope, ctx, c.Allow, got.Allow, where)
					if c.Note != "" {
						d += " (" + c.Note + ")"
					}
					if !got.Allow {
						d += "; missing: " + string(missing)
					}
					diffs = append(diffs, d)
				}
			}
			if len(diffs) > 0 {
				t.Errorf("%d of %d cells differ from %s:\n  %s", len(diffs), len(fx.Cells), fx.Source, strings.Join(diffs, "\n  "))
			}
		})
	}
}

// TestMatrixFormats renders one matrix in every format and checks each is
// well-formed and says the same thing.
func TestMatrixFormats(t *testing.T) {
	const sys = "celonis-task-mining"
	out, errOut, code := permatrix(t, "", "matrix", sys, "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var m matrix.Matrix
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatal(err)
	}
	if m.HolderKind != "role" || len(m.Holders) != 3 || m.BundleRevision == "" {
		t.Fatalf("json: %+v", m)
	}

	table, _, code := permatrix(t, "", "matrix", sys)
	if code != 0 || !strings.Contains(table, "admin @service") || !strings.Contains(table, "member @project") {
		t.Fatalf("table (exit %d):\n%s", code, table)
	}
	md, _, _ := permatrix(t, "", "matrix", sys, "--format", "markdown")
	if !strings.Contains(md, "| `delete_project` | ✓ |") || !strings.Contains(md, "|---|:-:|") {
		t.Fatalf("markdown:\n%s", md)
	}
	csvOut, _, _ := permatrix(t, "", "matrix", sys, "--format", "csv", "--scope", "project")
	rows, err := csv.NewReader(strings.NewReader(csvOut)).ReadAll()
	if err != nil {
		t.Fatalf("csv: %v\n%s", err, csvOut)
	}
	if !slices.Equal(rows[0], []string{"action", "admin", "analyst", "member"}) {
		t.Fatalf("csv header with one scope: %v", rows[0])
	}
	for _, r := range rows[1:] {
		c, ok := m.Get("admin", r[0], "project")
		if !ok || (r[1] == "yes") != c.Allow {
			t.Fatalf("csv row %v disagrees with json cell %+v", r, c)
		}
	}
	html, _, _ := permatrix(t, "", "matrix", sys, "--format", "html")
	if !strings.HasPrefix(html, "<!DOCTYPE html>") || strings.Count(html, `<td class="yes">`) != countAllowed(&m) {
		t.Fatalf("html: %d allowed cells, json has %d", strings.Count(html, `<td class="yes">`), countAllowed(&m))
	}

	// Errors are clear.
	if _, errOut, code := permatrix(t, "", "matrix", "nope"); code == 0 || !strings.Contains(errOut, `unknown system "nope"`) {
		t.Fatalf("unknown system: exit %d %s", code, errOut)
	}
	if _, errOut, code := permatrix(t, "", "matrix", sys, "--format", "pdf"); code == 0 || !strings.Contains(errOut, "want one of") {
		t.Fatalf("bad format: exit %d %s", code, errOut)
	}
}

func countAllowed(m *matrix.Matrix) int {
	n := 0
	for _, c := range m.Cells {
		if c.Allow {
			n++
		}
	}
	return n
}

// TestMatrixWithoutBuiltinRoles: a system whose roles are defined at run
// time gets one column per permission held alone.
func TestMatrixWithoutBuiltinRoles(t *testing.T) {
	out, errOut, code := permatrix(t, "", "matrix", "uipath-orchestrator", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var m matrix.Matrix
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatal(err)
	}
	if m.HolderKind != "permission" || len(m.Holders) != 6 {
		t.Fatalf("holders: %s %v", m.HolderKind, m.Holders)
	}
	for _, c := range m.Cells {
		if c.Allow != (c.Role == c.Action) {
			t.Errorf("holding %s alone: %s allow=%v", c.Role, c.Action, c.Allow)
		}
	}
	if !strings.Contains(strings.Join(m.Notes, " "), "no built-in roles") {
		t.Fatalf("notes: %v", m.Notes)
	}
}
