package vm

import (
	"context"
	"errors"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/ir"
	"github.com/open-policy-agent/opa/v1/rego"
)

// target is the rego target this package registers: preparing a query for
// it has OPA's rego package compile the query and plan it, and hands the
// plan here (the same path OPA's Wasm target takes).
const target = "permatrix-vm"

func init() { rego.RegisterPlugin(target, plugin{}) }

type plugin struct{}

func (plugin) IsTarget(t string) bool { return t == target }

// captured is where PrepareForEval leaves the program for Plan, found in the
// context: the plugin is registered once, for every caller.
type captured struct {
	program *Program
	err     error
}

type capturedKey struct{}

func (plugin) PrepareForEval(ctx context.Context, policy *ir.Policy, _ ...rego.PrepareOption) (rego.TargetPluginEval, error) {
	p, err := New(policy)
	if c, ok := ctx.Value(capturedKey{}).(*captured); ok {
		c.program, c.err = p, err
		// The query is evaluated through the Program, not through rego:
		// an unsupported plan is the caller's to handle.
		return unused{}, nil
	}
	if err != nil {
		return nil, err
	}
	return unused{}, nil
}

// unused is the rego-facing side of a prepared query, never evaluated:
// callers evaluate the Program.
type unused struct{}

func (unused) Eval(context.Context, *rego.EvalContext, ast.Value) (ast.Value, error) {
	return nil, errors.New("vm: evaluate the Program, not the rego query")
}

// Plan compiles query with opts (rego.Compiler, rego.Store, ...: what the
// query's topdown preparation is given) and plans it. An error wrapping
// ErrUnsupported means the plan uses what this package does not run, or
// that OPA's planner cannot plan the query at all.
func Plan(ctx context.Context, query ast.Body, opts ...func(*rego.Rego)) (*Program, error) {
	c := &captured{}
	ctx = context.WithValue(ctx, capturedKey{}, c)
	opts = append(opts, rego.ParsedQuery(query), rego.Target(target))
	if _, err := rego.New(opts...).PrepareForEval(ctx); err != nil {
		// An error that is not the parser's or the compiler's (nor the
		// context's) is the planner's: it refuses Rego topdown evaluates
		// (a rule body reading the path prefix its own rules share,
		// `some x in "abc"`).
		var compile ast.Errors
		var modules rego.Errors
		if !errors.As(err, &compile) && !errors.As(err, &modules) && ctx.Err() == nil {
			return nil, fmt.Errorf("%w: the planner: %v", ErrUnsupported, err)
		}
		return nil, err
	}
	if c.err != nil {
		return nil, c.err
	}
	if c.program == nil {
		return nil, errors.New("vm: the query was not planned")
	}
	return c.program, nil
}

// NakedComprehensions lists where modules (compiled) have a comprehension
// as the whole of a body's expression (`{k: v | …}`, `not [x | …]`).
// OPA's planner takes such a term as true without evaluating it (any term
// but false, a variable or a reference), where topdown evaluates it and
// fails on a conflict or, strict, a builtin error in its body: a query
// over such modules is topdown's to evaluate.
func NakedComprehensions(modules map[string]*ast.Module) []*ast.Location {
	var out []*ast.Location
	for _, m := range modules {
		ast.WalkExprs(m, func(e *ast.Expr) bool {
			if t, ok := e.Terms.(*ast.Term); ok {
				switch t.Value.(type) {
				case *ast.ArrayComprehension, *ast.SetComprehension, *ast.ObjectComprehension:
					out = append(out, e.Location)
				}
			}
			return false
		})
	}
	return out
}
