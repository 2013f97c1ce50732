package bolt

import (
	"context"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// Format 1 (permatrix ≤ this change) kept a bucket per kind of record:
//
//	assignments  id → JSON permatrix.Assignment (bucket sequence: the id counter)
//	by_subject   nested per subject: id → empty
//	members      nested per group:   user → empty
//	groups_of    nested per user:    group → empty
//	roles        nested per system:  name → JSON permatrix.Role
//	projects     nested per system:  id → JSON permatrix.Project
var v1Buckets = []string{"assignments", "by_subject", "members", "groups_of", "roles", "projects"}

// planV1 plans a format 1 file's records as format 2 operations, through
// store.Tx, so every record lands exactly where a new write would put it
// and a record no write could have stored is an error. It writes nothing.
// counts are the assignments, memberships, roles and projects planned.
func planV1(btx *bbolt.Tx) (ops []store.Op, counts [4]int, err error) {
	tx := store.NewTx(context.Background(), store.Empty(0), func(context.Context) (uint64, error) {
		return 0, fmt.Errorf("every format 1 assignment has an id")
	})
	assignments := btx.Bucket([]byte("assignments"))
	if assignments == nil {
		return nil, counts, fmt.Errorf("no assignments bucket")
	}
	err = assignments.ForEach(func(k, v []byte) error {
		var a permatrix.Assignment
		if err := strictJSON(v, &a); err != nil {
			return fmt.Errorf("assignment %q: %w", k, err)
		}
		if a.ID != string(k) {
			return fmt.Errorf("key %q holds assignment %q", k, a.ID)
		}
		counts[0]++
		return tx.CreateAssignment(&a)
	})
	if err != nil {
		return nil, counts, err
	}
	if err := forEachNested(btx.Bucket([]byte("members")), func(group, user, _ []byte) error {
		counts[1]++
		return tx.AddMember(permatrix.Membership{Group: string(group), User: string(user)})
	}); err != nil {
		return nil, counts, err
	}
	if err := forEachNested(btx.Bucket([]byte("roles")), func(system, name, v []byte) error {
		var r permatrix.Role
		if err := strictJSON(v, &r); err != nil {
			return fmt.Errorf("role %q: %w", name, err)
		}
		if r.System != string(system) || r.Name != string(name) {
			return fmt.Errorf("key %q/%q holds role %q/%q", system, name, r.System, r.Name)
		}
		counts[2]++
		return tx.PutRole(r)
	}); err != nil {
		return nil, counts, err
	}
	if err := forEachNested(btx.Bucket([]byte("projects")), func(system, id, v []byte) error {
		var p permatrix.Project
		if err := strictJSON(v, &p); err != nil {
			return fmt.Errorf("project %q: %w", id, err)
		}
		if p.System != string(system) || p.ID != string(id) {
			return fmt.Errorf("key %q/%q holds project %q/%q", system, id, p.System, p.ID)
		}
		counts[3]++
		return tx.PutProject(p)
	}); err != nil {
		return nil, counts, err
	}
	return tx.Batch().Ops, counts, nil
}

// migrateV1 rewrites a format 1 file as format 2 inside btx (one
// transaction: a crash leaves format 1 untouched). The revision and the id
// counter carry over.
func migrateV1(btx *bbolt.Tx) error {
	assignments := btx.Bucket([]byte("assignments"))
	if assignments == nil {
		return fmt.Errorf("format 1 store without an assignments bucket")
	}
	seq := assignments.Sequence()
	ops, _, err := planV1(btx)
	if err != nil {
		return fmt.Errorf("migrating format 1: %w", err)
	}
	if _, err := btx.CreateBucket(bucketKV); err != nil {
		return err
	}
	if err := putOps(kvBucket(btx), true, ops); err != nil {
		return err
	}
	for _, name := range v1Buckets {
		if btx.Bucket([]byte(name)) != nil {
			if err := btx.DeleteBucket([]byte(name)); err != nil {
				return err
			}
		}
	}
	meta := btx.Bucket(bucketMeta)
	for k, v := range map[string][]byte{
		string(keyFormat): u64(formatVersion), string(keyIDSeq): u64(seq),
		string(keyMode): []byte("primary"), string(keySource): {},
	} {
		if err := meta.Put([]byte(k), v); err != nil {
			return err
		}
	}
	return nil
}

// forEachNested calls fn for every key of every sub-bucket of b (none if b
// is nil).
func forEachNested(b *bbolt.Bucket, fn func(outer, k, v []byte) error) error {
	if b == nil {
		return nil
	}
	return b.ForEachBucket(func(outer []byte) error {
		return b.Bucket(outer).ForEach(func(k, v []byte) error { return fn(outer, k, v) })
	})
}
