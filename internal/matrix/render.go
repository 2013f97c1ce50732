package matrix

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strings"
	"text/tabwriter"
)

// Formats are the output formats Render knows.
var Formats = []string{"table", "markdown", "csv", "json", "html"}

// Cell marks in the text formats.
const (
	markAllow = "yes"
	markDeny  = "no"
	markNA    = "" // the action is not checked at that scope for that holder
)

// column is one rendered column: a holder checked at one scope type.
type column struct {
	holder Holder
	scope  string
}

// label is the column's header: the holder, and the scope when the matrix
// has more than one.
func (m *Matrix) label(c column) string {
	if len(m.Scopes) == 1 {
		return c.holder.ID
	}
	return c.holder.ID + " @" + c.scope
}

// columns are the holder × scope pairs that have at least one cell.
func (m *Matrix) columns() []column {
	has := map[[2]string]bool{}
	for _, c := range m.Cells {
		has[[2]string{c.Role, c.Scope}] = true
	}
	var out []column
	for _, h := range m.Holders {
		for _, s := range m.Scopes {
			if has[[2]string{h.ID, s}] {
				out = append(out, column{h, s})
			}
		}
	}
	return out
}

// rows are the actions with at least one cell.
func (m *Matrix) rows() []string {
	has := map[string]bool{}
	for _, c := range m.Cells {
		has[c.Action] = true
	}
	var out []string
	for _, a := range m.Actions {
		if has[a] {
			out = append(out, a)
		}
	}
	return out
}

func (m *Matrix) index() map[[3]string]Cell {
	idx := make(map[[3]string]Cell, len(m.Cells))
	for _, c := range m.Cells {
		idx[[3]string{c.Role, c.Action, c.Scope}] = c
	}
	return idx
}

func mark(c Cell, ok bool) string {
	switch {
	case !ok:
		return markNA
	case c.Allow:
		return markAllow
	}
	return markDeny
}

// grid is the matrix as rows of strings: a header, then one row per action.
func (m *Matrix) grid() [][]string {
	cols := m.columns()
	idx := m.index()
	head := []string{"action"}
	for _, c := range cols {
		head = append(head, m.label(c))
	}
	out := [][]string{head}
	for _, a := range m.rows() {
		row := []string{a}
		for _, c := range cols {
			cell, ok := idx[[3]string{c.holder.ID, a, c.scope}]
			row = append(row, mark(cell, ok))
		}
		out = append(out, row)
	}
	return out
}

// lists is the matrix per holder: what holding it alone allows, per scope
// type. For systems with many permissions (Blue Prism's 95) a grid is too
// wide to read in a terminal; this is the same information.
func (m *Matrix) lists() [][]string {
	head := []string{m.HolderKind}
	for _, s := range m.Scopes {
		head = append(head, "allows at "+s)
	}
	out := [][]string{head}
	for _, h := range m.Holders {
		row := []string{h.ID}
		for _, s := range m.Scopes {
			var allowed []string
			for _, c := range m.Cells {
				if c.Role == h.ID && c.Scope == s && c.Allow {
					allowed = append(allowed, c.Action)
				}
			}
			row = append(row, strings.Join(allowed, ", "))
		}
		out = append(out, row)
	}
	return out
}

// wide reports whether the grid is too wide for a terminal or a Markdown
// page, so the text formats print lists instead.
func (m *Matrix) wide() bool { return len(m.columns()) > 16 }

// Render writes the matrix in format (one of Formats).
func (m *Matrix) Render(w io.Writer, format string) error {
	switch format {
	case "table":
		return m.table(w)
	case "markdown":
		return m.markdown(w)
	case "csv":
		cw := csv.NewWriter(w)
		if err := cw.WriteAll(m.grid()); err != nil {
			return err
		}
		return cw.Error()
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(m)
	case "html":
		return m.html(w)
	}
	return fmt.Errorf("unknown format %q (want one of %s)", format, strings.Join(Formats, ", "))
}

func (m *Matrix) title() string {
	return fmt.Sprintf("%s (%s), bundle %s", m.Name, m.System, m.BundleRevision)
}

