package bolt

import (
	"bytes"
	"fmt"
	"runtime/debug"

	"go.etcd.io/bbolt"
)

// snapshot is a bbolt read transaction.
type snapshot struct {
	tx  *bbolt.Tx
	kv  *bbolt.Bucket
	rev uint64
	// bucketed: the file keeps its scope index by id bucket (scopes.go).
	bucketed bool
	// note is a replica's note at rev (DB.ApplyNote).
	note string
	// owner, when set (DB.View), counts the snapshot in era until Close
	// (DB.enter), and its file is released of the pages a bulk scan
	// mapped.
	owner *DB
	era   *era
	// scanned counts the stored bytes Scan went through.
	scanned int64
	// cursor is kept for the next read: a bbolt Get or Cursor allocates a
	// cursor and its stack of pages each time (a decision reads a dozen
	// keys). A read takes it, so that a read inside a Scan's callback gets
	// a cursor of its own.
	cursor *bbolt.Cursor
}

// takeCursor is the kept cursor, or a new one when a read has it.
func (s *snapshot) takeCursor() *bbolt.Cursor {
	c := s.cursor
	if c == nil {
		return s.kv.Cursor()
	}
	s.cursor = nil
	return c
}

// bulkScan is how many bytes a snapshot's scans must go through for Close
// to release the map's resident pages: a pass over much of the store (an
// export, a store copy), not a decision's or a listing's few pages.
var bulkScan int64 = 64 << 20

func (s *snapshot) Revision() uint64 { return s.rev }

// Note is a replica's note at the snapshot's revision (DB.ApplyNote): ""
// for none.
func (s *snapshot) Note() string { return s.note }

func (s *snapshot) Get(key []byte) (v []byte, err error) {
	defer s.breakOnFault(&err)
	defer recoverFault(&err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	at, err := storedKey(s.bucketed, key)
	if err != nil {
		// None is stored (storedKey refuses it); read as it is, it could
		// be another store key's bucketed key.
		return nil, nil
	}
	c := s.takeCursor()
	k, stored := c.Seek(at)
	s.cursor = c
	// As bbolt's Get: nothing for another key, nor for a nested bucket (a
	// nil value; the open check refuses a file with one).
	if stored == nil || !bytes.Equal(k, at) {
		return nil, nil
	}
	return unseal(key, stored)
}

func (s *snapshot) Scan(prefix, after []byte, fn func(k, v []byte) error) (err error) {
	defer s.breakOnFault(&err)
	defer recoverFault(&err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	if s.bucketed && overlaps(prefix, scopesPrefix) {
		return s.scanBucketed(prefix, after, fn)
	}
	c := s.takeCursor()
	defer func() { s.cursor = c }()
	_, err = s.scanStored(c, prefix, after, nil, fn)
	return err
}

// call runs a Scan's callback. A panic of its own is the caller's, not
// the file's — nothing of bbolt's is held — and fails the Scan alone
// (callbackPanic), not the store. A memory fault inside it (reading k or
// v, which are in the file's map: a panic with the fault's address, as
// debug.SetPanicOnFault makes them) is the file's, and goes on to Scan's
// recover, which breaks the store.
func call(fn func(k, v []byte) error, k, v []byte) (err error) {
	defer func() {
		if p := recover(); p != nil {
			if _, fault := p.(interface{ Addr() uintptr }); fault {
				panic(p)
			}
			err = &callbackPanic{p}
		}
	}()
	return fn(k, v)
}

// callbackPanic is the panic of a Scan's callback, as its error.
type callbackPanic struct{ v any }

func (e *callbackPanic) Error() string { return fmt.Sprintf("panic reading the store: %v", e.v) }

// breakOnFault breaks the snapshot's store (DB.breakOnFault) if *err is a
// fault recovered while reading it.
func (s *snapshot) breakOnFault(err *error) {
	if s.owner != nil {
		s.owner.breakOnFault(*err)
	}
}

// Close ends the read transaction. After a bulk scan (bulkScan) it drops
// the map's pages from the process's resident set, as Open does after its
// check: the scan read them once, and without this an export would leave
// the whole store counted in serve's RSS. Decisions map back the pages
// they read (from the page cache); those under Options.Resident are read
// back in the background (keepResident).
//
// Once the store is broken the transaction is left to the process's exit:
// bbolt's Rollback takes the meta lock, which a fault inside Begin may
// have left held for ever (fault.go), and the request closing it would
// wait with it.
func (s *snapshot) Close() error {
	if s.owner != nil && s.owner.brokenErr() != nil {
		if s.era != nil {
			s.owner.leave(s.era)
			s.era = nil
		}
		return nil
	}
	err := s.tx.Rollback()
	if s.era != nil {
		s.owner.leave(s.era)
		s.era = nil
	}
	if s.owner != nil && s.scanned >= bulkScan {
		s.owner.releasePages()
	}
	return err
}
