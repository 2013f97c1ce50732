package bolt

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// Disk faults. A write the file system refuses — full, over quota,
// read-only, an I/O error, over the file size limit — fails with ESTORAGE
// (HTTP 507) saying why, and marks the store faulted until the disk takes
// writes again: the next write that commits, or a probe, clears the fault.
// bbolt writes the meta page only after every data page is written, so a
// write that failed before its meta page left the file as it was: nothing
// acknowledged is lost, and nothing half-written is visible. One that
// failed after it (the meta page's sync) is visible whole — bbolt reads
// the meta pages from its memory map — and is published as the store's
// revision, its client told it was made but not synced (commitGroup); the
// next commit waits for the snapshots opened before it (DB.awaitStale):
// bbolt's rollback freed the pages they read.

// diskErrnos are the errors of a disk that refuses writes.
var diskErrnos = []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.EIO, syscall.EFBIG}

// diskErrno returns the disk error behind err, if it is one. bbolt wraps
// some write errors with %s (file growth, sync), dropping the error chain,
// so the errno's text is looked for too.
func diskErrno(err error) (syscall.Errno, bool) {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		for _, d := range diskErrnos {
			if errno == d {
				return errno, true
			}
		}
		return 0, false
	}
	if err == nil {
		return 0, false
	}
	msg := err.Error()
	for _, d := range diskErrnos {
		if strings.Contains(msg, d.Error()) {
			return d, true
		}
	}
	return 0, false
}

// Fault is why the store's last write failed for disk reasons.
type Fault struct {
	Err error     // the ESTORAGE error the write answered
	At  time.Time // when
}

// Fault returns the store's disk fault, or nil when writes work.
func (db *DB) Fault() *Fault { return db.fault.Load() }

// DefaultProbeInterval is how often a faulted store probes its disk.
const DefaultProbeInterval = 10 * time.Second

// probeBytes is what the probe writes: enough to show the file system
// takes data again, not a promise that the next write fits.
const probeBytes = 64 << 10

// SetProbeInterval sets how often a faulted store probes its disk
// (DefaultProbeInterval until set).
func (db *DB) SetProbeInterval(d time.Duration) { db.probeEvery.Store(int64(d)) }

// writeFailed turns a failed commit into the error the client gets: a disk
// fault becomes ESTORAGE and faults the store; anything else is returned.
func (db *DB) writeFailed(err error) error {
	errno, ok := diskErrno(err)
	if !ok {
		return err
	}
	e := permatrix.Errorf(permatrix.ESTORAGE, "%s: store %s: the write was refused and nothing was written", errno, db.path)
	if db.fault.Swap(&Fault{Err: e, At: time.Now().UTC()}) == nil {
		go db.probe()
	}
	return e
}

// writeCommitted clears a disk fault: the disk took a write.
func (db *DB) writeCommitted() { db.fault.Store(nil) }

// probe writes and syncs a scratch file beside the store every probe
// interval until that works or the store closes, then clears the fault.
func (db *DB) probe() {
	for {
		interval := time.Duration(db.probeEvery.Load())
		if interval <= 0 {
			interval = DefaultProbeInterval
		}
		select {
		case <-db.stop:
			return
		case <-time.After(interval):
		}
		if db.Fault() == nil {
			return // a write committed meanwhile
		}
		if err := probeDisk(filepath.Dir(db.path)); err == nil {
			db.fault.Store(nil)
			return
		}
	}
}

func probeDisk(dir string) error {
	f, err := os.CreateTemp(dir, ".permatrix-probe-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(make([]byte, probeBytes))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("disk probe: %w", err)
	}
	return nil
}

// Health reports the revision, and a broken store or a disk fault as the
// reason the store is not ready.
func (db *DB) Health() store.Health {
	h := store.Health{Ready: true, Revision: db.Revision()}
	if f := db.broken.Load(); f != nil {
		h.Ready, h.Error, h.ErrorAt = false, permatrix.ErrorMessage(f.Err), f.At
	} else if f := db.Fault(); f != nil {
		h.Ready, h.Error, h.ErrorAt = false, permatrix.ErrorMessage(f.Err), f.At
	}
	return h
}

// A broken store: a read or write of the file faulted (a memory fault
// through the map, or a panic in bbolt over a page it cannot read) — the
// file truncated or overwritten under the server, or a failing disk. guard
// recovers it, but bbolt may have faulted holding its locks (Begin reads the
// meta page under its meta lock, which it releases without defer): every
// later transaction would wait for them for ever, /health and every check
// with it. So from the fault on nothing enters bbolt again: reads and
// writes answer EUNAVAILABLE at once saying why, Health is not ready, and
// Close leaves the file to the process's exit. Restarting serve checks the
// file before serving it (exit 3 if it is damaged).

// guard is guard for the open store: a fault breaks it, and a broken store
// runs nothing.
func (db *DB) guard(fn func() error) error {
	if err := db.brokenErr(); err != nil {
		return err
	}
	err := guard(fn)
	db.breakOnFault(err)
	return err
}

// breakOnFault breaks the store if err is a fault guard recovered.
func (db *DB) breakOnFault(err error) {
	if err == nil {
		return // every read of a snapshot comes here: no errors.As target made
	}
	var pe *panicError
	if !errors.As(err, &pe) {
		return
	}
	e := permatrix.Errorf(permatrix.EUNAVAILABLE,
		"store %s is broken: %v; nothing more is read from it or written to it: restart serve, which checks the file first (permatrix store check)", db.path, err)
	db.broken.CompareAndSwap(nil, &Fault{Err: e, At: time.Now().UTC()})
}

// Broken is why the store is broken, or nil: a replica's owner stops
// applying to it (internal/etcd).
func (db *DB) Broken() error { return db.brokenErr() }

// brokenErr is why the store is broken, or nil.
func (db *DB) brokenErr() error {
	if f := db.broken.Load(); f != nil {
		return f.Err
	}
	return nil
}
