package bolt

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/permatrix/permatrix"
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
	_, err := Open(path)
	wantDamaged(t, err, "the file is empty (0 bytes)")
	_, err = Check(path)
	wantDamaged(t, err, "the file is empty")
	if fi, _ := os.Stat(path); fi.Size() != 0 {
		t.Fatal("the refused file was written")
	}
}

// Records that decode but do not hold together are damage: each edit
// below is made with bbolt itself, so the pages are sound.
func TestCheckRecords(t *testing.T) {
	cases := []struct {
		name string
		edit func(tx *bbolt.Tx) error
		want string
	}{
		{"empty subject", func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketAssignments).Put([]byte("a000000000001"), []byte(`{"id":"a000000000001","subject":"","system":"s","role":"r","scope":{"type":"service"}}`))
		}, `assignments: "a000000000001": invalid subject`},
		{"renamed field", func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketAssignments).Put([]byte("a000000000001"), []byte(`{"id":"a000000000001","subjecT":"user:ann","system":"s","role":"r","scope":{"type":"service"}}`))
		}, `not as permatrix writes it`},
		{"id differs from key", func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketAssignments).Put([]byte("a000000000001"), []byte(`{"id":"a000000000009","subject":"user:ann","system":"s","role":"r","scope":{"type":"service"}}`))
		}, `key "a000000000001" holds assignment "a000000000009"`},
		{"missing from index", func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketBySubject).DeleteBucket([]byte("user:ann"))
		}, `missing from the index of "user:ann"`},
		{"membership one way", func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketGroupsOf).DeleteBucket([]byte("ann"))
		}, `"ann" in "g1" is missing from groups_of`},
		{"project under another id", func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketProjects).Bucket([]byte("s")).Put([]byte("p1"), []byte(`{"system":"s","id":"p2"}`))
		}, `projects: "s"/"p1"`},
		{"unknown bucket", func(tx *bbolt.Tx) error { _, err := tx.CreateBucket([]byte("extra")); return err }, `unknown bucket "extra"`},
		{"bad revision", func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyRevision, []byte("x")) }, "meta: revision"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "store.db")
			db, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = db.Update(func(tx *Tx) error {
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
			_, err = Open(path)
			wantDamaged(t, err, c.want)
		})
	}
}
