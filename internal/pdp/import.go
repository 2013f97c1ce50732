package pdp

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// Import limits.
const (
	// MaxAtomicImport is the most lines an all-or-nothing import may have:
	// one commit holds all of them in memory until it is made. Larger
	// imports are committed in chunks (ImportOptions.Chunk).
	MaxAtomicImport = 100_000
	// MaxImportChunk bounds the lines of one chunk.
	MaxImportChunk = 50_000
)

// ImportOptions say how an import is committed.
type ImportOptions struct {
	// Chunk, when set, commits the import Chunk lines at a time (1 to
	// MaxImportChunk), each chunk one commit with its own revision — or,
	// on a store whose commits have a size limit (store.Bounded: etcd), as
	// many commits of whole lines as it takes; 0 makes the import one
	// commit (all or nothing, at most MaxAtomicImport lines, and what fits
	// one commit of the store).
	Chunk int
	// Progress, if set, is told after each commit.
	Progress func(ImportResult)
}

// ImportResult is how far an import got: the lines read and committed, the
// commits made, the revision of the last, and the input line number of the
// last line committed (a resumed import starts after it).
type ImportResult struct {
	Lines    int    `json:"lines"`
	Imported int    `json:"imported"`
	Chunks   int    `json:"chunks"`
	Revision uint64 `json:"revision"`
	LastLine int    `json:"last_line"`
}

// ImportStream imports the lines next yields (io.EOF ends them). Each line is
// judged by the vendor rules with its own actor, against the store as it is
// with the lines before it made. In chunks, every commit before a refused
// line stays (the chunks before its own, and on a store with smaller
// commits the lines of its own chunk committed before it) and the result
// says how far the import got; all or nothing, a refused line leaves the
// store as it was. Between commits the import lets other writes in. When
// ctx ends the import stops: the commits made stay, a commit being made is
// made whole or not at all, the lines read since are dropped.
//
// In chunks, a chunk is judged and committed while the next one is read,
// and the next is judged ahead on the cores the commit leaves idle
// (prejudge.go). next is called from the caller's goroutine only; Progress
// from another, once per commit, in order.
func (s *Service) ImportStream(ctx context.Context, next func() (ImportLine, error), o ImportOptions) (ImportResult, error) {
	var res ImportResult
	if o.Chunk < 0 || o.Chunk > MaxImportChunk {
		return res, permatrix.Errorf(permatrix.EINVALID, "chunk must be 1 to %d lines per commit (0: all or nothing)", MaxImportChunk)
	}
	var c chunks
	// stop ends the import with err: the commit in flight is waited for
	// (its own error, if any, is the one returned), and the result says
	// what the commits made.
	stop := func(err error) (ImportResult, error) {
		if werr := c.wait(); werr != nil {
			err = werr
		}
		return c.result(res), err
	}
	var batch []ImportLine
	for {
		if err := ctx.Err(); err != nil {
			return stop(err)
		}
		if err := c.failed(); err != nil {
			return stop(err)
		}
		l, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return stop(err)
		}
		// A line is checked as it arrives, so that what is held until
		// the commit is valid lines of bounded size.
		if err := l.validate(); err != nil {
			return stop(err)
		}
		if o.Chunk == 0 && len(batch) == MaxAtomicImport {
			return res, permatrix.Errorf(permatrix.ETOOLARGE,
				"an all-or-nothing import holds at most %d lines: import in chunks (chunk=10000), each chunk a commit", MaxAtomicImport)
		}
		res.Lines++
		batch = append(batch, l)
		if len(batch) == o.Chunk {
			if err := c.commit(ctx, s, batch, res.Lines, o.Progress); err != nil {
				return stop(err)
			}
			batch = c.spare()
		}
	}
	if res.Lines == 0 {
		return res, permatrix.Errorf(permatrix.EINVALID, "no assignments in the import (NDJSON: one assignment object per line)")
	}
	if o.Chunk == 0 {
		n, rev, err := s.Import(ctx, batch)
		if err != nil {
			return res, err
		}
		res.Imported, res.Chunks, res.Revision, res.LastLine = n, 1, rev, batch[n-1].Line
		if o.Progress != nil {
			o.Progress(res)
		}
		return res, nil
	}
	if len(batch) > 0 {
		if err := c.commit(ctx, s, batch, res.Lines, o.Progress); err != nil {
			return stop(err)
		}
	}
	return stop(nil)
}

