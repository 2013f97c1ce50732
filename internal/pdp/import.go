package pdp

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/permatrix/permatrix"
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
	// Chunk, when set, commits the import Chunk lines at a time, each chunk
	// one commit with its own revision; 0 makes the import one commit (all
	// or nothing, at most MaxAtomicImport lines).
	Chunk int
	// Progress, if set, is told after each commit.
	Progress func(ImportResult)
}

// ImportResult is how far an import got: the lines read and committed, the
// commits made and the revision of the last.
type ImportResult struct {
	Lines    int    `json:"lines"`
	Imported int    `json:"imported"`
	Chunks   int    `json:"chunks"`
	Revision uint64 `json:"revision"`
}

// ImportStream imports the lines next yields (io.EOF ends them). Each line is
// judged by the vendor rules with its own actor, against the store as it is
// with the lines before it made. In chunks, every chunk before a refused
// line stays committed and the result says how far the import got; all or
// nothing, a refused line leaves the store as it was. Between chunks the
// import lets other writes in, and it stops when ctx ends (the chunk being
// committed is committed whole or not at all).
func (s *Service) ImportStream(ctx context.Context, next func() (ImportLine, error), o ImportOptions) (ImportResult, error) {
	var res ImportResult
	limit := o.Chunk
	switch {
	case limit < 0 || limit > MaxImportChunk:
		return res, permatrix.Errorf(permatrix.EINVALID, "chunk must be 1 to %d lines (0: all or nothing)", MaxImportChunk)
	case limit == 0:
		limit = MaxAtomicImport
	}
	var batch []ImportLine
	commit := func() error {
		if len(batch) == 0 {
			return nil
		}
		n, rev, err := s.Import(ctx, batch)
		if err != nil {
			return err
		}
		res.Imported += n
		res.Chunks++
		res.Revision = rev
		batch = batch[:0]
		if o.Progress != nil {
			o.Progress(res)
		}
		return nil
	}
	for {
		l, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, err
		}
		res.Lines++
		batch = append(batch, l)
		if len(batch) < limit {
			continue
		}
		if o.Chunk == 0 {
			return res, permatrix.Errorf(permatrix.ETOOLARGE,
				"an all-or-nothing import holds at most %d lines: import in chunks (chunk=10000), each chunk a commit", MaxAtomicImport)
		}
		if err := commit(); err != nil {
			return res, err
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
	}
	if res.Lines == 0 {
		return res, permatrix.Errorf(permatrix.EINVALID, "no assignments in the import (NDJSON: one assignment object per line)")
	}
	return res, commit()
}

// Describe says how far an import got, for a message or a log line.
func (r ImportResult) Describe() string {
	if r.Chunks == 0 {
		return "nothing was imported"
	}
	return fmt.Sprintf("%d assignments were imported in %d commits, the last at revision %d", r.Imported, r.Chunks, r.Revision)
}
