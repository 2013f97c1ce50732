package http

import (
	"bufio"
	"bytes"
	"errors"
	"io"

	"github.com/labstack/echo/v4"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/pdp"
)

// MaxImportLine bounds one line of an import (an assignment object is a
// few hundred bytes).
const MaxImportLine = 64 << 10

// ImportReader reads an NDJSON import as it arrives: one record per line
// (an assignment object, or a custom role, project or membership: importLine;
// blank lines skipped), each decoded by the strict decoder,
// numbered from 1. The HTTP import and `permatrix import` read through it.
type ImportReader struct {
	r     *bufio.Reader
	n     int
	actor func(line int, given *string) (string, error)
}

// NewImportReader reads r; actor decides each line's actor from the line's
// own "actor" (nil when absent).
func NewImportReader(r io.Reader, actor func(line int, given *string) (string, error)) *ImportReader {
	return &ImportReader{r: bufio.NewReaderSize(r, 64<<10), actor: actor}
}

// Next is the next line's assignment, or io.EOF after the last.
func (ir *ImportReader) Next() (pdp.ImportLine, error) {
	for {
		raw, err := ir.readLine()
		if err != nil {
			return pdp.ImportLine{}, err
		}
		ir.n++
		// Blank is JSON's whitespace only: bytes.TrimSpace would also
		// skip a line of a no-break space or a vertical tab, which is
		// not JSON and is refused as any malformed line.
		if len(bytes.Trim(raw, " \t\r")) == 0 {
			continue
		}
		var req importLine
		if err := decodeJSON(raw, &req); err != nil {
			return pdp.ImportLine{}, permatrix.Errorf(permatrix.EINVALID, "line %d: %s", ir.n, permatrix.ErrorMessage(err))
		}
		if err := req.one(); err != nil {
			return pdp.ImportLine{}, permatrix.Errorf(permatrix.EINVALID, "line %d: %s", ir.n, permatrix.ErrorMessage(err))
		}
		actor, err := ir.actor(ir.n, req.Actor)
		if err != nil {
			return pdp.ImportLine{}, permatrix.Errorf(permatrix.ErrorCode(err), "line %d: %s", ir.n, permatrix.ErrorMessage(err))
		}
		return pdp.ImportLine{Line: ir.n, Assignment: req.Assignment, Membership: req.Membership,
			Role: req.CustomRole, Project: req.Project, Actor: actor}, nil
	}
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
}

// one refuses a line that is more than one record: a record key with
// another, or with an assignment's keys (it would be stored as one of
// them, the rest dropped).
func (l *importLine) one() error {
	n := 0
	for _, given := range []bool{l.Membership != nil, l.CustomRole != nil, l.Project != nil} {
		if given {
			n++
		}
	}
	a := l.Assignment
	switch {
	case n > 1:
		return permatrix.Errorf(permatrix.EINVALID, "a line is one record: one of membership, custom_role and project")
	case n == 1 && (a.ID != "" || a.Subject != "" || a.System != "" || a.Role != "" || a.Permission != "" || a.Scope != permatrix.Scope{}):
		return permatrix.Errorf(permatrix.EINVALID, "a line is one record: an assignment (subject, system, role or permission, scope) or one of membership, custom_role and project, not both")
	}
	return nil
}

// readLine reads one line without its newline; a line over MaxImportLine
// is an error, not a growing buffer.
func (ir *ImportReader) readLine() ([]byte, error) {
	var line []byte
	for {
		chunk, err := ir.r.ReadSlice('\n')
		if len(line)+len(bytes.TrimSuffix(chunk, []byte("\n"))) > MaxImportLine {
			return nil, permatrix.Errorf(permatrix.EINVALID, "line %d is longer than %d bytes", ir.n+1, MaxImportLine)
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
