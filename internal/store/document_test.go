package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// TestWriteDocument holds the streamed export to a document built
// independently from the same records.
func TestWriteDocument(t *testing.T) {
	b := store.NewMemory()
	var as []permatrix.Assignment
	_, err := store.Update(context.Background(), b, func(tx *store.Tx) error {
		as = as[:0]
		for i := range 30 {
			a := permatrix.Assignment{Subject: fmt.Sprintf("user:u%d", i%4), System: fmt.Sprintf("s%d", i%3), Scope: permatrix.ServiceScope}
			if i%2 == 0 {
				a.Role = fmt.Sprintf("r%d", i%5)
			} else {
				a.Permission = fmt.Sprintf("p%d", i%7)
				a.Scope = permatrix.Scope{Type: "project", ID: fmt.Sprintf("x%d", i)}
			}
			if err := tx.CreateAssignment(&a); err != nil {
				return err
			}
			as = append(as, a)
		}
		if err := tx.AddMember(permatrix.Membership{Group: "g\"1", User: "u1"}); err != nil {
			return err
		}
		if err := tx.PutRole(permatrix.Role{System: "bp", Name: "ops", Permissions: []string{"a"}}); err != nil {
			return err
		}
		return tx.PutProject(permatrix.Project{System: "s1", ID: "p", CreatedBy: "u1", Kind: "assisted"})
	})
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := b.View()
	defer snap.Close()
	var buf bytes.Buffer
	if err := store.WriteDocument(&buf, snap); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, buf.Bytes())
	}
	grants, scopes := map[string]any{}, map[string]any{}
	nest := func(m map[string]any, k string) map[string]any {
		if _, ok := m[k]; !ok {
			m[k] = map[string]any{}
		}
		return m[k].(map[string]any)
	}
	for _, a := range as {
		kind, name := "permission", a.Permission
		if a.Role != "" {
			kind, name = "role", a.Role
		}
		leaf := map[string]any{"kind": kind, kind: name, "scope": map[string]any{"type": a.Scope.Type}, "via": a.Subject, "assignment": a.ID}
		if a.Scope.ID != "" {
			leaf["scope"].(map[string]any)["id"] = a.Scope.ID
		}
		nest(nest(nest(nest(grants, a.Subject), a.System), kind), name)[store.ScopeKey(a.Scope)] = leaf
		if !a.Scope.IsService() {
			nest(nest(scopes, a.System), store.ScopeKey(a.Scope))[a.ID] = true
		}
	}
	want := map[string]any{"store": map[string]any{
		"revision":    float64(snap.Revision()),
		"grants":      grants,
		"memberships": map[string]any{"u1": map[string]any{"g\"1": true}},
		"roles":       map[string]any{"bp": map[string]any{"ops": map[string]any{"permissions": []any{"a"}}}},
		"projects":    map[string]any{"s1": map[string]any{"p": map[string]any{"created_by": "u1", "kind": "assisted"}}},
		"scopes":      scopes,
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("document differs\ngot  %v\nwant %v", got, want)
	}
	// The document reads back into the same store.
	again, err := store.ReadDocument(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	snap2, _ := again.View()
	var buf2 bytes.Buffer
	store.WriteDocument(&buf2, snap2)
	if buf2.String() != buf.String() {
		t.Fatalf("round trip differs:\n%s\n%s", buf.String(), buf2.String())
	}
	if p := store.Verify(snap2, 5); len(p) > 0 {
		t.Fatalf("read back: %v", p)
	}
	// An empty store is a document with empty indexes.
	buf.Reset()
	store.WriteDocument(&buf, store.Empty(3))
	if buf.String() != `{"store":{"revision":3,"grants":{},"memberships":{},"projects":{},"roles":{},"scopes":{}}}`+"\n" {
		t.Fatalf("empty: %s", buf.String())
	}
}

// failingWriter fails every write after the first n bytes.
type failingWriter struct{ n int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.n < len(p) {
		return 0, fmt.Errorf("the reader went away")
	}
	f.n -= len(p)
	return len(p), nil
}

// countingSnapshot counts the keys its scans visit.
type countingSnapshot struct {
	store.Snapshot
	keys int
}

func (c *countingSnapshot) Scan(prefix, after []byte, fn func(k, v []byte) error) error {
	return c.Snapshot.Scan(prefix, after, func(k, v []byte) error { c.keys++; return fn(k, v) })
}

// TestWriteDocumentStopsWhenTheWriterFails: an export whose client went
// away stops reading the store at the first failed write, and says so; it
// read every key to the end before (noticed by the import attack).
func TestWriteDocumentStopsWhenTheWriterFails(t *testing.T) {
	b := store.NewMemory()
	_, err := store.Update(context.Background(), b, func(tx *store.Tx) error {
		for i := range 20000 {
			a := permatrix.Assignment{Subject: fmt.Sprintf("user:u%d", i), System: "s", Role: "r", Scope: permatrix.ServiceScope}
			if err := tx.CreateAssignment(&a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := b.View()
	defer snap.Close()
	all := &countingSnapshot{Snapshot: snap}
	if err := store.WriteDocument(&bytes.Buffer{}, all); err != nil {
		t.Fatal(err)
	}
	cut := &countingSnapshot{Snapshot: snap}
	if err := store.WriteDocument(&failingWriter{n: 1 << 10}, cut); err == nil {
		t.Fatal("the failed write was not reported")
	}
	if cut.keys*4 > all.keys {
		t.Fatalf("the export read %d of the store's %d keys after its writer failed at 1 KiB", cut.keys, all.keys)
	}
}
