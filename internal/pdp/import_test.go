package pdp_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
)

// analyst is line n of an import: user:a<n> a Celonis analyst.
func analyst(n int) pdp.ImportLine {
	return pdp.ImportLine{Line: n, Assignment: permatrix.Assignment{
		Subject: fmt.Sprintf("user:a%d", n), System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope}}
}

// Lines 1 and refusedAt of importWithRefusal: a Celonis member, and that
// member given edit_users, which the vendor rules refuse.
var (
	member   = permatrix.Assignment{Subject: "user:mem", System: "celonis-task-mining", Role: "member", Scope: permatrix.ServiceScope}
	refused  = permatrix.Assignment{Subject: "user:mem", System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.ServiceScope}
	refusedR = "line %d: user:mem is a Celonis member"
)

// lines yields n lines made by line(1) … line(n), counting the calls.
type lines struct {
	n, read int
	line    func(int) pdp.ImportLine
}

func (l *lines) next() (pdp.ImportLine, error) {
	if l.read == l.n {
		return pdp.ImportLine{}, io.EOF
	}
	l.read++
	return l.line(l.read), nil
}

// withRefusal is analyst(n), except line 1 (a member) and line at (that
// member given edit_users: refused).
func withRefusal(at int) func(int) pdp.ImportLine {
	return func(n int) pdp.ImportLine {
		switch n {
		case 1:
			return pdp.ImportLine{Line: n, Assignment: member}
		case at:
			return pdp.ImportLine{Line: n, Assignment: refused}
		}
		return analyst(n)
	}
}

// count is the number of assignments in the store.
func count(t *testing.T, svc *pdp.Service) int {
	t.Helper()
	return len(allAssignments(t, svc))
}

