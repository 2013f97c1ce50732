package pdp_test

import (
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/pdp"
)

// An import in chunks plans a chunk while the chunk before it commits, on
// a snapshot that may not show it (ImportStream). Chunks of one line, each
// judged by what the line before wrote, are judged as if imported one
// after the other: line 2 is refused because line 1 made its user a
// member, though line 2's first plan may not have seen line 1.
func TestImportOverlapJudgesByTheChunkBefore(t *testing.T) {
	svc := newService(t)
	src := &lines{n: 4, line: withRefusal(2)}
	res, err := svc.ImportStream(context.Background(), src.next, pdp.ImportOptions{Chunk: 1})
	wantCode(t, err, permatrix.EUNPROCESSABLE, "line 2: user:mem is a Celonis member")
	if res.Chunks != 1 || res.Imported != 1 || res.LastLine != 1 || res.Revision != svc.Revision() || count(t, svc) != 1 {
		t.Fatalf("result %+v (store at %d, %d assignments)", res, svc.Revision(), count(t, svc))
	}
	if has(t, svc, "user:a3") {
		t.Fatal("line 3, after the refused line 2, was committed")
	}
}

// A custom role record, then an assignment of it (refused on a store
// without the role), then the same assignment again (stored already), a
// chunk each: every line sees the lines before it, whichever snapshot its
// first plan was made on.
func TestImportOverlapSeesTheRecordsBefore(t *testing.T) {
	custom := permatrix.Assignment{Subject: "user:p", System: "blueprism", Role: "bp-role-t", Scope: permatrix.ServiceScope}
	svc := newService(t)
	_, err := svc.ImportStream(context.Background(), (&lines{n: 1, line: func(n int) pdp.ImportLine {
		return pdp.ImportLine{Line: n, Assignment: custom}
	}}).next, pdp.ImportOptions{Chunk: 1})
	if permatrix.ErrorCode(err) != permatrix.EUNPROCESSABLE {
		t.Fatalf("an assignment of a custom role the store does not hold: %v, want it refused", err)
	}
	for round := range 5 {
		svc := newService(t)
		res, err := svc.ImportStream(context.Background(), (&lines{n: 3, line: func(n int) pdp.ImportLine {
			if n == 1 {
				return pdp.ImportLine{Line: n, Role: &permatrix.Role{System: "blueprism", Name: "bp-role-t", Permissions: []string{"view_dashboards"}}}
			}
			return pdp.ImportLine{Line: n, Assignment: custom}
		}}).next, pdp.ImportOptions{Chunk: 1})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if res.Imported != 2 || res.AlreadyStored != 1 || res.Chunks != 2 || res.LastLine != 3 || count(t, svc) != 1 {
			t.Fatalf("round %d: result %+v, store holds %d assignments", round, res, count(t, svc))
		}
	}
}

// A panic in the import's own goroutine — its reading of the lines, or its
// progress — while a chunk is in its write (here the reading of chunk 3
// while chunk 2 commits) leaves no chunk's write running after
// ImportStream has ended: the server's recovery answers the request, and a
// chunk committed after that answer was a commit no answer, log or
// progress told of. ImportStream waits for the chunk in its write before
// the panic goes on.
func TestImportOverlapPanicLeavesNoChunkWriting(t *testing.T) {
	const chunk = 400
	for _, where := range []string{"next", "progress"} {
		t.Run(where, func(t *testing.T) {
			svc := newService(t)
			src := &lines{n: 5 * chunk, line: analyst}
			next := src.next
			o := pdp.ImportOptions{Chunk: chunk}
			if where == "next" {
				next = func() (pdp.ImportLine, error) {
					if src.read == 2*chunk {
						panic("the reading of chunk 3 failed")
					}
					return src.next()
				}
			} else {
				o.Progress = func(pdp.ImportResult) { panic("progress failed") }
			}
			var writing string
			var rev uint64
			func() {
				defer func() {
					if recover() == nil {
						t.Fatal("ImportStream did not panic")
					}
					rev = svc.Revision()
					writing = chunkWriting()
				}()
				_, _ = svc.ImportStream(context.Background(), next, o)
			}()
			if writing != "" {
				t.Fatalf("a chunk's write still runs after ImportStream panicked:\n%s", writing)
			}
			if now := svc.Revision(); now != rev {
				t.Fatalf("the store was at revision %d when ImportStream panicked, at %d after", rev, now)
			}
		})
	}
}

// chunkWriting is the stack of a goroutine writing an import's chunk, ""
// if none is. A chunk's goroutine that has closed its done channel may not
// have returned yet: it is not writing (importLines is not on its stack).
func chunkWriting() string {
	return goroutineWith(func(g string) bool {
		return strings.Contains(g, "pdp.(*Service).startChunk") && strings.Contains(g, "pdp.(*Service).importLines")
	})
}

// goroutineWith is the stack of a goroutine of this process that match
// says is the one, "" if none is.
func goroutineWith(match func(stack string) bool) string {
	buf := make([]byte, 1<<22)
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if match(g) {
			return g
		}
	}
	return ""
}

// What an import holds is the lines it was sent, not the lines chunk=
// says a chunk may have: a request of one line with chunk=50000 reserved
// 50,000 lines' room (8 MB: ImportLine is 160 bytes), so that a few
// hundred such requests of a few hundred bytes each, all at once, took
// gigabytes. Its allocations are measured against the same import with
// chunk=1.
func TestImportShortWithLargeChunkHoldsItsLines(t *testing.T) {
	svc := newService(t)
	allocated := func(chunk int) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if _, err := svc.ImportStream(context.Background(), (&lines{n: 1, line: analyst}).next, pdp.ImportOptions{Chunk: chunk}); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	allocated(1) // the first import's own setup (pools, caches) is not counted
	small, large := allocated(1), allocated(pdp.MaxImportChunk)
	if large > small+1<<20 {
		t.Fatalf("a one-line import allocated %d bytes with chunk=%d, %d with chunk=1", large, pdp.MaxImportChunk, small)
	}
}
