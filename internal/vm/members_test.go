package vm_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/permatrix/permatrix/internal/vm"
)

// membersDocument is data read on demand whose objects a scan can iterate
// member by member (vm.Members): an object's values it hands out are
// Bound documents, the values of a scan's variable. reads, when set,
// records the paths read whole.
type membersDocument struct {
	t     *ast.Term // nil: it does not exist
	path  string
	reads *[]string
	bound bool
}

func (d membersDocument) Child(key *ast.Term) (*ast.Term, vm.Document, error) {
	var child *ast.Term
	obj := d.t == nil
	if d.t != nil {
		child, _, _ = vm.Value(d.t.Value).Child(key)
		_, obj = d.t.Value.(ast.Object)
	}
	path := d.path + "." + strings.Trim(key.String(), `"`)
	if d.bound {
		// Exactly: a Document handed out exists.
		if child == nil {
			return nil, nil, nil
		}
		if _, ok := child.Value.(ast.Object); ok {
			return nil, membersDocument{child, path, d.reads, true}, nil
		}
		return child, nil, nil
	}
	if _, str := key.Value.(ast.String); str && obj {
		return nil, membersDocument{child, path, d.reads, false}, nil
	}
	return child, nil, nil
}

func (d membersDocument) Value() (*ast.Term, error) {
	if d.reads != nil {
		*d.reads = append(*d.reads, "data"+d.path)
	}
	return d.t, nil
}

func (d membersDocument) Bound() bool { return d.bound }

func (d membersDocument) Members(f func(k, t *ast.Term, d vm.Document) error) (bool, error) {
	if d.t == nil {
		return false, nil
	}
	obj, ok := d.t.Value.(ast.Object)
	if !ok {
		return false, nil
	}
	return true, obj.Iter(func(k, v *ast.Term) error {
		if _, ok := v.Value.(ast.Object); ok {
			s, _ := k.Value.(ast.String)
			return f(k, nil, membersDocument{v, d.path + "." + string(s), d.reads, true})
		}
		return f(k, v, nil)
	})
}

// A scan over data that can be iterated member by member reads none of it
// whole: the keys of `some k, _ in data.a` read no value, and a value's
// lookups read only what they look up; a value used whole is read alone.
// A bound value is looked up as a term is (v[2] does not find "2", as
// data.a.n[2] does), and every answer is the one of data in memory.
func TestScansReadMembersOnDemand(t *testing.T) {
	module := `package test

keys := [k | some k, _ in data.a]

xs := [v.x | some _, v in data.a]

whole := [v | some k, v in data.a; k != "n"]

bound := [v[2] | some k, v in data.a; k == "n"]

forced := [v[2] | some k, v in data.a; k == "n"; count(v) == 1]

stored := data.a.n[2]

nested := [[k, j] | some k, v in data.a; some j, _ in v]
`
	data := ast.MustParseTerm(`{"a": {"b": {"x": 1}, "c": {"x": 2, "y": {"z": 3}}, "n": {"2": "two"}}}`)
	for _, c := range []struct {
		rule  string
		reads []string
	}{
		{"keys", nil},
		{"xs", nil},
		{"whole", []string{"data.a.b", "data.a.c"}},
		{"bound", nil},
		{"forced", []string{"data.a.n"}},
		{"stored", []string{"data.a.n.2"}}, // a leaf, looked up (the document's)
		{"nested", nil},
	} {
		p := plan(t, "data.test."+c.rule+" = x", module)
		want, err := p.Results(context.Background(), nil, vm.Value(data.Value))
		if err != nil {
			t.Fatal(err)
		}
		var reads []string
		got, err := p.Results(context.Background(), nil, membersDocument{t: data, reads: &reads})
		if err != nil {
			t.Fatalf("%s: %v", c.rule, err)
		}
		if len(got) != len(want) || (len(got) == 1 && got[0].Compare(want[0]) != 0) {
			t.Errorf("%s: got %v, want %v", c.rule, got, want)
		}
		if !slices.Equal(reads, c.reads) {
			t.Errorf("%s: read whole %v, want %v", c.rule, reads, c.reads)
		}
	}
}
