package opa

import (
	"fmt"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// defaultTerms are the terms a Policy of the default bundle shares.
func defaultTerms(t testing.TB) terms {
	b, err := ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	v, err := ast.InterfaceToValue(b.b.Data)
	if err != nil {
		t.Fatal(err)
	}
	ts := newTerms(v)
	if len(ts) <= len(newTerms(nil))+50 {
		t.Fatalf("only %d terms from the default bundle's data", len(ts))
	}
	return ts
}

// termsIntact fails unless every shared term is still its own string,
// without a location.
func termsIntact(t *testing.T, ts terms) {
	t.Helper()
	for s, term := range ts {
		if v, ok := term.Value.(ast.String); !ok || string(v) != s || term.Location != nil {
			t.Fatalf("shared term %q is now %v (location %v)", s, term, term.Location)
		}
	}
}

// FuzzParseLeafWithTerms: a leaf parsed with a Policy's shared terms (the
// default bundle's strings, and the input's own strings, so that every
// string of the leaf may be a shared one) is the value the general decoder
// gives, refused where it refuses, and leaves the shared terms as they
// were. `go test ./internal/opa -run '^$' -fuzz FuzzParseLeafWithTerms`.
func FuzzParseLeafWithTerms(f *testing.F) {
	for _, s := range []string{
		`{"kind":"role","role":"analyst","scope":{"type":"service"},"via":"user:a","assignment":"a1"}`,
		`{"permissions":["view_dashboards","import_tile","x"],"created_by":"u","name":"n","system":"blueprism"}`,
		`["service","project","\u0073ervice"]`, `"\u00e9\n"`, "\"\xed\xa0\x80\"", "\"\xc0\x80\"", "\"\xef\xbb\xbf\"",
		"\xef\xbb\xbf\"x\"", `{"role":"a","role":"b"}`, `"\u2028"`, `{"\u0000":1}`, "\"\x00\"",
	} {
		f.Add([]byte(s))
	}
	// A key twice in an object past the size scanned key by key.
	large := []byte(`{`)
	for i := range 20 {
		large = fmt.Appendf(large, `"k%d":%d,`, i, i)
	}
	f.Add(append(large, `"k3":"again"}`...))
	base := defaultTerms(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		want, werr := leafValue(raw)
		ts := terms{}
		for s, term := range base {
			ts[s] = term
		}
		if werr == nil {
			ast.WalkTerms(want, func(term *ast.Term) bool {
				if s, ok := term.Value.(ast.String); ok {
					ts[string(s)] = ast.StringTerm(string(s))
				}
				return false
			})
		}
		for _, table := range []terms{newTerms(nil), base, ts} {
			got, err := parseLeafWith(raw, table)
			if (err != nil) != (werr != nil) {
				t.Fatalf("%q: parseLeafWith error %v, general %v", raw, err, werr)
			}
			if err == nil && ast.Compare(got, want) != 0 {
				t.Fatalf("%q: parseLeafWith %v, general %v", raw, got, want)
			}
		}
		termsIntact(t, ts)
	})
}
