package http

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/pdp"
	"github.com/permatrix/permatrix/internal/store"
)

// MaxImportLine bounds one line of an import (an assignment object is a
// few hundred bytes).
const MaxImportLine = 64 << 10

// ImportReader reads an NDJSON import as it arrives: one record per line
// (an assignment object, or a custom role, project or membership: importLine;
// blank lines skipped, up to maxBlankRun in a row), each decoded by the strict decoder,
// numbered from 1. The HTTP import and `permatrix import` read through it.
//
// An import whose first line is an export's header (store.ExportHeaderLine:
// GET /v1/export?format=ndjson, permatrix export --format ndjson) is taken
// only whole: it ends with the export's end line, whose count of records
// matches the lines before it, and nothing follows. An export cut short
// on a line boundary imported as a smaller store; now the reader refuses
// it at its end (the lines before are given; all or nothing, nothing is
// stored). An import without the header is lines as ever.
type ImportReader struct {
	r     *bufio.Reader
	n     int
	actor func(line int, given *string) (string, error)
	// seen: a line that is not blank was read.
	seen bool
	// export is the export's header, nil when the import is not one;
	// records counts its record lines, end is the line of its end line
	// (0 until it is read).
	export  *store.ExportHeader
	records int64
	end     int
	// blanks counts the blank lines in a row up to this one.
	blanks int
	// req is the line being decoded, one record reused from line to line
	// (a record a line was an allocation: the decoder's any holds it).
	req importLine
}

// maxBlankRun bounds a run of blank lines. A blank line costs a read and
// nothing else, and gzip makes a GiB of them from a MB: an import of
// 1,073,741,824 blank lines ran ~150 s of CPU, long after its client had
// left. NDJSON writers put a blank line at the end, if any: a run of more
// than maxBlankRun is refused at its line.
const maxBlankRun = 1000

// NewImportReader reads r; actor decides each line's actor from the line's
// own "actor" (nil when absent).
func NewImportReader(r io.Reader, actor func(line int, given *string) (string, error)) *ImportReader {
	return &ImportReader{r: bufio.NewReaderSize(r, 64<<10), actor: actor}
}

// Next is the next line's assignment, or io.EOF after the last
// (pdp.EndOfExport after a whole export's end line).
func (ir *ImportReader) Next() (pdp.ImportLine, error) {
	for {
		raw, err := ir.readLine()
		if errors.Is(err, io.EOF) && ir.export != nil && ir.end == 0 {
			return pdp.ImportLine{}, permatrix.Errorf(permatrix.EINVALID,
				`the export is cut short: it ends at line %d, after %s, without its end line ({"end":{"records":N,…}}, an export's last line): records are missing; import the whole export`,
				ir.n, records(ir.records))
		}
		if errors.Is(err, io.EOF) && ir.export != nil {
			return pdp.ImportLine{}, pdp.EndOfExport // whole: it may have no records
		}
		if err != nil {
			return pdp.ImportLine{}, err
		}
		ir.n++
		// Blank is JSON's whitespace only: bytes.TrimSpace would also
		// skip a line of a no-break space or a vertical tab, which is
		// not JSON and is refused as any malformed line.
		if len(bytes.Trim(raw, " \t\r")) == 0 {
			if ir.blanks++; ir.blanks > maxBlankRun {
				return pdp.ImportLine{}, permatrix.Errorf(permatrix.EINVALID,
					"line %d: more than %d blank lines in a row: an NDJSON import has no such runs", ir.n, maxBlankRun)
			}
			continue
		}
		ir.blanks = 0
		ir.req = importLine{}
		req := &ir.req
		if err := decodeJSON(raw, req); err != nil {
			return pdp.ImportLine{}, permatrix.Errorf(permatrix.EINVALID, "line %d: %s", ir.n, permatrix.ErrorMessage(err))
		}
		if err := req.one(); err != nil {
			return pdp.ImportLine{}, permatrix.Errorf(permatrix.EINVALID, "line %d: %s", ir.n, permatrix.ErrorMessage(err))
		}
		if err := ir.frame(req); err != nil {
			return pdp.ImportLine{}, permatrix.Errorf(permatrix.EINVALID, "line %d: %s", ir.n, permatrix.ErrorMessage(err))
		}
		if req.Export != nil || req.End != nil {
			continue // the export's frame, no record
		}
		actor, err := ir.actor(ir.n, req.Actor)
		if err != nil {
			return pdp.ImportLine{}, permatrix.Errorf(permatrix.ErrorCode(err), "line %d: %s", ir.n, permatrix.ErrorMessage(err))
		}
		return pdp.ImportLine{Line: ir.n, Assignment: req.Assignment, Membership: req.Membership,
			Role: req.CustomRole, Project: req.Project, Actor: actor}, nil
	}
}

