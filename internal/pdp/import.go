package pdp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sync"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/store"
)

// Import limits.
const (
	// MaxAtomicImport is the most lines an all-or-nothing import may have:
	// one commit holds all of them in memory until it is made. Larger
	// imports are committed in chunks (ImportOptions.Chunk).
	MaxAtomicImport = 100_000
	// MaxHeldImportBytes bounds the strings (ids, names, actors) of the
	// lines an import holds until their commit: an all-or-nothing import
	// past it is refused, a chunk reaching it is committed with the lines
	// it has. A line's strings are some 60 bytes in common use (100,000
	// lines are 6 MB), ~0.6 KB at the longest ids, and the commit holds
	// some twenty times a line's strings (its keys, records, units and
	// verdict): at the line bound alone, 100,000 lines of the longest ids
	// took ~1 GB; at this bound, 29,000 of them, 348 MiB of heap.
	MaxHeldImportBytes = 16 << 20
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

// read counts line read.
func (r *ImportResult) read(l ImportLine) {
	r.Lines++
	r.records = r.records || l.Membership != nil || l.Role != nil || l.Project != nil
}

// committed counts a commit of n lines, stored of them stored already (a
// commit of nothing when all were), at revision rev, the last of them input
// line last, and tells progress.
func (r *ImportResult) committed(n, stored int, rev uint64, last int, progress func(ImportResult)) {
	r.Imported += n - stored
	r.AlreadyStored += stored
	if stored < n { // else nothing was written, nothing committed
		r.Chunks++
	}
	r.Revision = rev
	r.LastLine = last
	if progress != nil {
		progress(*r)
	}
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
// made whole or not at all, the lines read since are dropped. In chunks on
// a store without a commit size limit, a chunk is read, planned and judged
// while the chunk before it commits (importOverlapped), so the import
// reads at most one chunk past a refused line and holds two chunks.
func (s *Service) ImportStream(ctx context.Context, next func() (ImportLine, error), o ImportOptions) (ImportResult, error) {
	var res ImportResult
	if o.Chunk < 0 || o.Chunk > MaxImportChunk {
		return res, permatrix.Errorf(permatrix.EINVALID, "chunk must be 1 to %d lines per commit (0: all or nothing)", MaxImportChunk)
	}
	if _, bounded := s.backend.(store.Bounded); o.Chunk > 0 && !bounded {
		return s.importOverlapped(ctx, next, o)
	}
	// A chunk is one commit, or several where the store's commits are
	// smaller (importLines commits the lines that fit).
	err := s.readChunks(ctx, next, o, &res, func(batch []ImportLine) error {
		for done := 0; done < len(batch); {
			n, stored, rev, err := s.importLines(ctx, batch[done:], o.Chunk > 0, nil)
			if err != nil {
				return err
			}
			done += n
			res.committed(n, stored, rev, batch[done-1].Line, o.Progress)
		}
		return nil
	})
	return res, err
}

// readChunks reads an import's lines, counting them in res, and hands
// them to write o.Chunk at a time (all of them when 0), the last chunk
// the lines left — or fewer, once a chunk's strings reach
// MaxHeldImportBytes. It ends with the error that stopped the reading or a
// write, nothing read after it written; write may keep the lines it is
// given.
func (s *Service) readChunks(ctx context.Context, next func() (ImportLine, error), o ImportOptions, res *ImportResult, write func([]ImportLine) error) error {
	whole := false
	// The first chunk's room grows with its lines: chunk= alone (8 MB
	// at 50,000) reserved for a request of one line is memory a flood of
	// tiny requests takes. Once a chunk came whole, the next is likely
	// to, and gets its whole room at once (no copies as it grows).
	batch := make([]ImportLine, 0, min(o.Chunk, firstChunkRoom))
	held := 0 // the batch's strings (ImportLine.heldBytes)
	for {
		l, err := s.readLine(ctx, next, o, len(batch), held)
		if errors.Is(err, io.EOF) {
			whole = errors.Is(err, EndOfExport)
			break
		}
		if err != nil {
			return err
		}
		res.read(l)
		batch = append(batch, l)
		held += l.heldBytes()
		if len(batch) == o.Chunk || (o.Chunk > 0 && held >= MaxHeldImportBytes) {
			if err := write(batch); err != nil {
				return err
			}
			batch, held = make([]ImportLine, 0, o.Chunk), 0
		}
	}
	if err := s.noLines(res, whole); err != nil || res.Lines == 0 {
		return err
	}
	if len(batch) == 0 {
		return nil
	}
	return write(batch)
}

// firstChunkRoom is how many lines an import's first chunk has room for
// before any is read (readChunks).
const firstChunkRoom = 256

// readLine is an import's next line, checked as it arrives, so that what
// is held until the commit is valid lines of bounded size; held is how
// many lines are held already, heldBytes their strings (an all-or-nothing
// import holds at most MaxAtomicImport lines and MaxHeldImportBytes).
// io.EOF (wrapped: EndOfExport) ends the lines.
func (s *Service) readLine(ctx context.Context, next func() (ImportLine, error), o ImportOptions, held, heldBytes int) (ImportLine, error) {
	if err := ctx.Err(); err != nil {
		return ImportLine{}, err
	}
	l, err := next()
	if err != nil {
		return l, err
	}
	if err := l.validate(); err != nil {
		return l, err
	}
	if l.Role != nil {
		if err := s.boundRole(&l); err != nil {
			return l, err
		}
	}
	switch {
	case o.Chunk == 0 && held == MaxAtomicImport:
		return l, permatrix.Errorf(permatrix.ETOOLARGE,
			"an all-or-nothing import holds at most %d lines: import in chunks (chunk=10000), each chunk a commit", MaxAtomicImport)
	case o.Chunk == 0 && heldBytes+l.heldBytes() > MaxHeldImportBytes:
		return l, permatrix.Errorf(permatrix.ETOOLARGE,
			"line %d: an all-or-nothing import holds at most %d MiB of ids and names (its lines' strings), and this line's would pass it: import in chunks (chunk=10000), each chunk a commit",
			l.Line, MaxHeldImportBytes>>20)
	}
	return l, nil
}

// noLines is the answer to an import that read no line: an error, or
// (whole: an empty store's export) nothing to commit, the store as it is
// (its revision, not 0). It is nil once a line was read.
func (s *Service) noLines(res *ImportResult, whole bool) error {
	switch {
	case res.Lines > 0:
		return nil
	case !whole:
		return permatrix.Errorf(permatrix.EINVALID, "no assignments in the import (NDJSON: one assignment object, or custom_role, project or membership record, per line)")
	}
	res.Revision = s.backend.Revision()
	return nil
}

// importOverlapped is ImportStream in chunks on a store whose commits have
// no size limit (bbolt): a chunk is planned and judged while the chunk
// before it commits, and read while the one before it is planned — on a
// snapshot that may not show the chunk before yet. It commits only once
// that one has committed, and what it read is held to the newer state as
// any write's plan is (store.UpdateSettled): a unit it read that the
// chunk before wrote makes it plan again, after it. The serial commit (a
// third of a large import's CPU, and its fsync) no longer leaves the cores
// idle. At most two chunks are held: one in its write, one being read.
func (s *Service) importOverlapped(ctx context.Context, next func() (ImportLine, error), o ImportOptions) (ImportResult, error) {
	var res ImportResult
	var last *chunkWrite   // the chunk in its write; nil: none
	var newest *chunkWrite // the chunk started last, its write ended or not
	// A panic in this goroutine (the reading of the lines, or progress)
	// leaves no chunk writing: the server's recovery answers the request,
	// and a chunk committed after that answer was a commit nothing told
	// of. The chunks in their write stop (a commit under way is made whole
	// or not at all) and are waited for; on a return they have ended.
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		for _, w := range []*chunkWrite{last, newest} {
			if w != nil {
				<-w.done
			}
		}
	}()
	// done takes the result of the chunk in its write, once it is made,
	// and ends the import with err, or with the chunk's error: it comes
	// first in the lines.
	done := func(err error) (ImportResult, error) {
		if last != nil {
			if werr := last.wait(&res, o.Progress); werr != nil {
				err = werr
			}
		}
		return res, err
	}
	// start starts writing batch, after the chunk in its write, and takes
	// that one's result once it is made. If that one failed, batch is
	// not committed (its write stops before its commit), and the import
	// ends with that error.
	start := func(batch []ImportLine) error {
		w := s.startChunk(ctx, batch, last)
		newest = w
		if last != nil {
			if err := last.wait(&res, o.Progress); err != nil {
				<-w.done
				last = nil
				return err
			}
		}
		last = w
		return nil
	}
	return done(s.readChunks(ctx, next, o, &res, start))
}

// chunkWrite is the write of one chunk of an overlapped import.
type chunkWrite struct {
	// after is the chunk before it, while it is to be waited for.
	after *chunkWrite
	// planned is closed once the chunk's first plan is made (or its
	// write ended): the chunk after it may start planning. done is closed
	// once its write has ended; n, stored, rev and err are its outcome
	// (importLines'), lastLine the input line number of the last line it
	// committed. Its lines are not kept past its write: the chunk after it
	// points to it until its own first plan, and a chunk committed held
	// then was a third chunk in memory.
	planned, done chan struct{}
	plannedOnce   sync.Once
	n, stored     int
	rev           uint64
	lastLine      int
	err           error
	// beforeRev is the revision the chunk before committed at, once its
	// first plan waited for it (settle): after that plan's snapshot, the
	// plan's conflict may be with it, by design (writeSome).
	beforeRev uint64
}

// errChunkBefore stops a chunk whose chunk before failed: the import ends
// with that one's error.
var errChunkBefore = errors.New("the chunk before was not committed")

// startChunk starts writing lines, a chunk committed after the chunk
// before (nil: none), and planned once that one's plan is made: two plans
// at once only shared the cores, and delayed the commit the chunk waits
// for.
func (s *Service) startChunk(ctx context.Context, lines []ImportLine, before *chunkWrite) *chunkWrite {
	w := &chunkWrite{after: before, planned: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer w.markPlanned()
		// The plan ran in the request's goroutine, under the server's
		// recovery of panics: here one would end the process.
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("import chunk panicked", "panic", r, "stack", string(debug.Stack()))
				w.err = permatrix.Errorf(permatrix.EINTERNAL, "the import failed at lines %d to %d", lines[0].Line, lines[len(lines)-1].Line)
			}
		}()
		if before != nil {
			select {
			case <-before.planned:
			case <-before.done:
			}
		}
		w.n, w.stored, w.rev, w.err = s.importLines(ctx, lines, true, w)
		if w.err == nil {
			w.lastLine = lines[w.n-1].Line
		}
	}()
	return w
}

