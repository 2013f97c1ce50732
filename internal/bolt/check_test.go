package bolt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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

// A path that is not a regular file — a directory, a FIFO, a device — is not
// a damaged store: restoring a backup over it is not the fix. It is
// refused as the wrong path (EUNAVAILABLE, the exit code of "cannot
// check"), naming what it is, and left as it is; a FIFO is never opened
// (that would block until a writer came).
func TestOpenRefusesNonRegularFiles(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "dir")
	fifo := filepath.Join(dir, "fifo")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for path, what := range map[string]string{sub: "is a directory", fifo: "is a named pipe", os.DevNull: "is a device"} {
		for name, open := range map[string]func() error{
			"Open": func() error {
				db, err := Open(path, Options{})
				if err == nil {
					db.Close()
				}
				return err
			},
			"Check": func() error { _, err := Check(path); return err },
		} {
			err := open()
			var ce *CorruptError
			if err == nil || errors.As(err, &ce) || permatrix.ErrorCode(err) != permatrix.EUNAVAILABLE ||
				!strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), what) {
				t.Errorf("%s(%s): want an unavailable error naming the path and saying it %s, got %v", name, path, what, err)
			}
		}
	}
}

// A store opened read-only writes nothing to its file (check --db and
// replay --db read stores on read-only file systems), refuses commits,
// and refuses a format 1 file it would have to migrate first.
func TestOpenReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	key := store.Key("d", "roles", "s", "r")
	if _, err := db.Commit(context.Background(), &store.Batch{Base: db.Revision(), Reads: [][]byte{store.UnitOf(key)}, Ops: []store.Op{{Key: key, Value: []byte(`{"permissions":[]}`)}}}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	before, _ := os.ReadFile(path)
	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if ro.Revision() != 1 {
		t.Fatalf("revision %d", ro.Revision())
	}
	if _, err := ro.Commit(context.Background(), &store.Batch{Base: 1, Ops: []store.Op{{Key: key}}}); permatrix.ErrorCode(err) != permatrix.EUNAVAILABLE {
		t.Fatalf("a commit to a read-only store: %v", err)
	}
	ro.Close()
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Fatal("opening read-only wrote the file")
	}

	v1 := filepath.Join(t.TempDir(), "v1.db")
	writeV1(t, v1, 0)
	if _, err := Open(v1, Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "format 1") {
		t.Fatalf("a format 1 file opened read-only: %v", err)
	}
	db, err = Open(v1, Options{})
	if err != nil {
		t.Fatalf("migrating: %v", err)
	}
	db.Close()
	if ro, err = Open(v1, Options{ReadOnly: true}); err != nil {
		t.Fatalf("after its migration: %v", err)
	}
	ro.Close()
}

// writeV1 writes a store of format 1 holding n assignments.
func writeV1(t *testing.T, path string, n int) {
	t.Helper()
	b, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Update(func(tx *bbolt.Tx) error {
		meta, _ := tx.CreateBucket(bucketMeta)
		meta.Put(keyFormat, u64(1))
		meta.Put(keyRevision, u64(uint64(n)))
		as, err := tx.CreateBucket([]byte("assignments"))
		for i := 1; i <= n && err == nil; i++ {
			id := fmt.Sprintf("a%012d", i)
			a := permatrix.Assignment{ID: id, Subject: fmt.Sprintf("user:u%d", i), System: "s", Role: "r", Scope: permatrix.ServiceScope}
			v, _ := json.Marshal(a)
			err = as.Put([]byte(id), v)
		}
		return err
	})
	b.Close()
	if err != nil {
		t.Fatal(err)
	}
}

// A store that needs a write to be opened (format 1's migration) on a full
// disk is not damaged: the open fails with ESTORAGE saying the disk refused
// the write (exit 2), not as damage (exit 3, "restore it from a backup",
// while store check found it sound), and the file is as it was.
func TestOpenOnAFullDisk(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=2m,mode=0700"); err != nil {
		t.Skipf("mounting a tmpfs needs root (CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	path := filepath.Join(dir, "v1.db")
	writeV1(t, path, 200)
	filler, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = filler.Write(make([]byte, 4096))
	}
	filler.Close()
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling the disk: %v", err)
	}
	before, _ := os.ReadFile(path)
	_, err = Open(path, Options{})
	var ce *CorruptError
	if err == nil || errors.As(err, &ce) || permatrix.ErrorCode(err) != permatrix.ESTORAGE ||
		!strings.Contains(err.Error(), "no space left") || !strings.Contains(err.Error(), path) {
		t.Fatalf("want a storage error naming the file and the full disk, got %v", err)
	}
	// bbolt may have written pages of the commit before the disk refused
	// one; its meta pages, which say what the file holds, are as they were.
	after, _ := os.ReadFile(path)
	if len(after) < 2*4096 || string(after[:2*4096]) != string(before[:2*4096]) {
		t.Fatal("the refused open changed the meta pages")
	}
	if r, err := Check(path); err != nil || r.Format != 1 || r.Assignments != 200 {
		t.Fatalf("the file is no longer the sound format 1 store it was: %+v %v", r, err)
	}
	os.Remove(filler.Name())
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("with room again: %v", err)
	}
	db.Close()
}

// A new store that the disk has no room for is not left behind as an
// empty (or half-written) file: the next start, with room again, refused
// that as a damaged store (exit 3, "restore it from a backup") until it was
// deleted by hand.
func TestOpenNewStoreOnAFullDisk(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m,mode=0700"); err != nil {
		t.Skipf("mounting a tmpfs needs root (CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	filler, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = filler.Write(make([]byte, 4096))
	}
	filler.Close()
	path := filepath.Join(dir, "new.db")
	if db, err := Open(path, Options{}); err == nil {
		db.Close()
		t.Fatal("a new store opened on a full disk")
	} else if !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("want the full disk named, got %v", err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Fatal("the failed open left a file behind")
	}
	os.Remove(filler.Name())
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("with room again: %v", err)
	}
	db.Close()
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
		// A value followed by stray bytes (the leaf parsers of internal/opa
		// refuse them too, where a damaged leaf is read).
		{"grant with bytes after its value", func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketKV).Put(grant, sealed(grant, `{"kind":"role","role":"r","scope":{"type":"service"},"via":"user:ann","assignment":"a000000000001"}]`))
		}, "after top-level value"},
		{"membership with bytes after its value", func(tx *bbolt.Tx) error {
			k := store.Key("d", "memberships", "ann", "g1")
			return tx.Bucket(bucketKV).Put(k, sealed(k, "true x"))
		}, "membership"},
		{"project with bytes after its value", func(tx *bbolt.Tx) error {
			k := store.Key("d", "projects", "s", "p1")
			return tx.Bucket(bucketKV).Put(k, sealed(k, `{}}`))
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
