package opa

import (
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// parseLeaf gives exactly what the general decoder gives, and refuses what
// it refuses.
func TestParseLeafLikeGeneral(t *testing.T) {
	for _, raw := range []string{
		`true`, `false`, `null`, `0`, `-1.5e3`, `"x"`, `""`, `"a\"b\\c\u00e9"`, `"é"`,
		`{"kind":"role","role":"admin","scope":{"type":"service"},"via":"user:alice","assignment":"a000000000001"}`,
		`{"permissions":["a","b"]}`, `{"permissions":[]}`, `{"created_by":"u","kind":""}`, `{}`, `[]`,
		` { "a" : [ 1 , { "b" : null } ] } `, `[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]`,
	} {
		got, err := parseLeaf([]byte(raw))
		want, werr := leafValue([]byte(raw))
		if (err != nil) != (werr != nil) || (err == nil && ast.Compare(got, want) != 0) {
			t.Errorf("%s: parseLeaf %v %v, general %v %v", raw, got, err, want, werr)
		}
	}
	for _, bad := range []string{`{`, `{"a"}`, `{"a":}`, `[1,]`, `"\x01"`, `tru`, `{"a":1}x`, `"\xff"`,
		`"x"]`, `1}`, `true x`, `{"a": 1}}`, `[]]`, `null ]`, `0 }`} {
		if _, err := parseLeaf([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzParseLeaf(f *testing.F) {
	for _, s := range []string{`{"kind":"role","role":"admin","scope":{"type":"service"},"via":"user:a","assignment":"a1"}`, `true`, `[1,"x",null]`, `"\u00e9\n"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := parseLeaf(raw)
		want, werr := leafValue(raw)
		if (err != nil) != (werr != nil) {
			t.Fatalf("%q: parseLeaf error %v, general %v", raw, err, werr)
		}
		if err == nil && ast.Compare(got, want) != 0 {
			t.Fatalf("%q: %v != %v", raw, got, want)
		}
	})
}

// TestParseLeafSharesTerms: a leaf's strings that the bundle's data or the
// store's layout hold are the shared terms, and the value is the same.
func TestParseLeafSharesTerms(t *testing.T) {
	ts := newTerms(ast.MustParseTerm(`{"systems": {"blueprism": {"permissions": ["view_dashboards", "import_tile"]}}}`).Value)
	raw := []byte(`{"permissions":["view_dashboards","other","import_tile"],"kind":"role"}`)
	got, err := parseLeafWith(raw, ts)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := leafValue(raw); ast.Compare(got, want) != 0 {
		t.Fatalf("parseLeafWith %v, general %v", got, want)
	}
	obj := got.(ast.Object)
	perms := obj.Get(ast.StringTerm("permissions")).Value.(*ast.Array)
	for i, shared := range []bool{true, false, true} {
		if (perms.Elem(i) == ts[string(perms.Elem(i).Value.(ast.String))]) != shared {
			t.Errorf("element %d (%v): shared %v, want %v", i, perms.Elem(i), !shared, shared)
		}
	}
	obj.Foreach(func(k, _ *ast.Term) {
		if k != ts[string(k.Value.(ast.String))] {
			t.Errorf("key %v is not the shared term", k)
		}
	})
	if layout := len(newTerms(nil)); len(ts) != layout+4 {
		t.Errorf("%d terms from the data, %d of the layout", len(ts), layout)
	}
}
