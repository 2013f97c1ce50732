package opa

import (
	"slices"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// TestVerdictListsAreJSONs: the verdict's lists read from the vm's value
// are those its JSON gives (verdictOfJSON of the converted value), errors
// included, for every shape a bundle's verdict may have: sets (sorted) and
// arrays (in order) of strings, and of other values (an error: a refusal
// of another shape is never dropped), a key missing, another value than a
// list, a value that is not an object, an object with keys that are not
// strings, a value that does not convert (a var: the same error).
func TestVerdictListsAreJSONs(t *testing.T) {
	for _, src := range []string{
		`{"violations": set(), "forbidden": set()}`,
		`{"violations": {"b", "a", "c"}, "forbidden": ["z", "y"]}`,
		`{"violations": {"b", "a", 1, "c", {"x": 1}}, "forbidden": ["z", 2, "y"]}`,
		`{"violations": set(), "forbidden": ["z", 2, "y"]}`,
		`{"violations": ["b", "a"], "other": {"q"}}`,
		`{"violations": ["b", "a"], "forbidden": [], "other": {"q"}}`,
		`{"forbidden": {"only"}}`,
		`{"violations": "no list", "forbidden": {"k": "v"}}`,
		`{"violations": [], "forbidden": {"k": "v"}}`,
		`{"violations": [], "forbidden": null}`,
		`{}`,
		`["violations"]`,
		`"verdict"`,
		`{"violations": {"a"}, 1: "one", ["k"]: {"x"}}`,
		`{"violations": {"a"}, "forbidden": set(), 1: "one"}`,
		`{"violations": {"a", x}}`,
	} {
		v := ast.MustParseTerm(src).Value
		var wantV, wantF []string
		r, wantErr := ast.JSONWithOpt(v, ast.JSONOpt{SortSets: true})
		if wantErr == nil {
			wantV, wantF, wantErr = verdictOfJSON(r)
		}
		gotV, gotF, err := verdictLists(v)
		if (err != nil) != (wantErr != nil) || err != nil && err.Error() != wantErr.Error() {
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
