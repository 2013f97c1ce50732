package opa

import (
	"sync"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/permatrix/permatrix"
)

// TestScopeTermsSortedBeforeShared: a shared scope's object is read by
// evaluations at once, one iterating it (OPA sorts an object's keys in
// place the first time, under a sync.Once) while another copies it (a
// copy reads the keys as they lie): under -race, a scope term shared
// before its keys were sorted is a race. Its keys are sorted when kept.
func TestScopeTermsSortedBeforeShared(t *testing.T) {
	for n := range 50 {
		scope := permatrix.Scope{Type: "project", ID: "race" + string(rune('a'+n%26)) + string(rune('a'+n/26))}
		obj := scopeTerm(scope).Value.(ast.Object)
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Go(func() {
			<-start
			obj.Foreach(func(_, _ *ast.Term) {})
		})
		wg.Go(func() {
			<-start
			if c := obj.Copy(); c.Len() != 2 {
				t.Errorf("a copy of %v has %d keys", obj, c.Len())
			}
		})
		close(start)
		wg.Wait()
	}
}
