package opa

import (
	"encoding/json"
	"errors"

	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
)

// parseLeaf turns a stored JSON value into an AST value directly: the
// store's leaves (a grant's reason, true, a role, a project) are small, and
// a decision reads several, so this skips the detour through interface
// values that costs a general decoder most of its time. Anything it does
// not expect (exotic numbers, deep nesting) goes to the general path.
//
// Its terms are its own (none shared): it serves topdown's reads of the
// store (dataStore), and topdown's partial evaluation (the Compile API)
// copy-propagates its result in place — ast.Transform sets the Value of
// each term it walks, OPA's interned ones excepted — which on a shared term
// is a write racing every other evaluation's reads.
func parseLeaf(raw []byte) (ast.Value, error) { return parseLeafWith(raw, nil) }

// parseLeafWith is parseLeaf sharing the string terms ts holds.
func parseLeafWith(raw []byte, ts terms) (ast.Value, error) {
	p := leafParser{b: raw, terms: ts}
	v, err := p.value(0)
	if err == nil {
		p.space()
		if p.i != len(p.b) {
			err = errLeaf
		}
	}
	if err != nil {
		return leafValue(raw) // the general path, with its own errors
	}
	return v.Value, nil
}

var errLeaf = errors.New("opa: leaf needs the general decoder")

type leafParser struct {
	b     []byte
	i     int
	terms terms
}

// terms are string terms shared by the values read from the store: the
// keys of its leaves, and (a Policy's) the strings of the bundle's data —
// the catalogs' system, role, permission and scope names, which grant and
// role leaves repeat. Each string of a leaf was otherwise two allocations
// (a grant's leaf holds seven keys; a Blue Prism role, its permissions).
// Shared terms are never changed: the vm writes into no value read from
// data. Only the vm's reads share them (storeNodes); topdown's do not
// (parseLeaf).
type terms map[string]*ast.Term

// newTerms is the keys of a check's input (inputKeys' own terms), the keys
// and fixed values of the store's leaves (internal/store: grant, role and
// project leaves) and the strings of data (keys and values: data's own
// terms), up to maxTerms in all. The vm's plans evaluate their string
// constants as these terms (vm.Program.SharingStrings), so a lookup of a
// constant key in the input, a leaf or data meets the object's key itself.
func newTerms(data ast.Value) terms {
	ts := terms{}
	for _, t := range []*ast.Term{inputKeys.subject, inputKeys.system, inputKeys.action, inputKeys.resource,
		inputKeys.typ, inputKeys.id, inputKeys.context, inputKeys.groups} {
		ts[string(t.Value.(ast.String))] = t
	}
	for _, s := range []string{"assignment", "kind", "role", "permission", "scope", "via", "type", "id",
		"service", "project", "permissions", "created_by", "name", "system"} {
		if _, ok := ts[s]; !ok {
			ts[s] = ast.StringTerm(s)
		}
	}
	if data != nil {
		ast.WalkTerms(data, func(t *ast.Term) bool {
			if s, ok := t.Value.(ast.String); ok && len(ts) < maxTerms {
				if _, ok := ts[string(s)]; !ok {
					ts[string(s)] = t
				}
			}
			return len(ts) >= maxTerms
		})
	}
	return ts
}

// shared is ts's term of s, nil when it holds none.
func (ts terms) shared(s string) *ast.Term { return ts[s] }

// boxedStrings are the strings of terms as interface values, made once
// for a Policy: a decision's items are maps of them (jsonOf), and a string
// put in an interface is an allocation — the kinds, permissions, systems
// and scope types of the catalogs, in every item, were a third of a
// decision's conversion. They are never changed.
type boxedStrings map[string]any

// boxed is ts's strings boxed.
func (ts terms) boxed() boxedStrings {
	bs := make(boxedStrings, len(ts))
	for s := range ts {
		bs[s] = s
	}
	return bs
}

// str is s as an interface value: a shared one when bs holds it.
func (bs boxedStrings) str(s string) any {
	if x, ok := bs[s]; ok {
		return x
	}
	return s
}

// maxTerms bounds the strings a Policy shares (a bundle's data is the
// operator's, but need not be small).
const maxTerms = 1 << 16

// segment is the term of a key's segment (valid UTF-8: the store's
// checks): a shared one when ts holds it.
func (ts terms) segment(s string) *ast.Term {
	if t, ok := ts[s]; ok {
		return t
	}
	return ast.StringTerm(s)
}

// segmentBytes is segment of a segment's bytes: no string is made for
// a shared term.
func (ts terms) segmentBytes(b []byte) *ast.Term {
	if t, ok := ts[string(b)]; ok {
		return t
	}
	return ast.StringTerm(string(b))
}

// str is the string term of b: a shared one when ts holds it.
func (ts terms) str(b []byte) (*ast.Term, bool) {
	if t, ok := ts[string(b)]; ok {
		return t, true
	}
	if !utf8.Valid(b) {
		return nil, false
	}
	return ast.StringTerm(string(b)), true
}

func (p *leafParser) space() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\n' || p.b[p.i] == '\t' || p.b[p.i] == '\r') {
		p.i++
	}
}

