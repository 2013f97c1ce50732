package opa

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// Rule is a rule whose body held while a decision was made: where it is
// written and the comment written above it (the policies cite their vendor
// documents there, docs/policies.md).
type Rule struct {
	// File is the module's path in the bundle, Row the rule's first line.
	File string `json:"file"`
	Row  int    `json:"row"`
	// Package is the rule's package ("data.permatrix.systems.blueprism"),
	// Name its head's name ("missing", "decision", "is_admin").
	Package string `json:"package"`
	Name    string `json:"name"`
	// Comment is the comment block directly above the rule, without the
	// leading "#", or its METADATA description when it has one.
	Comment string `json:"comment,omitempty"`
}

// Explain makes the decision Decide makes, traced, and returns it with the
// rules whose bodies held during the evaluation and that keep accepts (nil:
// all), in file order. It evaluates unprepared, with a tracer: slower than
// Decide, meant for one decision a person asks about.
func (p *Policy) Explain(ctx context.Context, snap store.Snapshot, c permatrix.Check, keep func(Rule) bool) (*permatrix.Decision, []Rule, error) {
	v, err := ast.InterfaceToValue(c.Input())
	if err != nil {
		return nil, nil, err
	}
	tracer := topdown.NewBufferTracer()
	rs, err := rego.New(
		rego.Query(DecisionQuery),
		rego.Compiler(p.compiler),
		rego.Store(p.data),
		rego.Transaction(p.data.Begin(snap)),
		rego.ParsedInput(v),
		rego.StrictBuiltinErrors(true),
		rego.QueryTracer(tracer),
	).Eval(ctx)
	if err != nil {
		return nil, nil, err
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return nil, nil, errors.New("data.permatrix.decision is undefined")
	}
	d, err := parseDecision(rs[0].Expressions[0].Value)
	if err != nil {
		return nil, nil, err
	}
	seen := map[*ast.Rule]bool{}
	var rules []Rule
	for _, e := range *tracer {
		r, ok := e.Node.(*ast.Rule)
		if !ok || e.Op != topdown.ExitOp || seen[r] || r.Module == nil || r.Location == nil {
			continue
		}
		seen[r] = true
		rule := Rule{File: r.Location.File, Row: r.Location.Row, Package: r.Module.Package.Path.String(),
			Name: r.Head.Name.String(), Comment: ruleComment(r)}
		if keep == nil || keep(rule) {
			rules = append(rules, rule)
		}
	}
	slices.SortFunc(rules, func(a, b Rule) int {
		if c := strings.Compare(a.File, b.File); c != 0 {
			return c
		}
		return a.Row - b.Row
	})
	return d, rules, nil
}

// ruleComment is the METADATA description of r, else the block of comment
// lines that ends on the line above it.
func ruleComment(r *ast.Rule) string {
	if len(r.Annotations) > 0 && r.Annotations[0].Description != "" {
		return strings.TrimSpace(r.Annotations[0].Description)
	}
	byRow := map[int]string{}
	for _, c := range r.Module.Comments {
		if c.Location != nil && c.Location.File == r.Location.File {
			byRow[c.Location.Row] = string(c.Text)
		}
	}
	var lines []string
	for row := r.Location.Row - 1; row > 0; row-- {
		text, ok := byRow[row]
		if !ok {
			break
		}
		lines = append(lines, strings.TrimPrefix(text, " "))
	}
	slices.Reverse(lines)
	return strings.TrimSpace(strings.Join(lines, "\n"))
}
