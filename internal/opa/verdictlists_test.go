package opa

import (
	"slices"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// TestVerdictListsAreJSONs: the verdict's lists read from the vm's value
// are those its JSON gives (stringList of the converted value's
// "violations" and "forbidden"), for every shape a bundle's verdict may
// have: sets (sorted) and arrays (in order) of strings and of other
// values, a key missing, another value than a list, a value that is not
// an object, an object with keys that are not strings, a value that does
// not convert (a var: the same error).
func TestVerdictListsAreJSONs(t *testing.T) {
	for _, src := range []string{
		`{"violations": set(), "forbidden": set()}`,
		`{"violations": {"b", "a", 1, "c", {"x": 1}}, "forbidden": ["z", 2, "y"]}`,
		`{"violations": ["b", "a"], "other": {"q"}}`,
		`{"forbidden": {"only"}}`,
		`{"violations": "no list", "forbidden": {"k": "v"}}`,
		`{}`,
		`["violations"]`,
		`"verdict"`,
		`{"violations": {"a"}, 1: "one", ["k"]: {"x"}}`,
		`{"violations": {"a", x}}`,
	} {
		v := ast.MustParseTerm(src).Value
		var wantV, wantF []string
		r, wantErr := ast.JSONWithOpt(v, ast.JSONOpt{SortSets: true})
		if wantErr == nil {
			m, _ := r.(map[string]any)
			wantV, wantF = stringList(m["violations"]), stringList(m["forbidden"])
		}
		gotV, gotF, err := verdictLists(v)
		if (err != nil) != (wantErr != nil) {
			t.Errorf("%s: error %v, JSON's %v", src, err, wantErr)
			continue
		}
		if !slices.Equal(gotV, wantV) || !slices.Equal(gotF, wantF) || (gotV == nil) != (wantV == nil) || (gotF == nil) != (wantF == nil) {
			t.Errorf("%s: %q, %q; by JSON %q, %q", src, gotV, gotF, wantV, wantF)
		}
	}
	allowed := ast.MustParseTerm(`{"violations": set(), "forbidden": set()}`).Value
	if n := testing.AllocsPerRun(100, func() { _, _, _ = verdictLists(allowed) }); n != 0 {
		t.Errorf("the lists of a verdict that allows allocate %v times", n)
	}
}
