package vm_test

import (
	"context"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/permatrix/permatrix/internal/vm"
)

// A Program sharing strings evaluates each string constant of its plan
// as the caller's term (so a lookup of a constant key meets an input's or
// data's key itself, by pointer): the values are the same as without, the
// constants are the caller's terms, and a term of another string is not
// taken.
func TestSharingStrings(t *testing.T) {
	const module = `package test

p := {"subject": input.subject, "kind": "role", "name": data.d.name, "lit": "subject", "other": "other"}
`
	const query = "x = data.test.p"
	input := ast.MustParseTerm(`{"subject": "u1"}`).Value
	data := ast.MustParseTerm(`{"d": {"name": "n"}}`).Value
	terms := map[string]*ast.Term{"subject": ast.StringTerm("subject"), "role": ast.StringTerm("role"), "other": ast.StringTerm("not other")}
	plain := plan(t, query, module)
	shared := plain.SharingStrings(func(s string) *ast.Term { return terms[s] })
	value := func(rs []ast.Object, err error) ast.Object {
		t.Helper()
		if err != nil || len(rs) != 1 {
			t.Fatalf("%d results, %v", len(rs), err)
		}
		return rs[0].Get(ast.StringTerm("x")).Value.(ast.Object)
	}
	got := value(shared.Results(context.Background(), input, vm.Value(data)))
	want := value(plain.Results(context.Background(), input, vm.Value(data)))
	if got.Compare(want) != 0 || asJSON(t, ast.NewTerm(got)) != topdownJSON(t, module, input, data) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got.Get(ast.StringTerm("lit")) != terms["subject"] || got.Get(ast.StringTerm("kind")) != terms["role"] {
		t.Errorf("the constants are not the shared terms: %v", got)
	}
	if got.Get(ast.StringTerm("other")) == terms["other"] {
		t.Errorf("a term of another string was taken for a constant")
	}
	if want.Get(ast.StringTerm("lit")) == terms["subject"] {
		t.Errorf("the plain Program's constants changed")
	}
	// Its keys are the shared terms too: the object's key "subject" is the
	// term the input's own key would be.
	for _, k := range got.Keys() {
		if s := string(k.Value.(ast.String)); s == "subject" && k != terms["subject"] {
			t.Errorf("key %s is not the shared term", s)
		}
	}
}
