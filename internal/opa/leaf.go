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
func parseLeaf(raw []byte) (ast.Value, error) {
	p := leafParser{b: raw}
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
	return v, nil
}

var errLeaf = errors.New("opa: leaf needs the general decoder")

type leafParser struct {
	b []byte
	i int
}

func (p *leafParser) space() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\n' || p.b[p.i] == '\t' || p.b[p.i] == '\r') {
		p.i++
	}
}

func (p *leafParser) value(depth int) (ast.Value, error) {
	if depth > 16 {
		return nil, errLeaf
	}
	p.space()
	if p.i >= len(p.b) {
		return nil, errLeaf
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return ast.String(s), nil
	case c == 't' && p.lit("true"):
		return ast.Boolean(true), nil
	case c == 'f' && p.lit("false"):
		return ast.Boolean(false), nil
	case c == 'n' && p.lit("null"):
		return ast.Null{}, nil
	case c == '-' || (c >= '0' && c <= '9'):
		start := p.i
		for p.i < len(p.b) && (p.b[p.i] == '-' || p.b[p.i] == '+' || p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E' || (p.b[p.i] >= '0' && p.b[p.i] <= '9')) {
			p.i++
		}
		n := json.Number(p.b[start:p.i])
		if _, err := n.Float64(); err != nil {
			return nil, errLeaf
		}
		return ast.Number(n), nil
	}
	return nil, errLeaf
}

func (p *leafParser) lit(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

func (p *leafParser) str() (string, error) {
	p.i++ // the opening quote
	start := p.i
	for p.i < len(p.b) {
		switch c := p.b[p.i]; {
		case c == '"':
			s := string(p.b[start:p.i])
			p.i++
			if !utf8.ValidString(s) {
				return "", errLeaf
			}
			return s, nil
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
				return "", errLeaf
			}
			var s string
			if err := json.Unmarshal(p.b[start-1:end+1], &s); err != nil {
				return "", errLeaf
			}
			p.i = end + 1
			return s, nil
		case c < 0x20:
			return "", errLeaf
		}
		p.i++
	}
	return "", errLeaf
}

func (p *leafParser) object(depth int) (ast.Value, error) {
	p.i++ // {
	var items [][2]*ast.Term
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
		items = append(items, [2]*ast.Term{ast.StringTerm(k), ast.NewTerm(v)})
		p.space()
		if p.i >= len(p.b) {
			return nil, errLeaf
		}
		if p.b[p.i] == ',' {
			p.i++
			continue
		}
		if p.b[p.i] == '}' {
			p.i++
			return ast.NewObject(items...), nil
		}
		return nil, errLeaf
	}
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
		elems = append(elems, ast.NewTerm(v))
		p.space()
		if p.i >= len(p.b) {
			return nil, errLeaf
		}
		if p.b[p.i] == ',' {
			p.i++
			continue
		}
		if p.b[p.i] == ']' {
			p.i++
			return ast.NewArray(elems...), nil
		}
		return nil, errLeaf
	}
}
