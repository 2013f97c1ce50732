// Package citation finds where in the vendors' documents a decision is
// written: the document lines behind a matrix cell. The documents are the
// vendors' own (shared/vendor-docs, copied into documents/ and embedded; a
// test holds the copy to the original), and a citation is found, never
// assumed:
//
//   - the cell's row and column: the printed names the catalog gives the
//     action (UiPath's table row labels, the permission names) and the
//     holder (role or permission name), located in the system's documents;
//   - the rules that decided it (opa.Policy.Explain): every passage their
//     comments quote ("…" or 「…」), located verbatim in the documents (the
//     comment's named document first), and every "<file>.txt, line N" they
//     give.
//
// Text is compared with white space removed and case folded (comments
// wrap a quote where the document does not, and Japanese text has no
// spaces); a quote that is found nowhere is not a citation.
package citation

import (
	"embed"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/opa"
)

//go:embed documents
var embedded embed.FS

// Citation is a passage of a vendor document.
type Citation struct {
	// Document is the document's file name (shared/vendor-docs/<name>).
	Document string `json:"document"`
	// Line and EndLine are the 1-based lines the passage spans.
	Line    int `json:"line"`
	EndLine int `json:"end_line"`
	// Text is those lines.
	Text string `json:"text"`
	// Source says what led to the passage: "action" (the cell's row),
	// "holder" (its column) or "rule" (a rule that decided it).
	Source string `json:"source"`
	// Rule is the rule whose comment cites the passage ("file:row name"),
	// with Source "rule".
	Rule string `json:"rule,omitempty"`
	// Quote is what was looked for.
	Quote string `json:"quote"`
}

// document is one vendor document, indexed for search: its text without
// white space, folded, with the line of each rune.
type document struct {
	name   string
	lines  []string
	folded []rune
	lineOf []int // lineOf[i]: the 0-based line of folded[i]
}

var documents = load()

func load() map[string]*document {
	out := map[string]*document{}
	entries, err := fs.ReadDir(embedded, "documents")
	if err != nil {
		panic(err)
	}
	for _, e := range entries {
		raw, err := fs.ReadFile(embedded, path.Join("documents", e.Name()))
		if err != nil {
			panic(err)
		}
		d := &document{name: e.Name(), lines: strings.Split(strings.TrimRight(string(raw), "\n"), "\n")}
		for i, l := range d.lines {
			for _, r := range fold(l) {
				d.folded = append(d.folded, r)
				d.lineOf = append(d.lineOf, i)
			}
		}
		out[e.Name()] = d
	}
	return out
}

