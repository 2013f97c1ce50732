package bolt

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/permatrix/permatrix"
)

// Subprocess tests re-execute the test binary; TestMain turns it into a
// helper when helperEnv is set, before any test runs.
const (
	helperEnv     = "PERMATRIX_BOLT_HELPER"
	helperPathEnv = "PERMATRIX_BOLT_PATH"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helper(mode, os.Getenv(helperPathEnv)))
	}
	os.Exit(m.Run())
}

// helper is the child process. Modes:
//
//	open:   try to open the store; print "ok", or the error code, the
//	        message and the time Open took; exit 0 or 3
//	writer: create assignments one Update at a time, printing
//	        "<revision> <id>" after each Update has returned, until killed
//	        (bounded in count and time so a lost parent doesn't leave it)
func helper(mode, path string) int {
	switch mode {
	case "open":
		start := time.Now()
		db, err := Open(path)
		if err != nil {
			fmt.Printf("%s\n%s\n%d\n", permatrix.ErrorCode(err), err, time.Since(start).Milliseconds())
			return 3
		}
		db.Close()
		fmt.Println("ok")
		return 0
	case "writer":
		db, err := Open(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		deadline := time.Now().Add(60 * time.Second)
		for i := 0; i < 100000 && time.Now().Before(deadline); i++ {
			a := permatrix.Assignment{Subject: fmt.Sprintf("user:u%d", i), System: "sys", Role: "viewer", Scope: permatrix.ServiceScope}
			rev, _, err := db.Update(func(tx *Tx) error { return tx.CreateAssignment(&a) })
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			// One write(2) per line: a line is either whole or absent.
			fmt.Fprintf(os.Stdout, "%d %s %s\n", rev, a.ID, a.Subject)
		}
		return 0
	}
	fmt.Fprintf(os.Stderr, "unknown helper mode %q\n", mode)
	return 2
}

func helperCmd(t *testing.T, mode, path string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperPathEnv+"="+path)
	return cmd
}

func openT(t *testing.T, path string) *DB {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "store.db")
	}
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func update(t *testing.T, db *DB, fn func(tx *Tx) error) (uint64, []permatrix.Patch) {
	t.Helper()
	rev, patches, err := db.Update(fn)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	return rev, patches
}

