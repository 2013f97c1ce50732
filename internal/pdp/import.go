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

// EndOfExport is how an import's next says its lines ended with a whole
// export's end (io.EOF, wrapped): an export of an empty store has no
// line to import and is no error, where an import of no lines is.
var EndOfExport = fmt.Errorf("the export's end: %w", io.EOF)

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

// ImportResult is how far an import got: the lines read, the lines
// committed — those whose assignment the import stored (Imported) and
// those whose assignment was stored already (AlreadyStored: a file
// imported again), the commits that changed the store, the revision of the
// last, and the input line number of the last line committed (a resumed
// import starts after it).
type ImportResult struct {
	Lines         int    `json:"lines"`
	Imported      int    `json:"imported"`
	AlreadyStored int    `json:"already_stored"`
	Chunks        int    `json:"chunks"`
	Revision      uint64 `json:"revision"`
	LastLine      int    `json:"last_line"`
	// records: a line was a record other than an assignment (Noun).
	records bool
}

// Noun is what the import's lines are, for messages: "assignment", or
// "record" once a line was a custom role, project or membership.
func (r ImportResult) Noun() string {
	if r.records {
		return "record"
	}
	return "assignment"
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
func (s *Service) ImportStream(ctx context.Context, next func() (ImportLine, error), o ImportOptions) (ImportResult, error) {
	var res ImportResult
	if o.Chunk < 0 || o.Chunk > MaxImportChunk {
		return res, permatrix.Errorf(permatrix.EINVALID, "chunk must be 1 to %d lines per commit (0: all or nothing)", MaxImportChunk)
	}
	var batch []ImportLine
	commit := func() error {
		// A chunk is one commit, or several where the store's commits
		// are smaller (importLines commits the lines that fit).
		for done := 0; done < len(batch); {
			n, stored, rev, err := s.importLines(ctx, batch[done:], o.Chunk > 0)
			if err != nil {
				return err
			}
			done += n
			res.Imported += n - stored
			res.AlreadyStored += stored
			if stored < n { // else nothing was written, nothing committed
				res.Chunks++
			}
			res.Revision = rev
			res.LastLine = batch[done-1].Line
			if o.Progress != nil {
				o.Progress(res)
			}
		}
		batch = batch[:0]
		return nil
	}
	whole := false
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		l, err := next()
		if errors.Is(err, io.EOF) {
			whole = errors.Is(err, EndOfExport)
			break
		}
		if err != nil {
			return res, err
		}
		// A line is checked as it arrives, so that what is held until
		// the commit is valid lines of bounded size.
		if err := l.validate(); err != nil {
			return res, err
		}
		if l.Role != nil {
			if err := s.boundRole(&l); err != nil {
				return res, err
			}
		}
		if o.Chunk == 0 && len(batch) == MaxAtomicImport {
			return res, permatrix.Errorf(permatrix.ETOOLARGE,
				"an all-or-nothing import holds at most %d lines: import in chunks (chunk=10000), each chunk a commit", MaxAtomicImport)
		}
		res.Lines++
		res.records = res.records || l.Membership != nil || l.Role != nil || l.Project != nil
		batch = append(batch, l)
		if len(batch) == o.Chunk {
			if err := commit(); err != nil {
				return res, err
			}
		}
	}
	if res.Lines == 0 && !whole {
		return res, permatrix.Errorf(permatrix.EINVALID, "no assignments in the import (NDJSON: one assignment object, or custom_role, project or membership record, per line)")
	}
	if res.Lines == 0 {
		// An empty store's export: nothing to commit, the store is as
		// it is (its revision, not 0).
		res.Revision = s.backend.Revision()
		return res, nil
	}
	return res, commit()
}

// Describe says how far an import got, for a message or a log line.
func (r ImportResult) Describe() string {
	if r.LastLine == 0 {
		return "nothing was imported"
	}
	lines := fmt.Sprintf("lines 1 to %d are", r.LastLine)
	if r.LastLine == 1 {
		lines = "line 1 is"
	}
	if r.Chunks == 0 {
		return fmt.Sprintf("%s stored already: nothing was imported (revision %d)", lines, r.Revision)
	}
	commits := fmt.Sprintf("%d commits, the last", r.Chunks)
	if r.Chunks == 1 {
		commits = "1 commit,"
	}
	if r.AlreadyStored > 0 {
		return fmt.Sprintf("%s stored: %s imported and %d already stored, in %s at revision %d",
			lines, plural(r.Imported, r.Noun()), r.AlreadyStored, commits, r.Revision)
	}
	return fmt.Sprintf("%s imported: %s in %s at revision %d", lines, plural(r.Imported, r.Noun()), commits, r.Revision)
}

// plural is "1 <noun>" or "<n> <noun>s".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// boundRole checks a custom role line against the catalog as it arrives
// and keeps its permissions once each: a line held until its commit holds
// at most its system's permissions. A role line holds a list as long as
// its line allows (some 13,000 ids in 64 KiB), and 100,000 of them held
// until the commit judged them were gigabytes. The write rules judge it
// again at the commit (a built-in role's name, the actor's right to).
func (s *Service) boundRole(l *ImportLine) error {
	p, err := s.policy()
	if err != nil {
		return err
	}
	sys, ok := p.Catalog[l.Role.System]
	switch {
	case !ok:
		return permatrix.Errorf(permatrix.EUNPROCESSABLE, "line %d: %s", l.Line, permatrix.ErrorMessage(p.Catalog.UnknownSystem(l.Role.System)))
	case !sys.CustomRoles.Enabled:
		return permatrix.Errorf(permatrix.EUNPROCESSABLE, "line %d: system %q has no custom roles", l.Line, l.Role.System)
	}
	for _, perm := range l.Role.Permissions {
		if _, ok := sys.Permissions[perm]; !ok {
			return permatrix.Errorf(permatrix.EUNPROCESSABLE, "line %d: unknown permission %q for system %q", l.Line, perm, l.Role.System)
		}
	}
	*l.Role = l.Role.Normal()
	return nil
}
