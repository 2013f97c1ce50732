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

// TestScopeIndexKeptByBucketFormat2AsItIs: a new file (format 3) keeps a
// scope index key under its id's bucket, and reads it back as the store
// wrote it; a file of format 2 (its keys the store's) is read as it is,
// keeps new keys as they are and stays format 2; the check passes both.
func TestScopeIndexKeptByBucketFormat2AsItIs(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "permatrix.db")
	assign := func(db *DB, user string) []byte {
		t.Helper()
		a := permatrix.Assignment{Subject: "user:" + user, System: "sys", Role: "r", Scope: permatrix.Scope{Type: "project", ID: "p1"}}
		if _, err := store.Update(ctx, db, func(tx *store.Tx) error { return tx.CreateAssignment(&a) }); err != nil {
			t.Fatal(err)
		}
		return store.Key("d", "scopes", "sys", "project:p1", a.ID)
	}
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	first := assign(db, "u1")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	raw := func(f func(kv, meta *bbolt.Bucket) error) {
		t.Helper()
		b, err := bbolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if err := b.Update(func(btx *bbolt.Tx) error { return f(btx.Bucket(bucketKV), btx.Bucket(bucketMeta)) }); err != nil {
			t.Fatal(err)
		}
	}
	bucketedFirst := keptKey(t, first)
	if bytes.Equal(bucketedFirst, first) {
		t.Fatalf("storedKey(%q) is the key itself", first)
	}
	raw(func(kv, meta *bbolt.Bucket) error {
		if format, _ := getU64(meta, keyFormat); format != 3 {
			t.Errorf("a new file is of format %d, want 3", format)
		}
		if kv.Get(bucketedFirst) == nil || kv.Get(first) != nil {
			t.Errorf("the scope index key is not kept under its id's bucket (%q)", bucketedFirst)
		}
		// Back to format 2: the store's keys as they are.
		v := bytes.Clone(kv.Get(bucketedFirst))
		if err := kv.Delete(bucketedFirst); err != nil {
			return err
		}
		if err := kv.Put(first, v); err != nil {
			return err
		}
		return meta.Put(keyFormat, u64(2))
	})
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("a file of format 2: %v", err)
	}
	if db.bucketed {
		t.Error("a file of format 2 is read as bucketed")
	}
	second := assign(db, "u2")
	snap, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	var keys [][]byte
	err = snap.Scan(store.Prefix("d", "scopes", "sys", "project:p1"), nil, func(k, v []byte) error {
		keys = append(keys, bytes.Clone(k))
		return nil
	})
	snap.Close()
	if err != nil || len(keys) != 2 || !bytes.Equal(keys[0], first) || !bytes.Equal(keys[1], second) {
		t.Fatalf("format 2's scope index reads %q (%v), want %q and %q", keys, err, first, second)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	raw(func(kv, meta *bbolt.Bucket) error {
		if format, _ := getU64(meta, keyFormat); format != 2 {
			t.Errorf("the file of format 2 is now of format %d", format)
		}
		if kv.Get(second) == nil {
			t.Errorf("a key written into a file of format 2 is not kept as the store's key %q", second)
		}
		return nil
	})
	r, err := Check(path)
	if err != nil || r.Format != 2 {
		t.Fatalf("check of the format 2 file: %+v %v", r, err)
	}
}

// keptKey is the key a format 3 file keeps key under (storedKey); key
// must be one a format 3 file keeps.
func keptKey(t *testing.T, key []byte) []byte {
	t.Helper()
	at, err := storedKey(true, key)
	if err != nil {
		t.Fatal(err)
	}
	return at
}