func view(t *testing.T, db *DB, fn func(tx *Tx) error) {
	t.Helper()
	if err := db.View(fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := permatrix.ErrorCode(err); got != code {
		t.Fatalf("error %v: code %q, want %q", err, got, code)
	}
}

func asg(subject, system, role string, scope permatrix.Scope) permatrix.Assignment {
	return permatrix.Assignment{Subject: subject, System: system, Role: role, Scope: scope}
}

func TestOpenNew(t *testing.T) {
	db := openT(t, "")
	if db.Revision() != 0 {
		t.Fatalf("revision %d, want 0", db.Revision())
	}
	s, err := db.State()
	if err != nil {
		t.Fatal(err)
	}
	if s.Revision != 0 || len(s.Assignments)+len(s.Memberships)+len(s.Roles)+len(s.Projects) != 0 {
		t.Fatalf("new store not empty: %+v", s)
	}
	if fi, err := os.Stat(db.Path()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("store file: %v, %v", fi, err)
	}
}

func TestAssignmentCRUD(t *testing.T) {
	db := openT(t, "")
	a := asg("user:alice", "sys", "admin", permatrix.ServiceScope)
	b := permatrix.Assignment{Subject: "group:ops", System: "sys", Permission: "project.read", Scope: permatrix.Scope{Type: "project", ID: "p1"}}
	rev, patches := update(t, db, func(tx *Tx) error {
		if err := tx.CreateAssignment(&a); err != nil {
			return err
		}
		return tx.CreateAssignment(&b)
	})
	if a.ID != "a000000000001" || b.ID != "a000000000002" {
		t.Fatalf("ids %q %q", a.ID, b.ID)
	}
	wantPatches := []permatrix.Patch{
		{Path: []string{"subjects", "user:alice", a.ID}, Value: a.Value()},
		{Path: []string{"subjects", "group:ops", b.ID}, Value: b.Value()},
		{Path: []string{"revision"}, Value: uint64(1)},
	}
	if rev != 1 || !reflect.DeepEqual(patches, wantPatches) {
		t.Fatalf("rev %d patches %#v", rev, patches)
	}

	view(t, db, func(tx *Tx) error {
		got, err := tx.Assignment(b.ID)
		if err != nil || got != b {
			t.Fatalf("Assignment: %+v, %v", got, err)
		}
		_, err = tx.Assignment("a999")
		wantCode(t, err, permatrix.ENOTFOUND)
		return nil
	})

	// An explicit id that is taken by a different grant conflicts.
	c := asg("user:bob", "sys", "admin", permatrix.ServiceScope)
	c.ID = a.ID
	_, _, err := db.Update(func(tx *Tx) error { return tx.CreateAssignment(&c) })
	wantCode(t, err, permatrix.ECONFLICT)

	// An explicit free id is kept, and generation skips it afterwards.
	c.ID = "a000000000003"
	d := asg("user:carol", "sys", "admin", permatrix.ServiceScope)
	update(t, db, func(tx *Tx) error {
		if err := tx.CreateAssignment(&c); err != nil {
			return err
		}
		return tx.CreateAssignment(&d)
	})
	if c.ID != "a000000000003" || d.ID != "a000000000004" {
		t.Fatalf("ids %q %q", c.ID, d.ID)
	}

	rev, patches = update(t, db, func(tx *Tx) error {
		got, err := tx.DeleteAssignment(a.ID)
		if got != a {
			t.Errorf("deleted %+v, want %+v", got, a)
		}
		return err
	})
	wantPatches = []permatrix.Patch{
		{Path: []string{"subjects", "user:alice", a.ID}},
		{Path: []string{"revision"}, Value: rev},
	}
	if rev != 3 || !reflect.DeepEqual(patches, wantPatches) {
		t.Fatalf("rev %d patches %#v", rev, patches)
	}
	_, _, err = db.Update(func(tx *Tx) error { _, err := tx.DeleteAssignment(a.ID); return err })
	wantCode(t, err, permatrix.ENOTFOUND)

	// Deleting never recycles a generated id.
	e := asg("user:alice", "sys", "admin", permatrix.ServiceScope)
	update(t, db, func(tx *Tx) error { return tx.CreateAssignment(&e) })
	if e.ID != "a000000000005" {
		t.Fatalf("id after delete %q", e.ID)
	}
	// The emptied subject index is gone from the file.
	view(t, db, func(tx *Tx) error {
		if tx.btx.Bucket(bucketBySubject).Bucket([]byte("user:alice")) == nil {
			t.Fatal("index of user:alice missing")
		}
		return nil
	})
	update(t, db, func(tx *Tx) error { _, err := tx.DeleteAssignment(e.ID); return err })
	view(t, db, func(tx *Tx) error {
		if tx.btx.Bucket(bucketBySubject).Bucket([]byte("user:alice")) != nil {
			t.Fatal("empty index bucket of user:alice left behind")
		}
		return nil
	})
}

func TestCreateAssignmentIdempotent(t *testing.T) {
	db := openT(t, "")
	a := permatrix.Assignment{Subject: "user:alice", System: "sys", Permission: "x", Scope: permatrix.Scope{Type: "project", ID: "p"}}
	update(t, db, func(tx *Tx) error { return tx.CreateAssignment(&a) })

	for _, id := range []string{"", a.ID, "a000000000777"} {
		dup := a
		dup.ID = id
		rev, patches := update(t, db, func(tx *Tx) error { return tx.CreateAssignment(&dup) })
		if rev != 1 || patches != nil || dup.ID != a.ID {
			t.Fatalf("duplicate with id %q: rev %d patches %v id %q", id, rev, patches, dup.ID)
		}
	}
	// Differing in any one field is not a duplicate.
	for _, v := range []permatrix.Assignment{
		{Subject: "user:bob", System: "sys", Permission: "x", Scope: a.Scope},
		{Subject: a.Subject, System: "sys2", Permission: "x", Scope: a.Scope},
		{Subject: a.Subject, System: "sys", Permission: "y", Scope: a.Scope},
		{Subject: a.Subject, System: "sys", Role: "x", Scope: a.Scope},
		{Subject: a.Subject, System: "sys", Permission: "x", Scope: permatrix.Scope{Type: "project", ID: "q"}},
		{Subject: a.Subject, System: "sys", Permission: "x", Scope: permatrix.ServiceScope},
	} {
		update(t, db, func(tx *Tx) error { return tx.CreateAssignment(&v) })
		if v.ID == a.ID {
			t.Fatalf("%+v taken for a duplicate", v)
		}
	}
	if db.Revision() != 7 {
		t.Fatalf("revision %d, want 7", db.Revision())
	}
}

func TestCreateAssignmentInvalid(t *testing.T) {
	db := openT(t, "")
	for _, a := range []permatrix.Assignment{
		{Subject: "alice", System: "sys", Role: "r", Scope: permatrix.ServiceScope},
		{Subject: "user:", System: "sys", Role: "r", Scope: permatrix.ServiceScope},
		{Subject: "user:a", System: "", Role: "r", Scope: permatrix.ServiceScope},
		{Subject: "user:a", System: "sys", Scope: permatrix.ServiceScope},
		{Subject: "user:a", System: "sys", Role: "r", Permission: "p", Scope: permatrix.ServiceScope},
		{Subject: "user:a", System: "sys", Role: "r"},
		{ID: "bad\nid", Subject: "user:a", System: "sys", Role: "r", Scope: permatrix.ServiceScope},
	} {
		_, _, err := db.Update(func(tx *Tx) error { return tx.CreateAssignment(&a) })
		wantCode(t, err, permatrix.EINVALID)
	}
	if db.Revision() != 0 {
		t.Fatalf("revision %d after invalid creates", db.Revision())
	}
}

func TestMemberships(t *testing.T) {
	db := openT(t, "")
	m := permatrix.Membership{Group: "ops", User: "alice"}
	rev, patches := update(t, db, func(tx *Tx) error {
		if err := tx.AddMember(m); err != nil {
			return err
		}
		return tx.AddMember(m) // idempotent within the tx too
	})
	want := []permatrix.Patch{
		{Path: []string{"memberships", "alice", "ops"}, Value: true},
		{Path: []string{"groups", "ops", "alice"}, Value: true},
		{Path: []string{"revision"}, Value: uint64(1)},
	}
	if rev != 1 || !reflect.DeepEqual(patches, want) {
		t.Fatalf("rev %d patches %#v", rev, patches)
	}
	rev, patches = update(t, db, func(tx *Tx) error { return tx.AddMember(m) })
	if rev != 1 || patches != nil {
		t.Fatalf("present member re-added: rev %d patches %v", rev, patches)
	}
	update(t, db, func(tx *Tx) error {
		for _, m := range []permatrix.Membership{{Group: "ops", User: "carol"}, {Group: "ops", User: "bob"}, {Group: "dev", User: "alice"}, {Group: "admins", User: "alice"}} {
			if err := tx.AddMember(m); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, db, func(tx *Tx) error {
		users, _ := tx.Members("ops")
		groups, _ := tx.Groups("alice")
		none, _ := tx.Members("nobody")
		if !reflect.DeepEqual(users, []string{"alice", "bob", "carol"}) ||
			!reflect.DeepEqual(groups, []string{"admins", "dev", "ops"}) || none == nil || len(none) != 0 {
			t.Fatalf("members %v groups %v none %#v", users, groups, none)
		}
		return nil
	})

	rev, patches = update(t, db, func(tx *Tx) error { return tx.RemoveMember(m) })
	want = []permatrix.Patch{
		{Path: []string{"memberships", "alice", "ops"}},
		{Path: []string{"groups", "ops", "alice"}},
		{Path: []string{"revision"}, Value: uint64(3)},
	}
	if rev != 3 || !reflect.DeepEqual(patches, want) {
		t.Fatalf("rev %d patches %#v", rev, patches)
	}
	_, _, err := db.Update(func(tx *Tx) error { return tx.RemoveMember(m) })
	wantCode(t, err, permatrix.ENOTFOUND)
	_, _, err = db.Update(func(tx *Tx) error { return tx.AddMember(permatrix.Membership{Group: "", User: "x"}) })
	wantCode(t, err, permatrix.EINVALID)
	view(t, db, func(tx *Tx) error {
		users, _ := tx.Members("ops")
		groups, _ := tx.Groups("alice")
		if !reflect.DeepEqual(users, []string{"bob", "carol"}) || !reflect.DeepEqual(groups, []string{"admins", "dev"}) {
			t.Fatalf("after remove: members %v groups %v", users, groups)
		}
		return nil
	})
}

func TestRoles(t *testing.T) {
	db := openT(t, "")
	r := permatrix.Role{System: "bp", Name: "operator", Permissions: []string{"run", "view"}}
	rev, patches := update(t, db, func(tx *Tx) error { return tx.PutRole(r) })
	want := []permatrix.Patch{
		{Path: []string{"roles", "bp", "operator"}, Value: r.Value()},
		{Path: []string{"revision"}, Value: uint64(1)},
	}
	if rev != 1 || !reflect.DeepEqual(patches, want) {
		t.Fatalf("rev %d patches %#v", rev, patches)
	}
	if rev, _ := update(t, db, func(tx *Tx) error { return tx.PutRole(r) }); rev != 1 {
		t.Fatalf("identical PutRole committed: rev %d", rev)
	}
	r.Permissions = []string{"view"}
	if rev, _ := update(t, db, func(tx *Tx) error { return tx.PutRole(r) }); rev != 2 {
		t.Fatalf("changed PutRole: rev %d", rev)
	}
	update(t, db, func(tx *Tx) error {
		if err := tx.PutRole(permatrix.Role{System: "bp", Name: "auditor"}); err != nil {
			return err
		}
		return tx.PutRole(permatrix.Role{System: "aa", Name: "zeta", Permissions: []string{"p"}})
	})
	view(t, db, func(tx *Tx) error {
		got, err := tx.Role("bp", "operator")
		if err != nil || !reflect.DeepEqual(got, r) {
			t.Fatalf("Role: %+v %v", got, err)
		}
		_, err = tx.Role("bp", "nope")
		wantCode(t, err, permatrix.ENOTFOUND)
		bp, _ := tx.Roles("bp")
		all, _ := tx.Roles("")
		none, _ := tx.Roles("none")
		wantBP := []permatrix.Role{{System: "bp", Name: "auditor", Permissions: []string{}}, r}
		if !reflect.DeepEqual(bp, wantBP) || !reflect.DeepEqual(all, append([]permatrix.Role{{System: "aa", Name: "zeta", Permissions: []string{"p"}}}, wantBP...)) || len(none) != 0 {
			t.Fatalf("Roles: bp %+v all %+v none %+v", bp, all, none)
		}
		return nil
	})
	rev, patches = update(t, db, func(tx *Tx) error { return tx.DeleteRole("bp", "operator") })
	if rev != 4 || !reflect.DeepEqual(patches[0], permatrix.Patch{Path: []string{"roles", "bp", "operator"}}) {
		t.Fatalf("delete: rev %d patches %#v", rev, patches)
	}
	_, _, err := db.Update(func(tx *Tx) error { return tx.DeleteRole("bp", "operator") })
	wantCode(t, err, permatrix.ENOTFOUND)
	_, _, err = db.Update(func(tx *Tx) error { return tx.PutRole(permatrix.Role{System: "bp"}) })
	wantCode(t, err, permatrix.EINVALID)
}

func TestProjects(t *testing.T) {
	db := openT(t, "")
	p := permatrix.Project{System: "dr", ID: "p1", CreatedBy: "alice", Kind: "assisted"}
	rev, patches := update(t, db, func(tx *Tx) error { return tx.PutProject(p) })
	want := []permatrix.Patch{
		{Path: []string{"projects", "dr", "p1"}, Value: map[string]any{"created_by": "alice", "kind": "assisted"}},
		{Path: []string{"revision"}, Value: uint64(1)},
	}
	if rev != 1 || !reflect.DeepEqual(patches, want) {
		t.Fatalf("rev %d patches %#v", rev, patches)
	}
	if rev, _ := update(t, db, func(tx *Tx) error { return tx.PutProject(p) }); rev != 1 {
		t.Fatalf("identical PutProject committed: rev %d", rev)
	}
	p.Kind = "unassisted"
	if rev, _ := update(t, db, func(tx *Tx) error { return tx.PutProject(p) }); rev != 2 {
		t.Fatalf("changed PutProject: rev %d", rev)
	}
	view(t, db, func(tx *Tx) error {
		got, err := tx.Project("dr", "p1")
		if err != nil || got != p {
			t.Fatalf("Project: %+v %v", got, err)
		}
		_, err = tx.Project("dr", "p2")
		wantCode(t, err, permatrix.ENOTFOUND)
		return nil
	})
	_, _, err := db.Update(func(tx *Tx) error { return tx.PutProject(permatrix.Project{System: "dr"}) })
	wantCode(t, err, permatrix.EINVALID)
}

// TestRevision: one increment per committed change-making Update, none for
// no-op, failing or panicking ones, whose changes are not stored.
func TestRevision(t *testing.T) {
	db := openT(t, "")
	noop := func(tx *Tx) error { return nil }
	if rev, patches := update(t, db, noop); rev != 0 || patches != nil {
		t.Fatalf("no-op Update: rev %d patches %v", rev, patches)
	}

	boom := errors.New("boom")
	a := asg("user:alice", "sys", "admin", permatrix.ServiceScope)
	_, patches, err := db.Update(func(tx *Tx) error {
		if err := tx.CreateAssignment(&a); err != nil {
			return err
		}
		if err := tx.AddMember(permatrix.Membership{Group: "g", User: "u"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) || patches != nil || db.Revision() != 0 {
		t.Fatalf("failing Update: err %v patches %v rev %d", err, patches, db.Revision())
	}
	func() {
		defer func() { recover() }()
		db.Update(func(tx *Tx) error {
			tx.AddMember(permatrix.Membership{Group: "g", User: "u"})
			panic("fn panics")
		})
	}()
	if s, _ := db.State(); s.Revision != 0 || len(s.Assignments) != 0 || len(s.Memberships) != 0 {
		t.Fatalf("failed Updates stored something: %+v", s)
	}

	// A failed method that changed nothing does not spoil the Update.
	var rev uint64
	rev, patches = update(t, db, func(tx *Tx) error {
		if _, err := tx.DeleteAssignment("a000000000001"); permatrix.ErrorCode(err) != permatrix.ENOTFOUND {
			t.Errorf("delete of a rolled-back assignment: %v", err)
		}
		return tx.CreateAssignment(&a)
	})
	if rev != 1 || len(patches) != 2 || a.ID != "a000000000001" {
		t.Fatalf("rev %d patches %v id %s", rev, patches, a.ID)
	}
	for want := uint64(2); want <= 5; want++ {
		rev, _ = update(t, db, func(tx *Tx) error {
			if tx.Revision() != want-1 {
				t.Errorf("tx.Revision %d, want %d", tx.Revision(), want-1)
			}
			return tx.AddMember(permatrix.Membership{Group: "g", User: fmt.Sprint("u", want)})
		})
		if rev != want || db.Revision() != want {
			t.Fatalf("rev %d / %d, want %d", rev, db.Revision(), want)
		}
	}
	view(t, db, func(tx *Tx) error {
		if tx.Revision() != 5 {
			t.Fatalf("view revision %d", tx.Revision())
		}
		return nil
	})
	if rev, _ := update(t, db, noop); rev != 5 {
		t.Fatalf("no-op Update returned %d", rev)
	}
}

func TestViewIsReadOnly(t *testing.T) {
	db := openT(t, "")
	err := db.View(func(tx *Tx) error {
		a := asg("user:a", "s", "r", permatrix.ServiceScope)
		return tx.CreateAssignment(&a)
	})
	if err == nil {
		t.Fatal("CreateAssignment in View succeeded")
	}
}

// TestPatchesFollowState applies the patches of a series of Updates to the
// document of the first state and checks that it becomes the document of
// the last: the engine can follow the file with patches alone.
func TestPatchesFollowState(t *testing.T) {
	db := openT(t, "")
	s0, _ := db.State()
	doc := roundTrip(t, s0.Document())
	ids := make([]string, 0, 20)
	steps := []func(tx *Tx) error{
		func(tx *Tx) error {
			for i := range 10 {
				a := asg(fmt.Sprintf("user:u%d", i%3), "sys", "r", permatrix.Scope{Type: "project", ID: fmt.Sprint("p", i)})
				if err := tx.CreateAssignment(&a); err != nil {
					return err
				}
				ids = append(ids, a.ID)
			}
			return tx.PutRole(permatrix.Role{System: "bp", Name: "op", Permissions: []string{"a", "b"}})
		},
		func(tx *Tx) error {
			for _, m := range []permatrix.Membership{{Group: "g1", User: "u1"}, {Group: "g1", User: "u2"}, {Group: "g2", User: "u1"}} {
				if err := tx.AddMember(m); err != nil {
					return err
				}
			}
			return tx.PutProject(permatrix.Project{System: "dr", ID: "p1", CreatedBy: "u1"})
		},
		func(tx *Tx) error {
			for _, id := range ids[:5] {
				if _, err := tx.DeleteAssignment(id); err != nil {
					return err
				}
			}
			if err := tx.RemoveMember(permatrix.Membership{Group: "g1", User: "u2"}); err != nil {
				return err
			}
			if err := tx.PutRole(permatrix.Role{System: "bp", Name: "op", Permissions: []string{"c"}}); err != nil {
				return err
			}
			return tx.PutProject(permatrix.Project{System: "dr", ID: "p1", CreatedBy: "u1", Kind: "assisted"})
		},
		func(tx *Tx) error {
			for _, id := range ids[5:] {
				if _, err := tx.DeleteAssignment(id); err != nil {
					return err
				}
			}
			return tx.DeleteRole("bp", "op")
		},
	}
	for i, step := range steps {
		_, patches := update(t, db, step)
		for _, p := range patches {
			apply(doc, p)
		}
		s, _ := db.State()
		want := roundTrip(t, s.Document())
		prune(doc)
		prune(want)
		if !reflect.DeepEqual(doc, want) {
			t.Fatalf("step %d: patched document\n%v\nwant\n%v", i, doc, want)
		}
	}
}

// roundTrip gives a document JSON's types, as the engine sees it.
func roundTrip(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func apply(doc map[string]any, p permatrix.Patch) {
	m := doc
	for _, k := range p.Path[:len(p.Path)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			if p.Value == nil {
				return
			}
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	last := p.Path[len(p.Path)-1]
	if p.Value == nil {
		delete(m, last)
		return
	}
	b, _ := json.Marshal(p.Value)
	var v any
	json.Unmarshal(b, &v)
	m[last] = v
}

// prune removes the empty objects that removals leave below the top-level
// keys (store.subjects[s] after its last assignment goes, and the like).
func prune(doc map[string]any) {
	var walk func(m map[string]any)
	walk = func(m map[string]any) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				walk(sub)
				if len(sub) == 0 {
					delete(m, k)
				}
			}
		}
	}
	for _, v := range doc {
		if m, ok := v.(map[string]any); ok {
			walk(m)
		}
	}
}

func TestPagination(t *testing.T) {
	db := openT(t, "")
	update(t, db, func(tx *Tx) error {
		for i := range 250 {
			a := asg(fmt.Sprintf("user:u%d", i%2), "sys", fmt.Sprint("r", i), permatrix.ServiceScope)
			if err := tx.CreateAssignment(&a); err != nil {
				return err
			}
		}
		return nil
	})
	pages := func(f permatrix.AssignmentFilter) (sizes []int, ids []string) {
		t.Helper()
		view(t, db, func(tx *Tx) error {
			for {
				list, next, err := tx.Assignments(f)
				if err != nil {
					t.Fatal(err)
				}
				sizes = append(sizes, len(list))
				for _, a := range list {
					ids = append(ids, a.ID)
				}
				if next == "" {
					return nil
				}
				if next != list[len(list)-1].ID {
					t.Fatalf("next cursor %q, last id %q", next, list[len(list)-1].ID)
				}
				f.Cursor = next
			}
		})
		return sizes, ids
	}
	checkIDs := func(ids []string, n int) {
		t.Helper()
		if len(ids) != n {
			t.Fatalf("%d ids, want %d", len(ids), n)
		}
		for i := 1; i < len(ids); i++ {
			if ids[i] <= ids[i-1] {
				t.Fatalf("ids not strictly increasing at %d: %s, %s", i, ids[i-1], ids[i])
			}
		}
	}

	sizes, ids := pages(permatrix.AssignmentFilter{Limit: 100})
	if !reflect.DeepEqual(sizes, []int{100, 100, 50}) {
		t.Fatalf("page sizes %v", sizes)
	}
	checkIDs(ids, 250)
	if sizes, _ := pages(permatrix.AssignmentFilter{}); !reflect.DeepEqual(sizes, []int{100, 100, 50}) {
		t.Fatalf("default limit: page sizes %v", sizes)
	}
	if sizes, _ := pages(permatrix.AssignmentFilter{Limit: 5000}); !reflect.DeepEqual(sizes, []int{250}) {
		t.Fatalf("limit 5000: page sizes %v", sizes)
	}
	// Exactly a page's worth left: no next cursor, no empty page.
	if sizes, _ := pages(permatrix.AssignmentFilter{Limit: 125}); !reflect.DeepEqual(sizes, []int{125, 125}) {
		t.Fatalf("limit 125: page sizes %v", sizes)
	}
	// Through the subject index, with a cursor that is not an id.
	sizes, ids = pages(permatrix.AssignmentFilter{Subject: "user:u1", Limit: 50})
	if !reflect.DeepEqual(sizes, []int{50, 50, 25}) {
		t.Fatalf("subject page sizes %v", sizes)
	}
	checkIDs(ids, 125)
	_, ids = pages(permatrix.AssignmentFilter{Subject: "user:u0", Cursor: "a000000000200x"})
	checkIDs(ids, 25)
	if ids[0] != "a000000000201" {
		t.Fatalf("first id after cursor %s", ids[0])
	}
	view(t, db, func(tx *Tx) error {
		_, _, err := tx.Assignments(permatrix.AssignmentFilter{Limit: -1})
		wantCode(t, err, permatrix.EINVALID)
		list, next, err := tx.Assignments(permatrix.AssignmentFilter{Cursor: "b"})
		if err != nil || list == nil || len(list) != 0 || next != "" {
			t.Fatalf("past the end: %v %q %v", list, next, err)
		}
		return nil
	})
}

func TestAssignmentFilters(t *testing.T) {
	db := openT(t, "")
	all := []permatrix.Assignment{
		asg("user:alice", "bp", "admin", permatrix.ServiceScope),
		asg("user:alice", "dr", "viewer", permatrix.Scope{Type: "project", ID: "p1"}),
		asg("user:bob", "dr", "viewer", permatrix.Scope{Type: "project", ID: "p1"}),
		asg("group:ops", "dr", "editor", permatrix.Scope{Type: "project", ID: "p2"}),
		asg("user:bob", "bp", "runner", permatrix.ServiceScope),
	}
	update(t, db, func(tx *Tx) error {
		for i := range all {
			if err := tx.CreateAssignment(&all[i]); err != nil {
				return err
			}
		}
		return nil
	})
	for _, tc := range []struct {
		f    permatrix.AssignmentFilter
		want []int
	}{
		{permatrix.AssignmentFilter{}, []int{0, 1, 2, 3, 4}},
		{permatrix.AssignmentFilter{Subject: "user:alice"}, []int{0, 1}},
		{permatrix.AssignmentFilter{Subject: "user:nobody"}, nil},
		{permatrix.AssignmentFilter{System: "dr"}, []int{1, 2, 3}},
		{permatrix.AssignmentFilter{Subject: "user:bob", System: "bp"}, []int{4}},
		{permatrix.AssignmentFilter{ScopeType: "service"}, []int{0, 4}},
		{permatrix.AssignmentFilter{ScopeType: "project", ScopeID: "p1"}, []int{1, 2}},
		{permatrix.AssignmentFilter{ScopeID: "p2", System: "dr"}, []int{3}},
		{permatrix.AssignmentFilter{System: "dr", Limit: 2}, []int{1, 2}},
	} {
		view(t, db, func(tx *Tx) error {
			got, next, err := tx.Assignments(tc.f)
			if err != nil {
				t.Fatal(err)
			}
			want := []permatrix.Assignment{}
			for _, i := range tc.want {
				want = append(want, all[i])
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("filter %+v: got %+v, want %+v", tc.f, got, want)
			}
			if (tc.f.Limit == 2) != (next != "") {
				t.Errorf("filter %+v: next cursor %q", tc.f, next)
			}
			return nil
		})
	}
}

func TestPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	update(t, db, func(tx *Tx) error {
		for i := range 30 {
			a := asg(fmt.Sprintf("user:u%d", i%4), "sys", "r", permatrix.Scope{Type: "project", ID: fmt.Sprint("p", i)})
			if err := tx.CreateAssignment(&a); err != nil {
				return err
			}
			if err := tx.AddMember(permatrix.Membership{Group: fmt.Sprint("g", i%3), User: fmt.Sprint("u", i%5)}); err != nil {
				return err
			}
		}
		if err := tx.PutRole(permatrix.Role{System: "bp", Name: "op", Permissions: []string{"b", "a"}}); err != nil {
			return err
		}
		if err := tx.PutRole(permatrix.Role{System: "aa", Name: "x"}); err != nil {
			return err
		}
		return tx.PutProject(permatrix.Project{System: "dr", ID: "p1", CreatedBy: "u1", Kind: "assisted"})
	})
	update(t, db, func(tx *Tx) error { _, err := tx.DeleteAssignment("a000000000030"); return err })
	before, err := db.State()
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openT(t, path)
	after, err := db.State()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, after) || db.Revision() != 2 || after.Revision != 2 {
		t.Fatalf("state after reopen\n%+v\nwant\n%+v", after, before)
	}
	if len(after.Assignments) != 29 || len(after.Memberships) != 15 || len(after.Roles) != 2 || len(after.Projects) != 1 {
		t.Fatalf("counts: %d %d %d %d", len(after.Assignments), len(after.Memberships), len(after.Roles), len(after.Projects))
	}
	// The id sequence survives the reopen.
	a := asg("user:new", "sys", "r", permatrix.ServiceScope)
	if rev, _ := update(t, db, func(tx *Tx) error { return tx.CreateAssignment(&a) }); rev != 3 || a.ID != "a000000000031" {
		t.Fatalf("after reopen: rev %d id %s", rev, a.ID)
	}
}

func TestStateSorted(t *testing.T) {
	db := openT(t, "")
	update(t, db, func(tx *Tx) error {
		for _, m := range []permatrix.Membership{{Group: "b", User: "z"}, {Group: "a", User: "y"}, {Group: "b", User: "a"}} {
			tx.AddMember(m)
		}
		tx.PutProject(permatrix.Project{System: "z", ID: "1"})
		tx.PutProject(permatrix.Project{System: "a", ID: "2"})
		return tx.PutProject(permatrix.Project{System: "a", ID: "1"})
	})
	s, err := db.State()
	if err != nil {
		t.Fatal(err)
	}
	wantM := []permatrix.Membership{{Group: "a", User: "y"}, {Group: "b", User: "a"}, {Group: "b", User: "z"}}
	wantP := []permatrix.Project{{System: "a", ID: "1"}, {System: "a", ID: "2"}, {System: "z", ID: "1"}}
	if !reflect.DeepEqual(s.Memberships, wantM) || !reflect.DeepEqual(s.Projects, wantP) {
		t.Fatalf("memberships %v projects %v", s.Memberships, s.Projects)
	}
}

func TestConcurrentUpdates(t *testing.T) {
	db := openT(t, "")
	const writers, each = 4, 25
	var wg sync.WaitGroup
	revs := make(chan uint64, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				a := asg(fmt.Sprintf("user:w%d", w), "sys", fmt.Sprint("r", i), permatrix.ServiceScope)
				rev, _, err := db.Update(func(tx *Tx) error { return tx.CreateAssignment(&a) })
				if err != nil {
					t.Error(err)
					return
				}
				revs <- rev
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	// Readers meanwhile: every snapshot is consistent with its revision
	// (one assignment per revision here), and revisions never go back.
	var last uint64
	for reading := true; reading; {
		select {
		case <-done:
			reading = false
		default:
		}
		s, err := db.State()
		if err != nil {
			t.Fatal(err)
		}
		if uint64(len(s.Assignments)) != s.Revision || s.Revision < last {
			t.Fatalf("state at revision %d has %d assignments (last seen %d)", s.Revision, len(s.Assignments), last)
		}
		last = s.Revision
	}
	close(revs)
	seen := map[uint64]bool{}
	for r := range revs {
		if seen[r] {
			t.Fatalf("revision %d returned twice", r)
		}
		seen[r] = true
	}
	if len(seen) != writers*each || db.Revision() != writers*each {
		t.Fatalf("%d revisions, final %d", len(seen), db.Revision())
	}
}

func TestOpenRefusesUnknownFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	rewrite(t, path, func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyFormat, u64(2)) })
	_, err = Open(path)
	wantCode(t, err, permatrix.EUNAVAILABLE)
	if !strings.Contains(err.Error(), "format 2 is not supported") || !strings.Contains(err.Error(), path) {
		t.Fatalf("error %q", err)
	}
}

func TestOpenRefusesForeignFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "other.db")
	rewrite(t, path, func(tx *bbolt.Tx) error { _, err := tx.CreateBucket([]byte("widgets")); return err })
	_, err := Open(path)
	if err == nil || !strings.Contains(err.Error(), "not a permatrix store") {
		t.Fatalf("bbolt file of another program: %v", err)
	}
	junk := filepath.Join(dir, "junk.db")
	os.WriteFile(junk, bytes.Repeat([]byte("x"), 8192), 0o600)
	if _, err := Open(junk); err == nil || !strings.Contains(err.Error(), junk) {
		t.Fatalf("non-bbolt file: %v", err)
	}
}