// frame checks the line's place in an export: the header first, the end
// last, counting the records between; a line after the end, or an end
// without the header, is refused.
func (ir *ImportReader) frame(l *importLine) error {
	first := !ir.seen
	ir.seen = true
	switch {
	case ir.end > 0:
		return permatrix.Errorf(permatrix.EINVALID, "the export ended at line %d (its end line): nothing follows it (two files joined?)", ir.end)
	case l.Export != nil:
		if !first {
			return permatrix.Errorf(permatrix.EINVALID, `an export's header ({"export":…}) is its first line, not after other lines`)
		}
		if l.Export.Version != store.RecordsVersion {
			return permatrix.Errorf(permatrix.EINVALID, "export version %d: this permatrix reads version %d", l.Export.Version, store.RecordsVersion)
		}
		ir.export = l.Export
	case l.End != nil:
		switch {
		case ir.export == nil:
			return permatrix.Errorf(permatrix.EINVALID, `an end line ({"end":…}) ends an export, which begins with its header ({"export":…}) on its first line: this import has none`)
		case l.End.Revision != ir.export.Revision:
			return permatrix.Errorf(permatrix.EINVALID, "the export's end is of revision %d, its header of revision %d: not one export", l.End.Revision, ir.export.Revision)
		case l.End.Records != ir.records:
			return permatrix.Errorf(permatrix.EINVALID, "the export's end (line %d) counts %s, and %d came before it: records are missing or added; import the whole export as it was written",
				ir.n, records(l.End.Records), ir.records)
		}
		ir.end = ir.n
	case ir.export != nil:
		ir.records++
	}
	return nil
}

// records is "1 record" or "<n> records".
func records(n int64) string {
	if n == 1 {
		return "1 record"
	}
	return strconv.FormatInt(n, 10) + " records"
}

// CheckExportEnd reads a file's first and last lines (not blank): when the
// first is an export's header, the last must be an end line, or the
// export is cut short. ImportReader checks it at the end, when the chunks
// before are committed; `permatrix import` checks a file so before it
// commits anything. It reads at most twice MaxImportLine. lines is the
// file's lines that are not blank, when the caller counted them (-1: not
// counted): an end whose count is not theirs less the header and the end
// is refused too (a line lost or added in the middle); otherwise the
// count is ImportReader's to check, at the end.
func CheckExportEnd(f io.ReaderAt, size int64, lines int64) error {
	read := func(off, n int64) ([]byte, error) {
		buf := make([]byte, n)
		k, err := f.ReadAt(buf, off)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		return buf[:k], nil
	}
	span := min(size, MaxImportLine+2) // a longest line, its newline, and one before
	head, err := read(0, span)
	if err != nil {
		return err
	}
	first, _ := frameOf(head, false)
	if first == nil || first.Export == nil {
		return nil // not an export: lines as ever
	}
	// The last line is the last that is not blank: blank lines after the
	// end (more than one span of them) were taken for an end missing.
	end := size
	for end > 0 {
		n := min(end, span)
		b, err := read(end-n, n)
		if err != nil {
			return err
		}
		i := len(b) - 1
		for i >= 0 && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
			i--
		}
		if i >= 0 {
			end -= n - int64(i) - 1
			break
		}
		end -= n
	}
	span = min(end, span)
	tail, err := read(end-span, span)
	if err != nil {
		return err
	}
	last, whole := frameOf(tail, true)
	if last == nil || last.End == nil || (!whole && end > span) {
		return permatrix.Errorf(permatrix.EINVALID,
			`the export is cut short: its last line is not its end line ({"end":{"records":N,…}}, an export's last line): records are missing; import the whole export`)
	}
	if lines >= 0 && last.End.Records != lines-2 {
		return permatrix.Errorf(permatrix.EINVALID,
			"the export's end counts %s, and %d lines are between its header and its end: records are missing or added; import the whole export as it was written",
			records(last.End.Records), lines-2)
	}
	return nil
}

