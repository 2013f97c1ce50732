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
