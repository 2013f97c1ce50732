package bolt

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// TestCheckDamagedBucketedScopeKeys: in a file of format 3, a scope index
// key of the wrong shape, in a bucket not its id's, kept unbucketed, or
// with a bad checksum is damage, found by store check (Check, which lists
// every record) and by the open check (store.Verify's scan) alike.
func TestCheckDamagedBucketedScopeKeys(t *testing.T) {
	a := permatrix.Assignment{Subject: "user:ann", System: "s", Role: "r", Scope: permatrix.Scope{Type: "project", ID: "p1"}}
	var id string
	scopeKey := func() []byte { return store.Key("d", "scopes", "s", "project:p1", id) }
	move := func(to func(k []byte) []byte) func(tx *bbolt.Tx) error {
		return func(tx *bbolt.Tx) error {
			kv := tx.Bucket(bucketKV)
			at := keptKey(t, scopeKey())
			v := bytes.Clone(kv.Get(at))
			if v == nil {
				t.Fatalf("no %q", at)
			}
			if err := kv.Delete(at); err != nil {
				return err
			}
			return kv.Put(to(at), v)
		}
	}
	put := func(k []byte, sealedWith func() []byte) func(tx *bbolt.Tx) error {
		return func(tx *bbolt.Tx) error { return tx.Bucket(bucketKV).Put(k, sealed(sealedWith(), "true")) }
	}
	cases := []struct {
		name string
		edit func(tx *bbolt.Tx) error
		want string
	}{
		{"in another bucket", move(func(k []byte) []byte {
			return bytes.Replace(k, []byte("\x00a00000000\x00"), []byte("\x00a00000001\x00"), 1)
		}), "not of its layout"},
		{"in an empty bucket", move(func(k []byte) []byte {
			return bytes.Replace(k, []byte("\x00a00000000\x00"), []byte("\x00\x00"), 1)
		}), "not of its layout"},
		{"kept unbucketed", move(func([]byte) []byte { return scopeKey() }), "not of its layout"},
		{"sealed with its bucketed key", func(tx *bbolt.Tx) error {
			at := keptKey(t, scopeKey())
			return tx.Bucket(bucketKV).Put(at, sealed(at, "true"))
		}, "checksum mismatch"},
		{"flipped value byte", func(tx *bbolt.Tx) error {
			kv := tx.Bucket(bucketKV)
			at := keptKey(t, scopeKey())
			v := bytes.Clone(kv.Get(at))
			v[len(v)-1] ^= 1
			return kv.Put(at, v)
		}, "checksum mismatch"},
		{"system without its separator", put([]byte("d\x00scopes\x00s"), func() []byte { return []byte("d\x00scopes\x00s") }), "not of its layout"},
		{"index's prefix itself", put([]byte("d\x00scopes\x00"), func() []byte { return []byte("d\x00scopes\x00") }), "not of its layout"},
		{"a segment more", put(store.Key("d", "scopes", "s", "a", "b", "c"), func() []byte { return store.Key("d", "scopes", "s", "a", "b", "c") }), "not of its layout"},
		{"an entry of no assignment", func(tx *bbolt.Tx) error {
			k := store.Key("d", "scopes", "s", "project:p1", "a000000000009")
			return tx.Bucket(bucketKV).Put(keptKey(t, k), sealed(k, "true"))
		}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "store.db")
			db, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			a := a
			if _, err := store.Update(context.Background(), db, func(tx *store.Tx) error { return tx.CreateAssignment(&a) }); err != nil {
				t.Fatal(err)
			}
			id = a.ID
			db.Close()
			if r, err := Check(path); err != nil || r.Format != 3 {
				t.Fatalf("sound store: %+v %v", r, err)
			}
			rewrite(t, path, c.edit)
			_, err = Check(path)
			wantDamaged(t, err, c.want)
			db, err = Open(path, Options{})
			if err == nil {
				db.Close()
			}
			wantDamaged(t, err, c.want)
		})
	}
}