func rewrite(t *testing.T, path string, fn func(tx *bbolt.Tx) error) {
	t.Helper()
	b, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Update(fn); err != nil {
		t.Fatal(err)
	}
	b.Close()
}

// TestLockedBySecondProcess: while this process holds the store, another
// one fails to open it within a few seconds, saying why; once released, it
// opens.
func TestLockedBySecondProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, err := helperCmd(t, "open", path).Output()
	elapsed := time.Since(start)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 || len(lines) != 3 {
		t.Fatalf("second process: %v, output %q", err, out)
	}
	ms, _ := strconv.Atoi(lines[2])
	if lines[0] != permatrix.EUNAVAILABLE || !strings.Contains(lines[1], "locked by another process") ||
		!strings.Contains(lines[1], path) || ms > 3500 {
		t.Fatalf("second process: %q", out)
	}
	t.Logf("second process refused after %d ms (%v with process start)", ms, elapsed)

	db.Close()
	if out, err := helperCmd(t, "open", path).Output(); err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("after release: %v, %q", err, out)
	}
}

// TestKill9Durability: a writer killed with SIGKILL mid-way loses no write
// that Update had acknowledged.
func TestKill9Durability(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	cmd := helperCmd(t, "writer", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type ack struct {
		rev         uint64
		id, subject string
	}
	var acks []ack
	killed := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			t.Fatalf("writer printed %q", sc.Text())
		}
		rev, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, ack{rev, f[1], f[2]})
		if len(acks) == 40 && !killed {
			// SIGKILL: no deferred Close, no chance to flush anything.
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
		// Lines already in the pipe were acknowledged too: keep reading.
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("writer ended before the kill: %v, stderr %s", err, stderr.Bytes())
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("writer: %v", err)
	}

	db := openT(t, path)
	last := acks[len(acks)-1].rev
	// At most one more Update may have committed without its line printed.
	if r := db.Revision(); r < last || r > last+1 {
		t.Fatalf("revision after kill %d, last acknowledged %d", r, last)
	}
	view(t, db, func(tx *Tx) error {
		for i, k := range acks {
			if k.rev != uint64(i+1) {
				t.Fatalf("ack %d has revision %d", i, k.rev)
			}
			a, err := tx.Assignment(k.id)
			if err != nil || a.Subject != k.subject {
				t.Fatalf("acknowledged %v lost: %+v, %v", k, a, err)
			}
		}
		return nil
	})
	t.Logf("%d acknowledged writes survived; revision %d", len(acks), db.Revision())
}
