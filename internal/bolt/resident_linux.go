package bolt

import (
	"bytes"
	"os"
	"runtime"

	"go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// releaseResident takes the pages of the file's memory map out of this
// process's resident set (madvise MADV_DONTNEED). The open check reads every
// page once; without this, all of them would stay counted in the process's
// RSS (a 1M-assignment store: ~900 MiB) although serving touches only the
// ones decisions read. The pages stay in the operating system's page cache,
// and a later read maps its page again: nothing is lost or re-read from
// disk while there is memory. The map is read-only (bbolt writes with
// pwrite), so dropping it changes no data. A read transaction is held
// meanwhile: bbolt cannot remap the file under it.
func releaseResident(b *bbolt.DB) error {
	tx, err := b.Begin(false)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	size, data := tx.Size(), b.Info().Data
	if size <= 0 || data == 0 {
		return nil
	}
	// data is the address of bbolt's map (outside Go's heap), valid while
	// the transaction holds it: passed to the system call as the number it is.
	if _, _, errno := unix.Syscall(unix.SYS_MADVISE, data, uintptr(size), unix.MADV_DONTNEED); errno != 0 {
		return errno
	}
	return nil
}

// mapResident maps the pages holding the keys under prefix (and the
// branch pages above them) back into this process's resident set, by
// reading them in one read transaction: a byte of every key, and of every
// page of its value. Pages come from the page cache (the open check, or
// the scan that released them, read them just before). The reads go
// through the map: the caller guards them (a fault breaks the store, as
// any read's). It stops early once stop is closed (the store closing).
// Once broken says the store is broken, its transaction is left to the
// process's exit, as a snapshot's (snapshot.Close): bbolt's Rollback
// takes the meta lock, which a fault inside another read's Begin may have
// left held for ever.
func mapResident(b *bbolt.DB, prefix []byte, stop <-chan struct{}, broken func() error) error {
	tx, err := b.Begin(false)
	if err != nil {
		return err
	}
	defer func() {
		if broken() == nil {
			_ = tx.Rollback()
		}
	}()
	if testHookResidentBegun != nil {
		testHookResidentBegun()
	}
	kv := tx.Bucket(bucketKV)
	if kv == nil {
		return nil
	}
	page := os.Getpagesize()
	var sum byte
	c := kv.Cursor()
	n := 0
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if n++; n%4096 == 0 {
			select {
			case <-stop:
				return nil
			default:
			}
		}
		sum += k[0]
		for i := 0; i < len(v); i += page {
			sum += v[i]
		}
		if len(v) > 0 {
			sum += v[len(v)-1] // the last page, when the value does not start on one
		}
	}
	runtime.KeepAlive(sum) // the reads are the point: not optimised away
	return nil
}

// prefetch asks the kernel to read the file's first size bytes (the
// store's pages) into the page cache ahead (fadvise WILLNEED), in the
// background and in file order. The open
// check then walks the B+tree page by page: from a cold page cache (a
// restarted node, or pages the host reclaimed) each page was a random
// 4 KiB read, 45 s for a 1M-assignment store against 1.7 s to read the
// file through. Advice only: a failure costs time, never data, and the
// pages go to the page cache, not to this process's resident set.
//
// Only the file's data is asked for, not its holes (SEEK_DATA,
// SEEK_HOLE): a file whose meta page claims more pages than it holds — a
// sparse file claiming a terabyte of holes — had all of them read,
// minutes of zeros into the page cache, before the check found the claim
// false.
func prefetch(f *os.File, size int64) {
	fd := int(f.Fd())
	advise := func(from, to int64) {
		for off := from; off < to; off += prefetchChunk {
			_ = unix.Fadvise(fd, off, min(prefetchChunk, to-off), unix.FADV_WILLNEED)
		}
	}
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			return // no data past off
		}
		if err != nil { // no SEEK_DATA here: the whole range
			advise(off, size)
			return
		}
		if data >= size {
			return
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			hole = size
		}
		end := min(hole, size)
		advise(data, end)
		off = end
	}
}

// prefetchChunk is how much one fadvise asks for: the kernel reads ahead
// only part of a larger range (half of a 33 MiB file in one call).
const prefetchChunk = 4 << 20
