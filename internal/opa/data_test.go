package opa

import (
	"bytes"
	"context"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// data.store reads as GET /v1/export writes it (store.WriteDocument), so
// that the stock opa over an export decides as the server does: each
// index whole — an empty one too, which the export writes as {} — and
// data.store whole, through topdown's storage reads (readStore) and the
// vm's (storeDoc).
func TestStoreReadsAsExported(t *testing.T) {
	ctx := context.Background()
	full := store.NewMemory()
	_, err := store.Update(ctx, full, func(tx *store.Tx) error {
		a := permatrix.Assignment{Subject: "user:ann", System: "blueprism", Role: "r", Scope: permatrix.ServiceScope}
		if err := tx.PutRole(permatrix.Role{System: "blueprism", Name: "r", Permissions: []string{"p"}}); err != nil {
			return err
		}
		if err := tx.CreateAssignment(&a); err != nil {
			return err
		}
		return tx.AddMember(permatrix.Membership{Group: "ops", User: "ann"})
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, backend := range map[string]store.Backend{"empty": store.NewMemory(), "some": full} {
		snap, err := backend.View()
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := store.WriteDocument(&buf, snap); err != nil {
			t.Fatal(err)
		}
		var exported map[string]any
		if err := util.UnmarshalJSON(buf.Bytes(), &exported); err != nil {
			t.Fatal(err)
		}
		want := ast.MustInterfaceToValue(exported[permatrix.StoreRoot]).(ast.Object)
		root := &storeDoc{snap: snap}
		paths := [][]string{{}}
		for _, ix := range store.DocIndexes {
			paths = append(paths, []string{ix})
		}
		for _, path := range paths {
			wantV := ast.Value(want)
			if len(path) > 0 {
				wantV = want.Get(ast.StringTerm(path[0])).Value
			}
			got, err := readStore(snap, path)
			if err != nil || got == nil || ast.Compare(got, wantV) != 0 {
				t.Errorf("%s store data.store%v, storage read: %v %v, exported %v", name, path, got, err, wantV)
			}
			var doc interface {
				Value() (*ast.Term, error)
			} = root
			if len(path) > 0 {
				_, d, err := root.Child(ast.StringTerm(path[0]))
				if err != nil || d == nil {
					t.Fatalf("%s store data.store%v: %v %v", name, path, d, err)
				}
				doc = d
			}
			term, err := doc.Value()
			if err != nil || term == nil || ast.Compare(term.Value, wantV) != 0 {
				t.Errorf("%s store data.store%v, vm read: %v %v, exported %v", name, path, term, err, wantV)
			}
		}
		snap.Close()
	}
}
