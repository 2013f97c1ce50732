package vm

import (
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// maxConcat bounds the string concat joins itself: a longer one is
// topdown's, which watches the evaluation's cancellation while it writes.
const maxConcat = 1 << 16

// concat is topdown's concat (next) with its common call made here: an
// array of at least two strings joined by a string, at most maxConcat
// bytes. Topdown makes a sink for every call (a buffer, a writer watching
// the cancellation and its timeout error: seven allocations to join
// "group:" and a name); this makes the string and its term. Every other
// call — a set, an element or a separator not a string, fewer than two
// elements (which topdown answers without allocating), a longer string —
// is next's, errors and all.
func concat(next topdown.BuiltinFunc) topdown.BuiltinFunc {
	return func(bctx topdown.BuiltinContext, operands []*ast.Term, iter func(*ast.Term) error) error {
		if len(operands) != 2 {
			return next(bctx, operands, iter)
		}
		sep, ok := operands[0].Value.(ast.String)
		arr, isArray := operands[1].Value.(*ast.Array)
		if !ok || !isArray || arr.Len() < 2 {
			return next(bctx, operands, iter)
		}
		n := len(sep) * (arr.Len() - 1)
		for i := range arr.Len() {
			s, ok := arr.Elem(i).Value.(ast.String)
			if !ok || n > maxConcat {
				return next(bctx, operands, iter)
			}
			n += len(s)
		}
		if n > maxConcat {
			return next(bctx, operands, iter)
		}
		var b strings.Builder
		b.Grow(n)
		for i := range arr.Len() {
			if i > 0 {
				b.WriteString(string(sep))
			}
			b.WriteString(string(arr.Elem(i).Value.(ast.String)))
		}
		return iter(ast.StringTerm(b.String()))
	}
}
