package bolt

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

func wantDamaged(t *testing.T, err error, want string) {
	t.Helper()
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("want a *CorruptError, got %v", err)
	}
	if !strings.Contains(ce.Error(), want) {
		t.Fatalf("error lacks %q:\n%v", want, ce)
	}
}

// An existing empty file is not a new store.
func TestOpenRefusesEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path, Options{})
	wantDamaged(t, err, "the file is empty (0 bytes)")
	_, err = Check(path)
	wantDamaged(t, err, "the file is empty")
	if fi, _ := os.Stat(path); fi.Size() != 0 {
		t.Fatal("the refused file was written")
	}
}

// sealed is a value as the store writes it: checksummed with its key.
func sealed(key []byte, v string) []byte { return seal(key, []byte(v)) }

// Records that do not hold together are damage: each edit below is made
// with bbolt itself, so the pages are sound.
func TestCheckRecords(t *testing.T) {
	grant := store.GrantKey(permatrix.Assignment{Subject: "user:ann", System: "s", Role: "r", Scope: permatrix.ServiceScope})
	cases := []struct {
		name string
		edit func(tx *bbolt.Tx) error
		want string
	}{
		{"flipped value byte", func(tx *bbolt.Tx) error {
			kv := tx.Bucket(bucketKV)
			v := append([]byte(nil), kv.Get(grant)...)
			v[len(v)-3] ^= 0x20
			return kv.Put(grant, v)
		}, "checksum mismatch"},
		{"value without checksum", func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketKV).Put(grant, []byte("{}"))
		}, "checksum"},
		{"leaf that names another subject", func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketKV).Put(grant, sealed(grant, `{"kind":"role","role":"r","scope":{"type":"service"},"via":"user:bob","assignment":"a000000000001"}`))
		}, "leaf does not match its key"},
		{"grant without its index entry", func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketKV).Delete(store.Key("i", "assignments", "a000000000001"))
		}, "has no index entry"},
		{"membership one way", func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketKV).Delete(store.Key("i", "members", "g1", "ann"))
		}, "missing from the members index"},
		{"key outside the layout", func(tx *bbolt.Tx) error {
			k := store.Key("x", "y")
			return tx.Bucket(bucketKV).Put(k, sealed(k, "1"))
		}, "key outside the layout"},
		{"project that is not one", func(tx *bbolt.Tx) error {
			k := store.Key("d", "projects", "s", "p1")
			return tx.Bucket(bucketKV).Put(k, sealed(k, `[1]`))
		}, "not a project"},
		{"unknown bucket", func(tx *bbolt.Tx) error { _, err := tx.CreateBucket([]byte("extra")); return err }, `unknown bucket "extra"`},
		{"bad revision", func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyRevision, []byte("x")) }, "meta: revision"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "store.db")
			db, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = store.Update(context.Background(), db, func(tx *store.Tx) error {
				if err := tx.CreateAssignment(&permatrix.Assignment{Subject: "user:ann", System: "s", Role: "r", Scope: permatrix.ServiceScope}); err != nil {
					return err
				}
				if err := tx.AddMember(permatrix.Membership{Group: "g1", User: "ann"}); err != nil {
					return err
				}
				return tx.PutProject(permatrix.Project{System: "s", ID: "p1"})
			})
			if err != nil {
				t.Fatal(err)
			}
			db.Close()
			if _, err := Check(path); err != nil {
				t.Fatalf("sound store: %v", err)
			}
			rewrite(t, path, c.edit)
			_, err = Check(path)
			wantDamaged(t, err, c.want)
			_, err = Open(path, Options{})
			wantDamaged(t, err, c.want)
		})
	}
}

// rewrite edits a closed store file with bbolt directly.
func rewrite(t *testing.T, path string, edit func(tx *bbolt.Tx) error) {
	t.Helper()
	b, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Update(edit); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}