func (w *chunkWrite) markPlanned() { w.plannedOnce.Do(func() { close(w.planned) }) }

// settle is called after each plan of the chunk, p the policy that judged
// it, with s.writers held shared (writeSome): the first time, it lets the
// next chunk plan, and waits for the chunk before — not holding s.writers,
// which that chunk may need whole to plan again alone. The plan is taken
// if the chunk before committed and the policy is still p (a bundle swapped
// in meanwhile judges the chunk again).
func (w *chunkWrite) settle(s *Service, p *opa.Policy) error {
	w.markPlanned()
	before := w.after
	if before == nil {
		return nil
	}
	w.after = nil
	select {
	case <-before.done:
	default:
		s.writers.RUnlock()
		<-before.done
		s.writers.RLock()
	}
	if before.err != nil {
		return errChunkBefore
	}
	w.beforeRev = before.rev
	if now, err := s.policy(); err != nil || now != p {
		return store.ErrPlanAgain
	}
	return nil
}

// wait waits for the chunk's write and adds what it made to res (telling
// progress), or returns its error.
func (w *chunkWrite) wait(res *ImportResult, progress func(ImportResult)) error {
	<-w.done
	if w.err != nil {
		return w.err
	}
	res.committed(w.n, w.stored, w.rev, w.lastLine, progress)
	return nil
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