// frameOf decodes the first line of b that is not blank (the last, with
// fromEnd), nil when it is not a line of an import; whole says a newline
// (or b's start, from the end) bounds it on the other side.
func frameOf(b []byte, fromEnd bool) (l *importLine, whole bool) {
	lines := bytes.Split(b, []byte("\n"))
	for i := range lines {
		j := i
		if fromEnd {
			j = len(lines) - 1 - i
		}
		if len(bytes.Trim(lines[j], " \t\r")) == 0 {
			continue
		}
		var req importLine
		if decodeJSON(lines[j], &req) != nil || req.one() != nil {
			return nil, false
		}
		return &req, fromEnd && j > 0 || !fromEnd && j < len(lines)-1
	}
	return nil, false
}

// importLine is one line of an import: an assignment object, as POST
// /v1/assignments takes it, or one record of another kind under its key
// (the lines GET /v1/export?format=ndjson writes, store.WriteRecords);
// either with its "actor".
type importLine struct {
	assignmentRequest
	Membership *permatrix.Membership `json:"membership"`
	CustomRole *permatrix.Role       `json:"custom_role"`
	Project    *permatrix.Project    `json:"project"`
	// An export's first and last lines (ImportReader.frame).
	Export *store.ExportHeader `json:"export"`
	End    *store.ExportEnd    `json:"end"`
}

// one refuses a line that is more than one record: a record key with
// another, or with an assignment's keys (it would be stored as one of
// them, the rest dropped).
func (l *importLine) one() error {
	n := 0
	for _, given := range []bool{l.Membership != nil, l.CustomRole != nil, l.Project != nil, l.Export != nil, l.End != nil} {
		if given {
			n++
		}
	}
	a := l.Assignment
	switch {
	case n > 1:
		return permatrix.Errorf(permatrix.EINVALID, "a line is one record: one of membership, custom_role and project (or an export's header or end)")
	case (l.Export != nil || l.End != nil) && l.Actor != nil:
		return permatrix.Errorf(permatrix.EINVALID, "an export's header and end lines have no actor")
	case n == 1 && (a.ID != "" || a.Subject != "" || a.System != "" || a.Role != "" || a.Permission != "" || a.Scope != permatrix.Scope{}):
		return permatrix.Errorf(permatrix.EINVALID, "a line is one record: an assignment (subject, system, role or permission, scope) or one of membership, custom_role and project, not both")
	}
	return nil
}

// readLine reads one line without its newline; a line over MaxImportLine
// is an error, not a growing buffer.
//
// The line is the reader's buffer when it fits in it (ReadSlice's: valid
// until the next read), a copy only when it spans reads: a copy a line
// was an allocation, and the line is decoded before the next is read.
func (ir *ImportReader) readLine() ([]byte, error) {
	var line []byte
	for first := true; ; first = false {
		chunk, err := ir.r.ReadSlice('\n')
		if len(line)+len(bytes.TrimSuffix(chunk, []byte("\n"))) > MaxImportLine {
			return nil, permatrix.Errorf(permatrix.EINVALID, "line %d is longer than %d bytes", ir.n+1, MaxImportLine)
		}
		if first && err == nil {
			return bytes.TrimSuffix(chunk, []byte("\n")), nil
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return bytes.TrimSuffix(line, []byte("\n")), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return line, nil
		case errors.Is(err, io.EOF):
			return nil, err
		default:
			// The body broke off (the client left, the connection's
			// deadline passed) or is not what it claims (gzip): the
			// request's fault, never a 500.
			var he *echo.HTTPError
			if errors.As(err, &he) {
				return nil, he
			}
			return nil, permatrix.Errorf(permatrix.EINVALID, "line %d: reading the import: %v", ir.n+1, err)
		}
	}
}