func (p *leafParser) value(depth int) (*ast.Term, error) {
	if depth > 16 {
		return nil, errLeaf
	}
	p.space()
	if p.i >= len(p.b) {
		return nil, errLeaf
	}
	switch c := p.b[p.i]; {
	case c == '{':
		v, err := p.object(depth)
		if err != nil {
			return nil, err
		}
		return ast.NewTerm(v), nil
	case c == '[':
		v, err := p.array(depth)
		if err != nil {
			return nil, err
		}
		return ast.NewTerm(v), nil
	case c == '"':
		return p.str()
	case c == 't' && p.lit("true"):
		return ast.InternedTerm(true), nil
	case c == 'f' && p.lit("false"):
		return ast.InternedTerm(false), nil
	case c == 'n' && p.lit("null"):
		return ast.InternedNullTerm, nil
	case c == '-' || (c >= '0' && c <= '9'):
		start := p.i
		for p.i < len(p.b) && (p.b[p.i] == '-' || p.b[p.i] == '+' || p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E' || (p.b[p.i] >= '0' && p.b[p.i] <= '9')) {
			p.i++
		}
		n := json.Number(p.b[start:p.i])
		if !jsonNumber(p.b[start:p.i]) {
			return nil, errLeaf // the general decoder's error
		}
		if _, err := n.Float64(); err != nil {
			return nil, errLeaf
		}
		return ast.NewTerm(ast.Number(n)), nil
	}
	return nil, errLeaf
}

// jsonNumber reports whether b is a number as JSON writes one:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? (strconv takes more: 00,
// 1., +1).
func jsonNumber(b []byte) bool {
	digits := func(i int) int {
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i
	}
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(i)
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return false
		}
		i = j
	}
	return i == len(b)
}

func (p *leafParser) lit(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

func (p *leafParser) str() (*ast.Term, error) {
	p.i++ // the opening quote
	start := p.i
	for p.i < len(p.b) {
		switch c := p.b[p.i]; {
		case c == '"':
			t, ok := p.terms.str(p.b[start:p.i])
			p.i++
			if !ok {
				return nil, errLeaf
			}
			return t, nil
		case c == '\\':
			// An escape: let strconv unquote the whole string.
			end := p.i
			for end < len(p.b) {
				if p.b[end] == '\\' {
					end += 2
					continue
				}
				if p.b[end] == '"' {
					break
				}
				end++
			}
			if end >= len(p.b) {
				return nil, errLeaf
			}
			var s string
			if err := json.Unmarshal(p.b[start-1:end+1], &s); err != nil {
				return nil, errLeaf
			}
			p.i = end + 1
			return ast.StringTerm(s), nil
		case c < 0x20:
			return nil, errLeaf
		}
		p.i++
	}
	return nil, errLeaf
}

func (p *leafParser) object(depth int) (ast.Value, error) {
	p.i++ // {
	items := make([][2]*ast.Term, 0, 8)
	var seen map[ast.String]struct{} // keys of a large object (hasKey)
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return ast.NewObject(), nil
	}
	for {
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return nil, errLeaf
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return nil, errLeaf
		}
		p.i++
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		if hasKey(items, k, &seen) {
			// ast.NewObject would hold the key twice: the general decoder
			// keeps the last value, as json.Unmarshal (the store's check).
			return nil, errLeaf
		}
		items = append(items, [2]*ast.Term{k, v})
		end, err := p.after('}')
		if err != nil {
			return nil, err
		}
		if end {
			return ast.NewObject(items...), nil
		}
	}
}

// after reads what follows a member of an object or an array: a comma
// (another member follows) or close (the end).
func (p *leafParser) after(close byte) (end bool, err error) {
	p.space()
	switch {
	case p.i >= len(p.b):
		return false, errLeaf
	case p.b[p.i] == ',':
		p.i++
		return false, nil
	case p.b[p.i] == close:
		p.i++
		return true, nil
	}
	return false, errLeaf
}

// hasKey reports whether items hold key k. A leaf's objects are small (a
// grant's has five keys): they are scanned; a larger one's keys are kept
// in seen.
func hasKey(items [][2]*ast.Term, k *ast.Term, seen *map[ast.String]struct{}) bool {
	ks := k.Value.(ast.String)
	if len(items) < 16 {
		for _, it := range items {
			if it[0] == k || it[0].Value.(ast.String) == ks {
				return true
			}
		}
		return false
	}
	if *seen == nil {
		*seen = make(map[ast.String]struct{}, 2*len(items))
		for _, it := range items {
			(*seen)[it[0].Value.(ast.String)] = struct{}{}
		}
	}
	if _, ok := (*seen)[ks]; ok {
		return true
	}
	(*seen)[ks] = struct{}{}
	return false
}

func (p *leafParser) array(depth int) (ast.Value, error) {
	p.i++ // [
	var elems []*ast.Term
	p.space()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return ast.NewArray(), nil
	}
	for {
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		elems = append(elems, v)
		end, err := p.after(']')
		if err != nil {
			return nil, err
		}
		if end {
			return ast.NewArray(elems...), nil
		}
	}
}
