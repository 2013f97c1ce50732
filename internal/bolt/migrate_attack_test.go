package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// TestMigratedFormat1ReadsBack: a format 1 file with assignments at
// project scopes (ids in two buckets, one shorter than a bucket's name) is
// migrated to format 3 when opened: its scope index kept by id bucket, read
// back by Get and Scan as the store wrote it, the check passing, the id
// counter and revision carried over.
func TestMigratedFormat1ReadsBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	as := []permatrix.Assignment{
		{ID: "a000000000001", Subject: "user:ann", System: "s", Role: "r", Scope: permatrix.Scope{Type: "project", ID: "p1"}},
		{ID: "a000000010001", Subject: "user:bob", System: "s", Role: "r", Scope: permatrix.Scope{Type: "project", ID: "p1"}},
		{ID: "a7", Subject: "user:cid", System: "s", Role: "r", Scope: permatrix.Scope{Type: "project", ID: "p1"}},
		{ID: "a000000000002", Subject: "user:ann", System: "t", Role: "r", Scope: permatrix.ServiceScope},
	}
	b, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Update(func(tx *bbolt.Tx) error {
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		if err := meta.Put(keyFormat, u64(1)); err != nil {
			return err
		}
		if err := meta.Put(keyRevision, u64(7)); err != nil {
			return err
		}
		ab, err := tx.CreateBucket([]byte("assignments"))
		if err != nil {
			return err
		}
		for _, a := range as {
			v, _ := json.Marshal(a)
			if err := ab.Put([]byte(a.ID), v); err != nil {
				return err
			}
		}
		if err := ab.SetSequence(10001); err != nil {
			return err
		}
		for _, name := range []string{"by_subject", "members", "groups_of", "roles", "projects"} {
			if _, err := tx.CreateBucket([]byte(name)); err != nil {
				return err
			}
		}
		return nil
	})
	b.Close()
	if err != nil {
		t.Fatal(err)
	}
	if r, err := Check(path); err != nil || r.Format != 1 || r.Assignments != len(as) {
		t.Fatalf("check of the format 1 file: %+v %v", r, err)
	}
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !db.bucketed || db.Revision() != 7 {
		t.Errorf("migrated file: bucketed %v, revision %d", db.bucketed, db.Revision())
	}
	if id, _ := db.NextID(context.Background()); id <= 10001 {
		t.Errorf("next id %d after a format 1 sequence of 10001", id)
	}
	snap, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	var keys [][]byte
	if err := snap.Scan(store.Prefix("d", "scopes", "s", "project:p1"), nil, func(k, _ []byte) error {
		keys = append(keys, bytes.Clone(k))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := [][]byte{
		store.Key("d", "scopes", "s", "project:p1", "a000000000001"),
		store.Key("d", "scopes", "s", "project:p1", "a000000010001"),
		store.Key("d", "scopes", "s", "project:p1", "a7"),
	}
	if len(keys) != len(want) {
		t.Fatalf("scope index after migration: %q, want %q", keys, want)
	}
	for i := range want {
		if !bytes.Equal(keys[i], want[i]) {
			t.Fatalf("scope index after migration: %q, want %q", keys, want)
		}
		if v, err := snap.Get(want[i]); err != nil || v == nil {
			t.Errorf("Get(%q) = %q, %v", want[i], v, err)
		}
	}
	snap.Close()
	db.Close()
	b, err = bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	_ = b.View(func(tx *bbolt.Tx) error {
		for _, k := range want {
			if tx.Bucket(bucketKV).Get(keptKey(t, k)) == nil || tx.Bucket(bucketKV).Get(k) != nil {
				t.Errorf("%q is not kept under its id's bucket", k)
			}
		}
		return nil
	})
	b.Close()
	if r, err := Check(path); err != nil || r.Format != 3 || r.Assignments != len(as) {
		t.Fatalf("check of the migrated file: %+v %v", r, err)
	}
}
