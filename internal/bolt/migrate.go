package bolt

import (
	"context"
	"encoding/json"
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

// migrateV1 rewrites a format 1 file as format 2 inside btx (one
// transaction: a crash leaves format 1 untouched). The revision and the id
// counter carry over; every record is planned through store.Tx, so it lands
// exactly where a new write would put it.
func migrateV1(btx *bbolt.Tx) error {
	tx := store.NewTx(context.Background(), store.Empty(0), func(context.Context) (uint64, error) {
		return 0, fmt.Errorf("migration: every format 1 assignment has an id")
	})
	assignments := btx.Bucket([]byte("assignments"))
	if assignments == nil {
		return fmt.Errorf("format 1 store without an assignments bucket")
	}
	seq := assignments.Sequence()
	err := assignments.ForEach(func(k, v []byte) error {
		var a permatrix.Assignment
		if err := json.Unmarshal(v, &a); err != nil {
			return fmt.Errorf("format 1 assignment %q: %w", k, err)
		}
		return tx.CreateAssignment(&a)
	})
	if err != nil {
		return err
	}
	if err := forEachNested(btx.Bucket([]byte("members")), func(group, user, _ []byte) error {
		return tx.AddMember(permatrix.Membership{Group: string(group), User: string(user)})
	}); err != nil {
		return err
	}
	if err := forEachNested(btx.Bucket([]byte("roles")), func(_, name, v []byte) error {
		var r permatrix.Role
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("format 1 role %q: %w", name, err)
		}
		return tx.PutRole(r)
	}); err != nil {
		return err
	}
	if err := forEachNested(btx.Bucket([]byte("projects")), func(_, id, v []byte) error {
		var p permatrix.Project
		if err := json.Unmarshal(v, &p); err != nil {
			return fmt.Errorf("format 1 project %q: %w", id, err)
		}
		return tx.PutProject(p)
	}); err != nil {
		return err
	}
	kv, err := btx.CreateBucket(bucketKV)
	if err != nil {
		return err
	}
	for _, op := range tx.Batch().Ops {
		if !op.Delete {
			if err := kv.Put(op.Key, seal(op.Key, op.Value)); err != nil {
				return err
			}
		}
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
