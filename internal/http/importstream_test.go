package http_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/labstack/echo/v4"

	"github.com/permatrix/permatrix"
	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/internal/pdp"
)

const importLine = `{"subject":"user:a","system":"celonis-task-mining","role":"analyst","scope":{"type":"service"}}`

// readAll reads an import to its end or first error.
func readAll(r io.Reader) ([]pdp.ImportLine, error) {
	ir := permhttp.NewImportReader(r, func(_ int, given *string) (string, error) {
		if given == nil {
			return "", nil
		}
		if *given == "refused" {
			return "", permatrix.Errorf(permatrix.EFORBIDDEN, "actor refused")
		}
		return *given, nil
	})
	var lines []pdp.ImportLine
	for {
		l, err := ir.Next()
		if errors.Is(err, io.EOF) {
			return lines, nil
		}
		if err != nil {
			return lines, err
		}
		lines = append(lines, l)
	}
}

// Lines are numbered as in the input: blank lines count (and are
// skipped), CRLF ends a line too, the last line needs no newline.
func TestImportReaderNumbersLines(t *testing.T) {
	body := "\n" + importLine + "\r\n  \n" + strings.Replace(importLine, `{`, `{"actor":"ann",`, 1) + "\n\n" + importLine
	lines, err := readAll(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	// A line of exactly MaxImportLine bytes is read.
	exact := strings.Replace(importLine, `"role"`, strings.Repeat(" ", permhttp.MaxImportLine-len(importLine))+`"role"`, 1)
	if l, err := readAll(strings.NewReader(exact + "\n" + exact)); err != nil || len(l) != 2 || len(exact) != permhttp.MaxImportLine {
		t.Fatalf("lines of %d bytes: %d read, %v", len(exact), len(l), err)
	}
	if len(lines) != 3 || lines[0].Line != 2 || lines[1].Line != 4 || lines[2].Line != 6 ||
		lines[1].Actor != "ann" || lines[0].Actor != "" || lines[2].Assignment.Role != "analyst" {
		t.Fatalf("%+v", lines)
	}
}

// What a line may not be: each is refused with its line number and the
// reason, and the lines before it were read.
func TestImportReaderRefuses(t *testing.T) {
	long := `{"subject":"user:` + strings.Repeat("x", permhttp.MaxImportLine) + `"}`
	for _, c := range []struct {
		what, bad, code, msg string
	}{
		{"a case-variant key", `{"Subject":"user:b","subject":"user:a","system":"celonis-task-mining","role":"analyst","scope":{"type":"service"}}`, permatrix.EINVALID, `line 3: unknown key "Subject"`},
		{"a key twice", `{"subject":"user:b","subject":"user:a","system":"celonis-task-mining","role":"analyst","scope":{"type":"service"}}`, permatrix.EINVALID, `line 3: duplicate key "subject"`},
		{"a key twice deeper", `{"subject":"user:a","system":"celonis-task-mining","role":"analyst","scope":{"type":"service","type":"project"}}`, permatrix.EINVALID, `line 3: duplicate key "type"`},
		{"two objects on a line", importLine + importLine, permatrix.EINVALID, "line 3: "},
		{"not an object", `["subject"]`, permatrix.EINVALID, "line 3: the body must be a JSON object"},
		{"null for a string", `{"subject":null,"system":"celonis-task-mining","role":"analyst","scope":{"type":"service"}}`, permatrix.EINVALID, "line 3: "},
		{"a line over the limit", long, permatrix.EINVALID, "line 3 is longer than 65536 bytes"},
		{"an actor refused", `{"actor":"refused",` + importLine[1:], permatrix.EFORBIDDEN, "line 3: actor refused"},
	} {
		lines, err := readAll(strings.NewReader(importLine + "\n\n" + c.bad + "\n" + importLine + "\n"))
		if permatrix.ErrorCode(err) != c.code || !strings.Contains(permatrix.ErrorMessage(err), c.msg) || len(lines) != 1 {
			t.Errorf("%s: read %d lines, then %v; want %s %q", c.what, len(lines), err, c.code, c.msg)
		}
	}
}

// A body that breaks off is the request's fault (400 naming the line it
// broke in), not a fault of the server; an HTTP error from the body (gzip
// over its limit, a refused encoding) keeps its status.
func TestImportReaderBrokenBody(t *testing.T) {
	broken := io.MultiReader(strings.NewReader(importLine+"\n"+importLine[:20]), iotest.ErrReader(io.ErrUnexpectedEOF))
	lines, err := readAll(broken)
	if len(lines) != 1 || permatrix.ErrorCode(err) != permatrix.EINVALID || !strings.Contains(permatrix.ErrorMessage(err), "line 2: reading the import: unexpected EOF") {
		t.Fatalf("read %d lines, then %v", len(lines), err)
	}
	tooLarge := io.MultiReader(strings.NewReader(importLine+"\n"), iotest.ErrReader(echo.ErrStatusRequestEntityTooLarge))
	lines, err = readAll(tooLarge)
	var he *echo.HTTPError
	if len(lines) != 1 || !errors.As(err, &he) || he.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("read %d lines, then %v", len(lines), err)
	}
}