// chunks commits an import's chunks one after another, each while the
// next is read: at most one chunk is being committed, and one judged ahead.
// What the commits made and the lines of a committed chunk come back from
// the committing goroutine on done, and are the caller's once received.
type chunks struct {
	done      chan written // the commit in flight; nil: none
	committed ImportResult // what the commits received made (Lines aside)
	free      []ImportLine // a committed chunk's lines, to read the next into
}

// written is what one chunk's commits made, and its lines.
type written struct {
	committed ImportResult
	lines     []ImportLine
	err       error
}

// commit waits for the chunk before batch to be committed, then starts
// committing batch (lines: the lines read up to its end), judged ahead from
// now on. It returns the error of the chunk before.
func (c *chunks) commit(ctx context.Context, s *Service, batch []ImportLine, lines int, progress func(ImportResult)) error {
	changes, err := lineChanges(batch)
	if err != nil {
		return err
	}
	// Judged ahead while the chunk before is still being committed; a
	// store with smaller commits (Bounded) commits the chunk in several,
	// each judged ahead for itself.
	var early *ahead
	if _, bounded := s.backend.(store.Bounded); !bounded {
		if p, err := s.policy(); err == nil {
			early = s.prejudge(ctx, p, changes)
		}
	}
	if err := c.wait(); err != nil {
		early.stop()
		return err
	}
	done := make(chan written, 1)
	c.done = done
	go func(w written) {
		w.lines = batch
		w.err = w.write(ctx, s, changes, early, lines, progress)
		done <- w
	}(written{committed: c.committed})
	return nil
}

// write commits one chunk: one commit, or as many as the store's commit
// size takes (importLines commits the lines that fit).
func (w *written) write(ctx context.Context, s *Service, changes []change, early *ahead, lines int, progress func(ImportResult)) error {
	for done := 0; done < len(w.lines); {
		var n int
		var rev uint64
		var err error
		if done == 0 {
			n, rev, err = s.writeSome(ctx, true, changes, early)
		} else {
			n, rev, err = s.importLines(ctx, w.lines[done:])
		}
		if err != nil {
			return err
		}
		done += n
		w.committed.Imported += n
		w.committed.Chunks++
		w.committed.Revision = rev
		w.committed.LastLine = w.lines[done-1].Line
		if progress != nil {
			r := w.committed
			r.Lines = lines
			progress(r)
		}
	}
	return nil
}

// wait waits for the commit in flight, if any, and returns its error.
func (c *chunks) wait() error {
	if c.done == nil {
		return nil
	}
	return c.received(<-c.done)
}

// failed is the commit in flight's error if it has failed already (nil
// while it runs): an import stops at a refused line without reading on.
func (c *chunks) failed() error {
	if c.done == nil {
		return nil
	}
	select {
	case w := <-c.done:
		return c.received(w)
	default:
		return nil
	}
}

func (c *chunks) received(w written) error {
	c.done = nil
	c.committed = w.committed
	if w.err == nil {
		c.free = w.lines[:0]
	}
	return w.err
}

// spare is a slice to read the next chunk into: one no commit holds.
func (c *chunks) spare() []ImportLine {
	free := c.free
	c.free = nil
	return free
}

// result is res with what the commits received made.
func (c *chunks) result(res ImportResult) ImportResult {
	res.Imported, res.Chunks, res.Revision, res.LastLine = c.committed.Imported, c.committed.Chunks, c.committed.Revision, c.committed.LastLine
	return res
}

// Describe says how far an import got, for a message or a log line.
func (r ImportResult) Describe() string {
	if r.Chunks == 0 {
		return "nothing was imported"
	}
	commits := "commits"
	if r.Chunks == 1 {
		commits = "commit"
	}
	return fmt.Sprintf("lines 1 to %d are imported: %d assignments in %d %s, the last at revision %d",
		r.LastLine, r.Imported, r.Chunks, commits, r.Revision)
}
