package opa

import (
	"reflect"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/permatrix/permatrix"
)

// decisionOf reads a decision from the vm's value as parseDecision reads
// it from the value's JSON: the same decision, or an error, for every
// shape, the policies' and others.
func TestDecisionOfIsParseDecision(t *testing.T) {
	for _, src := range []string{
		`{"allow": true, "reasons": [{"kind": "role", "role": "admin", "scope": {"type": "service"}, "via": "user:u1"}], "missing": []}`,
		`{"allow": false, "reasons": [], "missing": [{"kind": "permission", "permission": "p", "n": 1.5, "set": {"b", "a"}}, {"kind": "condition", "message": "m"}]}`,
		`{"allow": false, "reasons": [], "missing": {{"k": "b"}, {"k": "a"}, "not an object", 3}}`,
		`{"allow": true, "reasons": {{"x": 2}, {"x": 1}}, "missing": [], "revision": 42}`,
		`{"allow": false, "reasons": [], "missing": [], "errors": ["b", 1, "a", null]}`,
		`{"allow": false, "reasons": [], "missing": [], "errors": {"b", "a"}}`,
		`{"allow": true, "reasons": [{"x": 1}], "missing": [], "errors": ["invalid"]}`,
		`{"allow": false, "revision": 1e3}`,
		`{"allow": false, "revision": 99999999999999999999}`,
		`{"allow": false, "revision": "7"}`,
		`{"allow": "true", "reasons": []}`,
		`{"reasons": []}`,
		`{"allow": true, "reasons": "none", "missing": []}`,
		`{"allow": false, "other": 1, "missing": [{"a": 1}]}`,
		`{"allow": false, 1: "a", "missing": []}`,
		`{"allow": false, "reasons": [{1: "one", "k": {"n": [1, 2]}}], "missing": []}`,
		`{"allow": false}`,
		`["allow", true]`,
		`"allow"`,
	} {
		v := ast.MustParseTerm(src).Value
		want, wantErr := func() (any, error) {
			x, err := ast.JSONWithOpt(v, ast.JSONOpt{SortSets: true})
			if err != nil {
				return nil, err
			}
			return parseDecision(x)
		}()
		got, err := decisionOf(v, nil)
		if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
			t.Errorf("%s: error %v, want %v", src, err, wantErr)
			continue
		}
		if err == nil && !reflect.DeepEqual(any(got), want) {
			t.Errorf("%s:\n got %#v\nwant %#v", src, got, want)
		}
	}
}

// A decision read from the AST converts what it keeps, the elements of
// its lists, and little else: not the decision's object, its lists and
// fields as JSON first (a tenth of a decision's allocations at 1M).
func TestDecisionOfConvertsOnlyTheElements(t *testing.T) {
	v := ast.MustParseTerm(`{"allow": false, "reasons": [], "missing": [
		{"kind": "permission", "permission": "view_business_object_definition", "scope": {"id": "og458", "type": "object_group"}, "system": "blueprism"},
		{"kind": "condition", "message": "move_process_group needs context.target_group", "system": "blueprism"}]}`).Value
	elems := testing.AllocsPerRun(100, func() {
		v.(ast.Object).Get(ast.StringTerm("missing")).Value.(*ast.Array).Foreach(func(e *ast.Term) {
			if _, err := ast.JSONWithOpt(e.Value, ast.JSONOpt{}); err != nil {
				t.Fatal(err)
			}
		})
	})
	var d any
	allocs := testing.AllocsPerRun(100, func() {
		var err error
		if d, err = decisionOf(v, nil); err != nil {
			t.Fatal(err)
		}
	})
	// The Decision and its Missing slice.
	if allocs > elems+2 {
		t.Errorf("%v allocations a decision, %v of them its elements'", allocs, elems)
	}
	if d := d.(*permatrix.Decision); d.Allow || len(d.Reasons) != 0 || d.Reasons == nil || len(d.Missing) != 2 || d.Missing[1]["message"] == nil {
		t.Errorf("got %#v", d)
	}
}

// A decision's items are converted without boxing their keys (ast's JSON
// conversion boxes every key of an object, as a value, to unbox it as the
// map's key), and an object's fields are read without a callback made for
// each object (jsonReader): two missing items of three maps and eight
// string values take the maps (a map's header and its group) and the
// values, beside the Decision and its Missing slice (ast's: 25); the items
// are ast's conversion's, whatever their shape.
func TestDecisionItemsConvertedWithoutBoxingKeys(t *testing.T) {
	v := ast.MustParseTerm(`{"allow": false, "reasons": [], "missing": [
		{"kind": "permission", "permission": "view_business_object_definition", "scope": {"id": "og458", "type": "object_group"}, "system": "blueprism"},
		{"kind": "condition", "message": "move_process_group needs context.target_group", "system": "blueprism"}]}`).Value
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := decisionOf(v, nil); err != nil {
			t.Fatal(err)
		}
	})
	const maps, values = 3, 8
	if allocs > 2+2*maps+values {
		t.Errorf("%v allocations a decision of %d maps and %d string values", allocs, maps, values)
	}
	for _, s := range []string{
		`{"a": "b", "c": 1, "d": 1.5, "e": null, "f": true, "g": [1, "x", {"y": false}], "h": {"i": {"j": "k"}}}`,
		`{"s": {3, 1, "a", [1], {"z": 1}}, "n": 12345678901234567890, "e": [], "o": {}}`,
		`{1: "a", "b": 2}`,
		`{"a": {[1]: 2}}`,
		`{"a": {"b": {1, 2}, "c": [{"d": set()}]}}`,
	} {
		x := ast.MustParseTerm(s).Value
		want, werr := ast.JSONWithOpt(x, ast.JSONOpt{SortSets: true})
		got, err := jsonOf(x, nil)
		if !reflect.DeepEqual(got, want) || (err == nil) != (werr == nil) {
			t.Errorf("%s: got %#v, %v; ast's %#v, %v", s, got, err, want, werr)
		}
	}
}

// A decision's strings that the policy's data holds (the catalogs'
// systems, permissions, scope types; the leaves' fixed keys and values)
// are boxed once for all its decisions, not once per item: the two
// missing items above box only their id and their message.
func TestDecisionItemsShareBoxedStrings(t *testing.T) {
	v := ast.MustParseTerm(`{"allow": false, "reasons": [], "missing": [
		{"kind": "permission", "permission": "view_business_object_definition", "scope": {"id": "og458", "type": "object_group"}, "system": "blueprism"},
		{"kind": "condition", "message": "move_process_group needs context.target_group", "system": "blueprism"}]}`).Value
	ts := newTerms(ast.MustParseTerm(`{"systems": {"blueprism": {"permissions": ["view_business_object_definition"], "scope_types": ["object_group"], "kinds": ["condition"]}}}`).Value)
	var d *permatrix.Decision
	strs := ts.boxed()
	boxed := testing.AllocsPerRun(100, func() {
		var err error
		if d, err = decisionOf(v, strs); err != nil {
			t.Fatal(err)
		}
	})
	alone := testing.AllocsPerRun(100, func() {
		if _, err := decisionOf(v, nil); err != nil {
			t.Fatal(err)
		}
	})
	if want, _ := decisionOf(v, nil); !reflect.DeepEqual(d, want) {
		t.Errorf("got %#v, want %#v", d, want)
	}
	// Of the eight string values, six are the data's.
	if boxed > alone-6 {
		t.Errorf("%v allocations a decision sharing the data's strings, %v alone", boxed, alone)
	}
	t.Logf("%v allocations a decision sharing the data's strings, %v alone", boxed, alone)
}
