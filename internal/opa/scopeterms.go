package opa

import (
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/permatrix/permatrix"
)

// scopeTerms are the terms of the scopes assignments in a vm's input are
// at, shared as serviceScope is (never changed: the vm writes into no
// input): an import's lines are at a few projects each, and a scope's
// object of its own was four allocations of half an import's lines. At
// most maxScopeTerms are kept, of ids of at most MaxIDBytes (some 3 MiB):
// full, they are dropped and kept anew (the scopes of the lines of the
// moment), whatever scopes the lines name.
var scopeTerms = struct {
	sync.RWMutex
	m map[permatrix.Scope]*ast.Term
}{m: map[permatrix.Scope]*ast.Term{}}

const maxScopeTerms = 4096

// scopeTerm is the shared term of scope, {"type": …, "id": …}.
func scopeTerm(scope permatrix.Scope) *ast.Term {
	scopeTerms.RLock()
	t, ok := scopeTerms.m[scope]
	scopeTerms.RUnlock()
	if ok {
		return t
	}
	// Its own terms, not a line's block: a block's kept would keep the
	// line's other terms.
	pairs := [2][2]*ast.Term{{ast.StringTerm("type"), ast.StringTerm(scope.Type)}}
	n := 1
	if scope.ID != "" {
		pairs[1] = [2]*ast.Term{ast.StringTerm("id"), ast.StringTerm(scope.ID)}
		n = 2
	}
	t = ast.NewTerm(ast.NewObject(pairs[:n]...))
	if len(scope.Type) > permatrix.MaxIDBytes || len(scope.ID) > permatrix.MaxIDBytes {
		return t // not a valid scope's (pdp validates first): not kept
	}
	// Its keys sorted before it is shared: OPA sorts them in place the
	// first time they are iterated, while a copy reads them as they lie —
	// two evaluations sharing an unsorted object raced
	// (TestScopeTermsSortedBeforeShared; vm's settle).
	t.Value.(ast.Object).Keys()
	scopeTerms.Lock()
	defer scopeTerms.Unlock()
	if len(scopeTerms.m) >= maxScopeTerms {
		clear(scopeTerms.m)
	}
	scopeTerms.m[scope] = t
	return t
}

// sharedScopes is how many scopes' terms are kept.
func sharedScopes() int {
	scopeTerms.RLock()
	defer scopeTerms.RUnlock()
	return len(scopeTerms.m)
}
