package bolt

import (
	"fmt"
	"path/filepath"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/permatrix/permatrix/internal/store"
)

// TestPutOpsAllocs: a commit's values are sealed (checksummed) into one
// buffer: putOps allocates what bbolt's own Puts of the sealed values do,
// and one buffer more — not one a value (four an import line). Its values
// read back as given.
func TestPutOpsAllocs(t *testing.T) {
	b, err := bbolt.Open(filepath.Join(t.TempDir(), "kv.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var ops []store.Op
	for i := range 100 {
		ops = append(ops, store.Op{Key: store.Key("d", "grants", fmt.Sprintf("user:u%03d", i), "sys", "role", "r", "service"), Value: []byte(fmt.Sprintf(`{"n":%d}`, i))})
	}
	sealedValues := make([][]byte, len(ops))
	for i, op := range ops {
		sealedValues[i] = seal(op.Key, op.Value)
	}
	err = b.Update(func(btx *bbolt.Tx) error {
		kv, err := btx.CreateBucket(bucketKV)
		if err != nil {
			return err
		}
		if err := putOps(kv, true, ops); err != nil {
			return err
		}
		bbolts := testing.AllocsPerRun(20, func() {
			for i, op := range ops {
				if err := kv.Put(op.Key, sealedValues[i]); err != nil {
					t.Fatal(err)
				}
			}
		})
		mine := testing.AllocsPerRun(20, func() {
			if err := putOps(kv, true, ops); err != nil {
				t.Fatal(err)
			}
		})
		if mine > bbolts+1 {
			t.Errorf("putOps of %d values allocates %v times, bbolt's Puts of them sealed %v", len(ops), mine, bbolts)
		}
		for _, op := range ops {
			if v, err := unseal(op.Key, kv.Get(op.Key)); err != nil || string(v) != string(op.Value) {
				t.Errorf("%q reads back %q, %v; want %q", store.Segments(op.Key), v, err, op.Value)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
