package bolt

import (
	"io"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// backup is a copy of the file being made from one read transaction:
// bbolt's Tx.WriteTo, which writes the transaction's meta page (twice) and
// then reads the data pages from the file, not the memory map — so a
// backup's pages never count in serve's resident set.
//
// A read transaction blocks no commit: the pages commits free meanwhile
// are kept until it ends (the file may grow by what is written during a
// backup, instead of reusing them). The one wait is a commit that outgrows
// the memory map (initialMmapSize, then 1 GiB steps): bbolt remaps only
// once every read transaction has ended, and reads begun meanwhile wait
// behind the remap. So a backup must not be held open by a client that
// stopped reading: the HTTP layer bounds each wait for it (streamIdle).
type backup struct {
	snap   *snapshot
	format uint64
}

// Backup opens a copy of the committed state (store.Backuper).
func (db *DB) Backup() (store.Backup, error) {
	v, err := db.View()
	if err != nil {
		return nil, err
	}
	s := v.(*snapshot)
	format, _ := getU64(s.tx.Bucket(bucketMeta), keyFormat)
	return &backup{snap: s, format: format}, nil
}

func (b *backup) Revision() uint64 { return b.snap.rev }
func (b *backup) Format() uint64   { return b.format }
func (b *backup) Size() int64      { return b.snap.tx.Size() }

// WriteTo writes the file at the snapshot's revision. An error reading
// the file is EUNAVAILABLE (an I/O error, not the caller's); a failed
// write to w is returned as it is.
func (b *backup) WriteTo(w io.Writer) (int64, error) {
	ew := &errWriter{w: w}
	var n int64
	err := b.snap.owner.guard(func() error {
		var err error
		n, err = b.snap.tx.WriteTo(ew)
		return err
	})
	if err != nil && ew.err == nil {
		return n, permatrix.Errorf(permatrix.EUNAVAILABLE, "store %s: reading it for a backup: %v", b.snap.owner.path, err)
	}
	if ew.err != nil {
		return n, ew.err
	}
	return n, nil
}

func (b *backup) Close() error { return b.snap.Close() }

// errWriter keeps w's error apart from the file's: bbolt wraps both.
type errWriter struct {
	w   io.Writer
	err error
}

func (c *errWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if err != nil && c.err == nil {
		c.err = err
	}
	return n, err
}

var _ store.Backuper = (*DB)(nil)