// allAssignments is every assignment in the store, page by page.
func allAssignments(t *testing.T, svc *pdp.Service) []permatrix.Assignment {
	t.Helper()
	var all []permatrix.Assignment
	cursor := ""
	for {
		list, next, err := svc.Assignments(context.Background(), permatrix.AssignmentFilter{Limit: 1000, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, list...)
		if next == "" {
			return all
		}
		cursor = next
	}
}

// grantAndRevoke assigns a and takes it back: one round of a writer that
// keeps changing the unit a grants in.
func grantAndRevoke(ctx context.Context, svc *pdp.Service, a permatrix.Assignment) error {
	made, _, err := svc.Assign(ctx, a, "")
	if err == nil {
		_, err = svc.Unassign(ctx, made.ID, "")
	}
	return err
}

func has(t *testing.T, svc *pdp.Service, subject string) bool {
	t.Helper()
	list, _, err := svc.Assignments(context.Background(), permatrix.AssignmentFilter{Subject: subject})
	if err != nil {
		t.Fatal(err)
	}
	return len(list) > 0
}

func wantCode(t *testing.T, err error, code, msg string) {
	t.Helper()
	if permatrix.ErrorCode(err) != code || !strings.Contains(permatrix.ErrorMessage(err), msg) {
		t.Fatalf("want %s %q, got %v", code, msg, err)
	}
}

// Each chunk is a commit of its own: a revision per chunk, increasing, and
// the result counts them.
func TestImportStreamCommitsChunkByChunk(t *testing.T) {
	svc := newService(t)
	before := svc.Revision()
	var seen []pdp.ImportResult
	src := &lines{n: 250, line: analyst}
	res, err := svc.ImportStream(context.Background(), src.next, pdp.ImportOptions{Chunk: 100, Progress: func(r pdp.ImportResult) {
		if got := count(t, svc); got != r.Imported {
			t.Errorf("after chunk %d: store holds %d, progress says %d imported", r.Chunks, got, r.Imported)
		}
		seen = append(seen, r)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Lines != 250 || res.Imported != 250 || res.Chunks != 3 || res.LastLine != 250 || res.Revision != svc.Revision() {
		t.Fatalf("result %+v (store at %d)", res, svc.Revision())
	}
	if len(seen) != 3 {
		t.Fatalf("progress told %d times: %+v", len(seen), seen)
	}
	last := before
	for i, r := range seen {
		if want := min(100*(i+1), 250); r.Imported != want || r.LastLine != want || r.Chunks != i+1 || r.Revision <= last {
			t.Errorf("progress %d: %+v (previous revision %d)", i+1, r, last)
		}
		last = r.Revision
	}
	if n := count(t, svc); n != 250 {
		t.Fatalf("store holds %d assignments, want 250", n)
	}
	if !strings.Contains(res.Describe(), "lines 1 to 250 are imported: 250 assignments in 3 commits") {
		t.Fatalf("describe: %s", res.Describe())
	}
}

// A line the rules refuse in chunk 3: chunks 1 and 2 stay, nothing of
// chunk 3 is stored, the error names the line and the rule, the result
// says how far the import got, and at most the chunk after it is read (a
// chunk is read while the one before it is written).
func TestImportStreamRefusedLineKeepsEarlierChunks(t *testing.T) {
	svc := newService(t)
	src := &lines{n: 100, line: withRefusal(27)}
	res, err := svc.ImportStream(context.Background(), src.next, pdp.ImportOptions{Chunk: 10})
	wantCode(t, err, permatrix.EUNPROCESSABLE, fmt.Sprintf(refusedR, 27))
	if res.Chunks != 2 || res.Imported != 20 || res.LastLine != 20 || res.Revision != svc.Revision() {
		t.Fatalf("result %+v (store at %d)", res, svc.Revision())
	}
	if src.read < 30 || src.read > 40 {
		t.Fatalf("read %d lines: the refused chunk ends at line 30, the one after it at 40", src.read)
	}
	if n := count(t, svc); n != 20 {
		t.Fatalf("store holds %d assignments, want chunks 1 and 2 (20)", n)
	}
	if !has(t, svc, "user:a20") || has(t, svc, "user:a21") || has(t, svc, "user:a26") {
		t.Fatal("the store does not hold exactly lines 1 to 20")
	}
	if !strings.Contains(res.Describe(), "lines 1 to 20 are imported") {
		t.Fatalf("describe: %s", res.Describe())
	}
}

// All or nothing: a refused line, even the last of many, leaves the store
// as it was.
func TestImportStreamAllOrNothingRefusedLineChangesNothing(t *testing.T) {
	svc := newService(t)
	before := svc.Revision()
	res, err := svc.ImportStream(context.Background(), (&lines{n: 300, line: withRefusal(300)}).next, pdp.ImportOptions{})
	wantCode(t, err, permatrix.EUNPROCESSABLE, fmt.Sprintf(refusedR, 300))
	if res.Chunks != 0 || res.Imported != 0 || svc.Revision() != before || count(t, svc) != 0 {
		t.Fatalf("result %+v, revision %d → %d, %d assignments", res, before, svc.Revision(), count(t, svc))
	}
	if res.Describe() != "nothing was imported" {
		t.Fatalf("describe: %s", res.Describe())
	}
	res, err = svc.ImportStream(context.Background(), (&lines{n: 300, line: analyst}).next, pdp.ImportOptions{})
	if err != nil || res.Chunks != 1 || res.Imported != 300 || count(t, svc) != 300 {
		t.Fatalf("all or nothing: %+v %v", res, err)
	}
}

// An all-or-nothing import may hold MaxAtomicImport lines, not one more:
// the line after them is 413 before anything is judged or written. (The
// lines are not judged until the commit, so this reads 100,001 cheap
// lines and writes none.)
func TestImportStreamAllOrNothingIsBounded(t *testing.T) {
	svc := newService(t)
	before := svc.Revision()
	src := &lines{n: pdp.MaxAtomicImport + 5, line: analyst}
	res, err := svc.ImportStream(context.Background(), src.next, pdp.ImportOptions{})
	wantCode(t, err, permatrix.ETOOLARGE, "at most 100000 lines")
	if src.read != pdp.MaxAtomicImport+1 || res.Chunks != 0 || svc.Revision() != before || count(t, svc) != 0 {
		t.Fatalf("read %d lines, result %+v, revision %d → %d", src.read, res, before, svc.Revision())
	}
}

// Exactly MaxAtomicImport lines are one commit. (The service has no
// bundle yet, so the commit fails at once with 503 instead of judging
// 100,000 lines: what matters is that the import got to commit them.)
func TestImportStreamAllOrNothingTakesTheLimit(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "import.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	svc := pdp.New(db, opa.NewEngine(db), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	src := &lines{n: pdp.MaxAtomicImport, line: analyst}
	_, err = svc.ImportStream(context.Background(), src.next, pdp.ImportOptions{})
	wantCode(t, err, permatrix.EUNAVAILABLE, "no policy bundle loaded")
	if src.read != pdp.MaxAtomicImport {
		t.Fatalf("read %d lines", src.read)
	}
}

// Each line's shape is checked as it arrives: a hostile line (here a
// subject of 60 KiB) stops the import at once, so that an import holds
// only valid lines of bounded size until its commit.
func TestImportStreamChecksLinesAsTheyArrive(t *testing.T) {
	svc := newService(t)
	for _, chunk := range []int{0, 1000} {
		src := &lines{n: 5000, line: func(n int) pdp.ImportLine {
			l := analyst(n)
			if n == 3 {
				l.Assignment.Subject = "user:" + strings.Repeat("x", 60<<10)
			}
			return l
		}}
		_, err := svc.ImportStream(context.Background(), src.next, pdp.ImportOptions{Chunk: chunk})
		wantCode(t, err, permatrix.EINVALID, "line 3: subject must be")
		if src.read != 3 || count(t, svc) != 0 {
			t.Fatalf("chunk %d: read %d lines, store holds %d", chunk, src.read, count(t, svc))
		}
	}
	_, err := svc.ImportStream(context.Background(), (&lines{n: 5, line: func(n int) pdp.ImportLine {
		l := analyst(n)
		if n == 4 {
			l.Actor = "bad\nactor"
		}
		return l
	}}).next, pdp.ImportOptions{Chunk: 2})
	wantCode(t, err, permatrix.EINVALID, "line 4: actor must be a user id")
}

func TestImportStreamChunkOutOfRange(t *testing.T) {
	svc := newService(t)
	for _, chunk := range []int{-1, pdp.MaxImportChunk + 1, -1 << 40} {
		src := &lines{n: 5, line: analyst}
		_, err := svc.ImportStream(context.Background(), src.next, pdp.ImportOptions{Chunk: chunk})
		wantCode(t, err, permatrix.EINVALID, "chunk must be 1 to 50000 lines")
		if src.read != 0 {
			t.Fatalf("chunk %d: read %d lines before refusing", chunk, src.read)
		}
	}
	// The bounds themselves are fine.
	for _, chunk := range []int{1, pdp.MaxImportChunk} {
		if res, err := svc.ImportStream(context.Background(), (&lines{n: 2, line: analyst}).next, pdp.ImportOptions{Chunk: chunk}); err != nil || res.Imported+res.AlreadyStored != 2 {
			t.Fatalf("chunk %d: %+v %v", chunk, res, err)
		}
	}
}

// The context ends once chunk 2 is committed: the import stops, reads no
// more than the chunk read meanwhile (chunk 3, which is committed whole if
// its commit was made before the end, else not at all), keeps what it
// committed and says so.
func TestImportStreamStopsWhenContextEnds(t *testing.T) {
	svc := newService(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := &lines{n: 100, line: analyst}
	res, err := svc.ImportStream(ctx, src.next, pdp.ImportOptions{Chunk: 10, Progress: func(r pdp.ImportResult) {
		if r.Chunks == 2 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	if res.Chunks < 2 || res.Chunks > 3 || res.Imported != 10*res.Chunks || res.LastLine != res.Imported ||
		src.read < res.Imported || src.read > 30 || count(t, svc) != res.Imported {
		t.Fatalf("result %+v, read %d, store holds %d", res, src.read, count(t, svc))
	}
	// Ended before anything: nothing read, nothing written.
	src = &lines{n: 100, line: analyst}
	before := svc.Revision()
	if _, err := svc.ImportStream(ctx, src.next, pdp.ImportOptions{Chunk: 10}); !errors.Is(err, context.Canceled) || src.read != 0 || svc.Revision() != before {
		t.Fatalf("cancelled import: %v, read %d", err, src.read)
	}
}

func TestImportStreamEmpty(t *testing.T) {
	svc := newService(t)
	for _, chunk := range []int{0, 10} {
		_, err := svc.ImportStream(context.Background(), (&lines{}).next, pdp.ImportOptions{Chunk: chunk})
		wantCode(t, err, permatrix.EINVALID, "no assignments in the import")
	}
}

// A line that fails to read (the reader's error: a malformed line, a
// broken body) stops the import with that error; the lines of the chunk
// before it are not stored.
func TestImportStreamReadErrorDropsTheChunk(t *testing.T) {
	svc := newService(t)
	n := 0
	res, err := svc.ImportStream(context.Background(), func() (pdp.ImportLine, error) {
		n++
		if n == 15 {
			return pdp.ImportLine{}, permatrix.Errorf(permatrix.EINVALID, "line 15: unknown key \"Subject\"")
		}
		return analyst(n), nil
	}, pdp.ImportOptions{Chunk: 10})
	wantCode(t, err, permatrix.EINVALID, "line 15: unknown key")
	if res.Chunks != 1 || res.Imported != 10 || count(t, svc) != 10 {
		t.Fatalf("result %+v, store holds %d", res, count(t, svc))
	}
}

// Ids given twice: the second line is 409 naming its line, within one
// chunk or across chunks; the same grant twice is one assignment
// (idempotent).
func TestImportStreamDuplicates(t *testing.T) {
	svc := newService(t)
	withID := func(n int, id string) pdp.ImportLine {
		l := analyst(n)
		l.Assignment.ID = id
		return l
	}
	for _, chunk := range []int{0, 2, 3} {
		id := fmt.Sprintf("dup-%d", chunk)
		src := []pdp.ImportLine{withID(1, id), analyst(2), withID(3, id)}
		i := 0
		before := count(t, svc)
		res, err := svc.ImportStream(context.Background(), func() (pdp.ImportLine, error) {
			if i == len(src) {
				return pdp.ImportLine{}, io.EOF
			}
			i++
			// Other users each round, so that only the ids collide.
			l := src[i-1]
			l.Assignment.Subject += fmt.Sprintf("-%d", chunk)
			return l, nil
		}, pdp.ImportOptions{Chunk: chunk})
		wantCode(t, err, permatrix.ECONFLICT, fmt.Sprintf("line 3: assignment %s already exists", id))
		if want := map[int]int{0: 0, 2: 2, 3: 0}[chunk]; res.Imported != want || count(t, svc) != before+want {
			t.Fatalf("chunk %d: result %+v, store grew by %d", chunk, res, count(t, svc)-before)
		}
	}
	before := count(t, svc)
	res, err := svc.ImportStream(context.Background(), (&lines{n: 4, line: func(n int) pdp.ImportLine {
		l := analyst(1)
		l.Line = n
		l.Assignment.Subject = "user:same"
		return l
	}}).next, pdp.ImportOptions{Chunk: 2})
	if err != nil || res.Imported != 1 || res.AlreadyStored != 3 || count(t, svc) != before+1 {
		t.Fatalf("the same grant four times: %+v %v, store grew by %d", res, err, count(t, svc)-before)
	}
}

// How far an import got reads right with one assignment and one commit:
// it said "1 assignments in 1 commit".
func TestImportResultDescribeSingular(t *testing.T) {
	svc := newService(t)
	src := &lines{n: 3, line: withRefusal(2)}
	res, err := svc.ImportStream(context.Background(), src.next, pdp.ImportOptions{Chunk: 1})
	wantCode(t, err, permatrix.EUNPROCESSABLE, fmt.Sprintf(refusedR, 2))
	if want := fmt.Sprintf("line 1 is imported: 1 assignment in 1 commit, at revision %d", res.Revision); res.Describe() != want {
		t.Fatalf("describe: %q, want %q", res.Describe(), want)
	}
}

// An import run again over lines already stored (after a kill -9, from
// the start of its file) counts them as already stored, not as imported,
// and counts as commits only the chunks that changed the store: the
// revision moves by exactly the commits it reports.
func TestImportStreamAgainReportsWhatItChanged(t *testing.T) {
	svc := newService(t)
	if _, err := svc.ImportStream(context.Background(), (&lines{n: 250, line: analyst}).next, pdp.ImportOptions{Chunk: 100}); err != nil {
		t.Fatal(err)
	}
	before := svc.Revision()
	var progress []pdp.ImportResult
	res, err := svc.ImportStream(context.Background(), (&lines{n: 520, line: analyst}).next, pdp.ImportOptions{Chunk: 100,
		Progress: func(r pdp.ImportResult) { progress = append(progress, r) }})
	if err != nil {
		t.Fatal(err)
	}
	// Chunks 1 and 2 were stored; chunk 3 is half new (201–250 stored).
	if res.Lines != 520 || res.Imported != 270 || res.AlreadyStored != 250 || res.Chunks != 4 || res.LastLine != 520 ||
		res.Revision != svc.Revision() || svc.Revision()-before != 4 || count(t, svc) != 520 {
		t.Fatalf("import again: %+v, revision %d → %d, %d stored", res, before, svc.Revision(), count(t, svc))
	}
	if len(progress) != 6 || progress[1].Chunks != 0 || progress[1].AlreadyStored != 200 || progress[1].LastLine != 200 {
		t.Fatalf("progress: %+v", progress)
	}
	if got, want := progress[1].Describe(), "lines 1 to 200 are stored already: nothing was imported (revision"; !strings.HasPrefix(got, want) {
		t.Errorf("Describe after two unchanged chunks: %q, want %q…", got, want)
	}
	if got, want := res.Describe(), fmt.Sprintf("lines 1 to 520 are stored: 270 assignments imported and 250 already stored, in 4 commits, the last at revision %d", res.Revision); got != want {
		t.Errorf("Describe: %q, want %q", got, want)
	}
}

// A custom role line holds a list of permissions as long as its line
// allows (64 KiB: some 13,000 ids, several times that in memory), and an
// import held up to 100,000 lines until its commit judged them: a few GB
// from one import, where assignment lines hold a few hundred bytes each.
// A role line is checked against the catalog as it arrives — a permission
// its system does not have refuses it there, nothing after it read — and
// held with its permissions once each: at most its system's.
func TestImportRoleLineBoundedOnArrival(t *testing.T) {
	svc := newService(t)
	unknown := &permatrix.Role{System: "blueprism", Name: "big", Permissions: []string{"design_global_dashboards", "fly"}}
	src := &lines{n: 50, line: func(n int) pdp.ImportLine {
		if n == 1 {
			return pdp.ImportLine{Line: n, Role: unknown}
		}
		return analyst(n)
	}}
	_, err := svc.ImportStream(context.Background(), src.next, pdp.ImportOptions{})
	wantCode(t, err, permatrix.EUNPROCESSABLE, `line 1: unknown permission "fly" for system "blueprism"`)
	if src.read != 1 {
		t.Fatalf("read %d lines: a role line of an unknown permission is refused as it arrives", src.read)
	}
	nowhere := &permatrix.Role{System: "nosuch", Name: "big", Permissions: []string{"a"}}
	_, err = svc.ImportStream(context.Background(), (&lines{n: 1, line: func(n int) pdp.ImportLine { return pdp.ImportLine{Line: n, Role: nowhere} }}).next, pdp.ImportOptions{})
	wantCode(t, err, permatrix.EUNPROCESSABLE, `line 1: unknown system "nosuch"`)
	celonis := &permatrix.Role{System: "celonis-task-mining", Name: "big", Permissions: []string{"fly"}}
	_, err = svc.ImportStream(context.Background(), (&lines{n: 1, line: func(n int) pdp.ImportLine { return pdp.ImportLine{Line: n, Role: celonis} }}).next, pdp.ImportOptions{})
	wantCode(t, err, permatrix.EUNPROCESSABLE, `line 1: system "celonis-task-mining" has no custom roles`)

	same := make([]string, 10_000)
	for i := range same {
		same[i] = "design_global_dashboards"
	}
	repeated := &permatrix.Role{System: "blueprism", Name: "big", Permissions: same}
	res, err := svc.ImportStream(context.Background(), (&lines{n: 1, line: func(n int) pdp.ImportLine { return pdp.ImportLine{Line: n, Role: repeated} }}).next, pdp.ImportOptions{})
	if err != nil || res.Imported != 1 {
		t.Fatalf("a role of one permission given 10,000 times: %+v %v", res, err)
	}
	if len(repeated.Permissions) != 1 {
		t.Fatalf("the line was held with %d permissions, not its 1", len(repeated.Permissions))
	}
}
