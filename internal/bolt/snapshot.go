package bolt

import (
	"bytes"
	"errors"
	"runtime/debug"
	"syscall"

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

// faultGuard runs fn with memory faults turned into panics (a truncated or
// damaged file read through bbolt's memory map would otherwise kill the
// process with SIGBUS/SIGSEGV) and any panic of bbolt's turned into an error.
func faultGuard(fn func() error) (err error) {
	defer recoverFault(&err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	return fn()
}

// recoverFault turns a panic into *err. Reads use it so that a damaged page
// met at run time fails one request instead of the process.
func recoverFault(err *error) {
	if r := recover(); r != nil {
		*err = &CorruptError{Cause: r}
	}
}

// CorruptError is a panic or memory fault met while reading the file: it is
// damaged.
type CorruptError struct{ Cause any }

func (e *CorruptError) Error() string {
	return "the store file is damaged (" + stringOf(e.Cause) + ")"
}

func stringOf(v any) string {
	switch x := v.(type) {
	case error:
		return x.Error()
	case string:
		return x
	}
	return "unexpected panic"
}

// isDiskError reports whether err comes from the disk rather than the data:
// no space, quota, read-only file system, I/O error, file too large.
func isDiskError(err error) bool {
	for _, e := range []error{syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.EIO, syscall.EFBIG} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// unwrapSys is the system error inside err, for a message that says what
// the disk said.
func unwrapSys(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}