func (m *Matrix) footer() []string {
	notes := append([]string(nil), m.Notes...)
	if len(m.Also) > 0 {
		notes = append(notes, "every column also holds: "+strings.Join(m.Also, ", "))
	}
	if !m.wide() {
		notes = append(notes, "yes: allowed; no: denied; empty: the action is not checked at that scope for that holder")
	}
	return notes
}

func (m *Matrix) table(w io.Writer) error {
	rows := m.grid()
	if m.wide() {
		rows = m.lists()
	}
	fmt.Fprintln(w, m.title())
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, n := range m.footer() {
		fmt.Fprintln(w, "note: "+n)
	}
	return nil
}

func (m *Matrix) markdown(w io.Writer) error {
	rows := m.grid()
	if m.wide() {
		rows = m.lists()
	}
	fmt.Fprintf(w, "### %s\n\n", mdEscape(m.title()))
	for i, r := range rows {
		cells := make([]string, len(r))
		for j, c := range r {
			cells[j] = mdEscape(c)
			if i == 0 || j == 0 {
				cells[j] = "`" + strings.ReplaceAll(c, "`", "'") + "`"
			}
			if i > 0 && c == markAllow && !m.wide() {
				cells[j] = "✓"
			}
			if i > 0 && c == markDeny && !m.wide() {
				cells[j] = "✗"
			}
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
		if i == 0 {
			sep := make([]string, len(r))
			for j := range sep {
				sep[j] = ":-:"
			}
			sep[0] = "---"
			fmt.Fprintf(w, "|%s|\n", strings.Join(sep, "|"))
		}
	}
	fmt.Fprintln(w)
	for _, n := range m.footer() {
		n = strings.ReplaceAll(n, "yes: allowed; no: denied;", "✓ allowed, ✗ denied,")
		fmt.Fprintf(w, "- %s\n", mdEscape(n))
	}
	return nil
}

func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

var htmlPage = template.Must(template.New("matrix").Funcs(template.FuncMap{
	"missing": func(c Cell) string {
		var parts []string
		for _, m := range c.Missing {
			b, _ := json.Marshal(m)
			parts = append(parts, string(b))
		}
		return strings.Join(parts, "\n")
	},
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{.Title}}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: center; }
th.action, td.action { text-align: left; font-family: monospace; }
td.yes { background: #d9f2d9; }
td.no { background: #f8dcdc; }
td.na { background: #f4f4f4; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<table>
<thead>
<tr><th class="action" rowspan="2">action</th>{{range .Groups}}<th colspan="{{.Span}}" title="{{.Name}}">{{.ID}}</th>{{end}}</tr>
<tr>{{range .Columns}}<th>{{.Scope}}</th>{{end}}</tr>
</thead>
<tbody>
{{range .Rows}}<tr><td class="action">{{.Action}}</td>{{range .Cells}}{{if not .Checked}}<td class="na"></td>{{else if .Cell.Allow}}<td class="yes">yes</td>{{else}}<td class="no" title="{{missing .Cell}}">no</td>{{end}}{{end}}</tr>
{{end}}</tbody>
</table>
<ul>{{range .Notes}}<li>{{.}}</li>{{end}}</ul>
</body>
</html>
`))

func (m *Matrix) html(w io.Writer) error {
	type group struct {
		ID, Name string
		Span     int
	}
	type hcell struct {
		Cell    Cell
		Checked bool
	}
	type row struct {
		Action string
		Cells  []hcell
	}
	cols := m.columns()
	var groups []group
	var heads []struct{ Scope string }
	for _, c := range cols {
		if len(groups) == 0 || groups[len(groups)-1].ID != c.holder.ID {
			groups = append(groups, group{ID: c.holder.ID, Name: c.holder.Name})
		}
		groups[len(groups)-1].Span++
		heads = append(heads, struct{ Scope string }{c.scope})
	}
	idx := m.index()
	var rows []row
	for _, a := range m.rows() {
		r := row{Action: a}
		for _, c := range cols {
			cell, ok := idx[[3]string{c.holder.ID, a, c.scope}]
			r.Cells = append(r.Cells, hcell{cell, ok})
		}
		rows = append(rows, r)
	}
	return htmlPage.Execute(w, map[string]any{
		"Title": m.title(), "Groups": groups, "Columns": heads, "Rows": rows, "Notes": m.footer(),
	})
}
