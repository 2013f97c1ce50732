package bolt

import (
	"bytes"
	"errors"
	"runtime/debug"

	"go.etcd.io/bbolt"

	"github.com/permatrix/permatrix/internal/store"
)

// snapshot is a bbolt read transaction.
type snapshot struct {
	tx  *bbolt.Tx
	kv  *bbolt.Bucket
	rev uint64
}

func (s *snapshot) Revision() uint64 { return s.rev }

func (s *snapshot) Get(key []byte) (v []byte, err error) {
	defer recoverFault(&err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	stored := s.kv.Get(key)
	if stored == nil {
		return nil, nil
	}
	return unseal(key, stored)
}

func (s *snapshot) Scan(prefix, after []byte, fn func(k, v []byte) error) (err error) {
	defer recoverFault(&err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	c := s.kv.Cursor()
	var k, stored []byte
	if after != nil && bytes.Compare(after, prefix) >= 0 {
		k, stored = c.Seek(after)
		if k != nil && bytes.Equal(k, after) {
			k, stored = c.Next()
		}
	} else {
		k, stored = c.Seek(prefix)
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, stored = c.Next() {
		v, err := unseal(k, stored)
		if err != nil {
			return err
		}
		if err := fn(k, v); err != nil {
			if errors.Is(err, store.ErrStop) {
				return nil
			}
			return err
		}
	}
	return nil
}

func (s *snapshot) Close() error { return s.tx.Rollback() }