// CheckExportEnd tells an export file cut short from a whole one by its
// first and last lines, before anything is committed: also a file larger
// than the bytes it reads at each end, and a whole export with blank lines
// or CRLFs after its end or no newline at its end; a file that is not an
// export passes whatever its last line.
func TestCheckExportEnd(t *testing.T) {
	const header, end = `{"export":{"version":1,"revision":7}}` + "\n", `{"end":{"records":%d,"revision":7}}`
	export := func(n int) string {
		var b strings.Builder
		b.WriteString(header)
		for range n {
			b.WriteString(importLine + "\n")
		}
		return b.String()
	}
	big := 2 * permhttp.MaxImportLine / len(importLine) // its records alone are more than both ends read
	for _, c := range []struct {
		what string
		file string
		cut  bool
	}{
		{"whole", export(2) + fmt.Sprintf(end, 2) + "\n", false},
		{"whole, no newline at its end", export(2) + fmt.Sprintf(end, 2), false},
		{"whole, blank lines and CRLFs after its end", export(2) + fmt.Sprintf(end, 2) + "\r\n\n  \r\n", false},
		{"whole and large", export(big) + fmt.Sprintf(end, big) + "\n", false},
		{"whole, more blank lines after its end than it reads", export(2) + fmt.Sprintf(end, 2) + strings.Repeat("\n", 3*permhttp.MaxImportLine), false},
		{"cut, more blank lines after it than it reads", export(2) + strings.Repeat(" \r\n", permhttp.MaxImportLine), true},
		{"cut after a record", export(2), true},
		{"cut, large", export(big), true},
		{"only the header", header, true},
		{"cut inside its end line", export(2) + fmt.Sprintf(end, 2)[:10], true},
		{"no export", importLine + "\n" + importLine + "\n", false},
		{"no export, a malformed last line", importLine + "\n{", false},
		{"empty", "", false},
	} {
		err := permhttp.CheckExportEnd(strings.NewReader(c.file), int64(len(c.file)), -1)
		if cut := err != nil; cut != c.cut || cut && !strings.Contains(err.Error(), "the export is cut short") {
			t.Errorf("%s: %v, want cut short: %v", c.what, err, c.cut)
		}
	}
	// With the file's lines that are not blank counted, the end's count
	// is checked too: 2 records and the ends are 4 lines.
	whole := export(2) + fmt.Sprintf(end, 2) + "\n"
	if err := permhttp.CheckExportEnd(strings.NewReader(whole), int64(len(whole)), 4); err != nil {
		t.Errorf("whole, 4 lines counted: %v", err)
	}
	for _, lines := range []int64{3, 5} {
		err := permhttp.CheckExportEnd(strings.NewReader(whole), int64(len(whole)), lines)
		if err == nil || !strings.Contains(err.Error(), "the export's end counts 2 records, and "+fmt.Sprint(lines-2)+" lines are between") {
			t.Errorf("%d lines counted: %v", lines, err)
		}
	}
}

// TestImportReaderAllocs: a line is decoded where the reader buffered it,
// into one record reused from line to line: it allocates the strings of
// its assignment the decoder does not share (its subject and its scope's
// id: two), not a copy of the line nor a record of its own (four, before).
// Each line reads back as written.
func TestImportReaderAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts under the race detector are not the code's")
	}
	const n = 1000
	var body strings.Builder
	want := make([]permatrix.Assignment, n+1)
	for i := range want {
		want[i] = permatrix.Assignment{Subject: fmt.Sprintf("user:u%d", i), System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.Scope{Type: "project", ID: fmt.Sprintf("p%d", i)}}
		fmt.Fprintf(&body, `{"subject":%q,"system":"celonis-task-mining","permission":"edit_users","scope":{"type":"project","id":%q}}`+"\n", want[i].Subject, want[i].Scope.ID)
	}
	ir := permhttp.NewImportReader(strings.NewReader(body.String()), func(int, *string) (string, error) { return "", nil })
	i := 0
	got := testing.AllocsPerRun(n, func() {
		l, err := ir.Next()
		if err != nil {
			t.Fatal(err)
		}
		if l.Line != i+1 || l.Assignment != want[i] {
			t.Fatalf("line %d reads %+v, want %+v", i+1, l.Assignment, want[i])
		}
		i++
	})
	if got > 2 {
		t.Errorf("a line allocates %v times, want at most 2", got)
	}
}