// Names lists the documents, sorted.
func Names() []string {
	out := make([]string, 0, len(documents))
	for n := range documents {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Text is a document's text.
func Text(name string) (string, bool) {
	d, ok := documents[name]
	if !ok {
		return "", false
	}
	return strings.Join(d.lines, "\n") + "\n", true
}

// dashes are the characters the documents and the comments write for a
// dash, folded to "-".
var dashes = strings.NewReplacer("–", "-", "—", "-", "−", "-", "‐", "-")

// fold is s without white space, lower-cased, with one kind of dash and of
// quote mark: the form text is compared in.
func fold(s string) []rune {
	s = dashes.Replace(s)
	out := make([]rune, 0, len(s))
	for _, r := range s {
		switch {
		case unicode.IsSpace(r):
			continue
		case r == '“' || r == '”':
			r = '"'
		case r == '‘' || r == '’':
			r = '\''
		}
		out = append(out, unicode.ToLower(r))
	}
	return out
}

// find locates text in the documents docs, in that order; ok is false
// when none holds it.
func find(text string, docs []string) (Citation, bool) {
	q := fold(text)
	if len(q) == 0 {
		return Citation{}, false
	}
	for _, n := range docs {
		d := documents[n]
		if d == nil {
			continue
		}
		if i := index(d.folded, q); i >= 0 {
			return d.passage(d.lineOf[i], d.lineOf[i+len(q)-1], text), true
		}
	}
	return Citation{}, false
}

// findName locates a printed name (a table row's label, a role's name) in
// the documents, in order: a line that is the name, else one that begins
// with it followed by a table separator or a word, else any occurrence.
// Names are short ("Admin"), so a line of their own or a row's first cell
// is the likelier citation than a mention in a sentence.
func findName(name string, docs []string) (Citation, bool) {
	q := string(fold(name))
	if q == "" {
		return Citation{}, false
	}
	lower := strings.ToLower(strings.TrimSpace(name))
	passes := []func(line string) bool{
		func(l string) bool { return string(fold(l)) == q },
		func(l string) bool {
			rest, ok := strings.CutPrefix(string(fold(l)), q)
			return ok && rest != "" && strings.ContainsRune("|:(", []rune(rest)[0])
		},
		func(l string) bool { return strings.HasPrefix(strings.ToLower(strings.TrimSpace(l)), lower+" ") },
	}
	for _, n := range docs {
		d := documents[n]
		if d == nil {
			continue
		}
		for _, pass := range passes {
			for i, l := range d.lines {
				if pass(l) {
					return d.passage(i, i, name), true
				}
			}
		}
	}
	return find(name, docs)
}

// adjacent reports whether passage b starts within a or after it with
// only blank lines between.
func (d *document) adjacent(a, b Citation) bool {
	if b.Line < a.Line {
		return false
	}
	for l := a.EndLine + 1; l < b.Line; l++ {
		if strings.TrimSpace(d.lines[l-1]) != "" {
			return false
		}
	}
	return true
}

func (d *document) passage(first, last int, quote string) Citation {
	return Citation{Document: d.name, Line: first + 1, EndLine: last + 1,
		Text: strings.Join(d.lines[first:last+1], "\n"), Quote: quote}
}

// index is strings.Index over runes.
func index(s, sub []rune) int {
	if len(sub) > len(s) {
		return -1
	}
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i] == sub[0] && slices.Equal(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}

var (
	// quoted is a passage a comment quotes: "…" or 「…」, possibly wrapped
	// over comment lines.
	quoted = regexp.MustCompile(`"([^"]+)"|「([^」]+)」`)
	// docName is a vendor document a comment names: a file name, or the
	// readings (shared/vendor-docs/README.md).
	docName = regexp.MustCompile(`[a-z0-9][a-z0-9.-]*\.txt|vendor-docs/README\.md`)
	// lineRef is "<file>.txt, line N" or "<file>.txt (line N)".
	lineRef = regexp.MustCompile(`([a-z0-9][a-z0-9.-]*\.txt)[,:]?\s*\(?lines?\s+(\d+)`)
	// afterDoc is a passage written after a document's name without quote
	// marks: "(older.txt: Delete Project not shown in UI)".
	afterDoc = regexp.MustCompile(`[a-z0-9][a-z0-9.-]*\.txt: ([^"()]+)`)
	// identifier is a quoted id or key ("business_analyst"), not prose.
	identifier = regexp.MustCompile(`^[a-z0-9_.:*-]+$`)
)

// minQuote is the shortest quote looked for, in runes without spaces:
// shorter ones ("Anyone", "-") would be found anywhere.
const minQuote = 8

// quotes are the passages a text quotes: each part of an elided quote on
// its own, ids and short words left out.
func quotes(text string) []string {
	var out []string
	for _, m := range quoted.FindAllStringSubmatch(text, -1) {
		for _, part := range strings.FieldsFunc(strings.ReplaceAll(m[1]+m[2], "...", "…"), func(r rune) bool { return r == '…' }) {
			part = strings.TrimSpace(part)
			if utf8.RuneCountInString(string(fold(part))) >= minQuote && !identifier.MatchString(part) && !slices.Contains(out, part) {
				out = append(out, part)
			}
		}
	}
	return out
}

// cited is what a catalog text (a description, a not_assignable note)
// cites: its quotes, and what follows a document's name.
func cited(text string) []string {
	out := quotes(text)
	for _, m := range afterDoc.FindAllStringSubmatch(text, -1) {
		if part := strings.TrimSpace(m[1]); utf8.RuneCountInString(string(fold(part))) >= minQuote && !slices.Contains(out, part) {
			out = append(out, part)
		}
	}
	return out
}

// named are the documents a comment names, by file name.
func named(comment string) []string {
	var out []string
	for _, n := range docName.FindAllString(comment, -1) {
		n = strings.TrimPrefix(n, "vendor-docs/")
		if _, ok := documents[n]; ok && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// Cell returns the passages behind a matrix cell of system under policy p:
// where the system's documents print the action's row and the holder's
// column (name and description), and what the rules that decided it (from
// matrix.Explain) quote, looked for in the documents their comment names
// and the system's. Each passage is given once, for the first reason found.
func Cell(p *opa.Policy, system, holder, action string, rules []opa.Rule) []Citation {
	sys := p.Catalog[system]
	if sys == nil {
		return []Citation{}
	}
	out := []Citation{}
	add := func(c Citation, source, rule string) {
		c.Source, c.Rule = source, rule
		if !slices.ContainsFunc(out, func(o Citation) bool {
			return o.Document == c.Document && o.Line <= c.Line && c.EndLine <= o.EndLine
		}) {
			out = append(out, c)
		}
	}
	for _, e := range []struct {
		source string
		names  []string
		desc   string
	}{
		{"action", actionNames(p, sys, action), actionDescription(sys, action)},
		{"holder", holderNames(sys, holder), holderDescription(sys, holder)},
	} {
		c, found := Citation{}, false
		for _, name := range e.names {
			if c, found = findName(name, sys.Documents); found {
				break
			}
		}
		d, described := find(e.desc, sys.Documents)
		switch {
		case found && described && d.Document == c.Document && documents[c.Document].adjacent(c, d):
			// The description follows the name (or shares its line): one passage.
			add(documents[c.Document].passage(c.Line-1, max(c.EndLine, d.EndLine)-1, c.Quote), e.source, "")
		default:
			if found {
				add(c, e.source, "")
			}
			if described {
				add(d, e.source, "")
			}
		}
	}
	for _, r := range rules {
		if r.Comment == "" {
			continue
		}
		where := r.File + ":" + strconv.Itoa(r.Row) + " " + r.Name
		docs := named(r.Comment)
		for _, n := range sys.Documents {
			if !slices.Contains(docs, n) {
				docs = append(docs, n)
			}
		}
		for _, m := range lineRef.FindAllStringSubmatch(r.Comment, -1) {
			d := documents[m[1]]
			n, err := strconv.Atoi(m[2])
			if d == nil || err != nil || n < 1 || n > len(d.lines) {
				continue
			}
			add(d.passage(n-1, n-1, m[0]), "rule", where)
		}
		for _, q := range quotes(r.Comment) {
			if c, ok := find(q, docs); ok {
				add(c, "rule", where)
			}
		}
	}
	return out
}

// actionNames are the names a document prints for an action: its table
// row's label (UiPath's cloud roles), the permission's printed name, and
// the passages its description quotes.
func actionNames(p *opa.Policy, sys *permatrix.System, action string) []string {
	var out []string
	if rows, ok := p.BundleData("systems", sys.ID, "rows").([]any); ok {
		for _, r := range rows {
			if m, ok := r.(map[string]any); ok && m["action"] == action {
				if l, ok := m["label"].(string); ok {
					out = append(out, l)
				}
			}
		}
	}
	if g, ok := sys.Permissions[action]; ok && g.Name != "" {
		out = append(out, g.Name)
	}
	if a, ok := sys.Actions[action]; ok {
		out = append(out, cited(a.Description)...)
		out = append(out, cited(a.NotAssignable)...)
	}
	return out
}

func actionDescription(sys *permatrix.System, action string) string {
	if g, ok := sys.Permissions[action]; ok && g.Description != "" {
		return g.Description
	}
	return sys.Actions[action].Description
}

// holderNames are the names a document prints for a role or permission,
// and the passages its description quotes.
func holderNames(sys *permatrix.System, holder string) []string {
	var out []string
	for _, set := range []map[string]permatrix.Grantable{sys.Roles, sys.Permissions} {
		if g, ok := set[holder]; ok {
			if g.Name != "" {
				out = append(out, g.Name)
			}
			out = append(out, cited(g.Description)...)
		}
	}
	return out
}

func holderDescription(sys *permatrix.System, holder string) string {
	if g, ok := sys.Roles[holder]; ok {
		return g.Description
	}
	return sys.Permissions[holder].Description
}
