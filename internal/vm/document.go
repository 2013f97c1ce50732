package vm

import "github.com/open-policy-agent/opa/v1/ast"

// Document is a part of data read on demand: the data root, or a subtree
// too large to read whole for one lookup (permatrix's assignment store).
type Document interface {
	// Child is the document below key. It is a term, or, when the child is
	// itself read on demand, a Document; both nil when there is none. A
	// Document child need not exist: its Value says (nil), and the
	// statement that reads it is then undefined.
	Child(key *ast.Term) (*ast.Term, Document, error)
	// Value is the whole document; nil when it does not exist.
	Value() (*ast.Term, error)
}

// Members is a Document a scan can iterate member by member, not read
// whole: the keys of `some k, _ in x` read none of its values, and a value
// the scan's body looks into is read as its lookups ask (permatrix's store
// builds only the leaves and objects a policy reads).
type Members interface {
	Document
	// Members calls f with each key, in the order of the keys of the
	// document's value (ast's Iter), and its value: a term, or a Bound
	// Document that exists. It returns f's first error. ok is false, and f
	// is not called, when the document cannot: a scan reads it whole.
	// It fails where its Value would (a scan reads none of it then).
	Members(f func(k, t *ast.Term, d Document) error) (ok bool, err error)
}

// Bound is a Document Members handed out, or one below such: the value of
// a scan's variable, which is looked up as a term is (a key finds only
// itself: v[2] does not find "2" as data.x[2] does, topdown's storage
// keys), and whose Child answers exactly: a Document it hands out exists.
type Bound interface {
	Document
	Bound() bool
}

// bound says whether d is a Bound document.
func bound(d Document) bool {
	b, ok := d.(Bound)
	return ok && b.Bound()
}

// Value is a Document over a value in memory.
func Value(v ast.Value) Document { return valueDocument{ast.NewTerm(v)} }

type valueDocument struct{ t *ast.Term }

func (d valueDocument) Child(key *ast.Term) (*ast.Term, Document, error) {
	return dot(d.t, key), nil, nil
}

func (d valueDocument) Value() (*ast.Term, error) { return d.t, nil }

// dot is v[key]: an object's value, an array's element, a set's member;
// nil when there is none.
func dot(v, key *ast.Term) *ast.Term {
	switch x := v.Value.(type) {
	case ast.Object:
		return x.Get(key)
	case *ast.Array:
		n, ok := key.Value.(ast.Number)
		if !ok {
			return nil
		}
		i, ok := n.Int()
		if !ok || i < 0 || i >= x.Len() {
			return nil
		}
		return x.Elem(i)
	case ast.Set:
		if x.Contains(key) {
			return key
		}
	}
	return nil
}
