package pdp_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/pdp"
)

// longAnalyst is a Celonis analyst of the longest ids: a user id and a
// project id of 256 bytes each.
func longAnalyst(n int) pdp.ImportLine {
	id := func(prefix string) string {
		s := fmt.Sprintf("%s%d-", prefix, n)
		return s + strings.Repeat("x", permatrix.MaxIDBytes-len(s))
	}
	return pdp.ImportLine{Line: n, Assignment: permatrix.Assignment{Subject: "user:" + id("u"), System: "celonis-task-mining",
		Permission: "edit_users", Scope: permatrix.Scope{Type: "project", ID: id("p")}}}
}

// An all-or-nothing import is bounded by its lines' strings as well as by
// their number: lines of the longest ids reach MaxHeldImportBytes long
// before MaxAtomicImport lines (at the line bound alone, 100,000 of them
// held ~1 GB until the commit). The line that would pass it is 413, named,
// before anything is judged or written.
func TestImportStreamAllOrNothingBoundedByBytes(t *testing.T) {
	svc := newService(t)
	before := svc.Revision()
	per := len(longAnalyst(1).Assignment.Subject) + len(longAnalyst(1).Assignment.Scope.ID)
	src := &lines{n: pdp.MaxAtomicImport, line: longAnalyst}
	res, err := svc.ImportStream(context.Background(), src.next, pdp.ImportOptions{})
	wantCode(t, err, permatrix.ETOOLARGE, fmt.Sprintf("at most %d MiB of ids and names", pdp.MaxHeldImportBytes>>20))
	if src.read >= pdp.MaxAtomicImport || src.read < pdp.MaxHeldImportBytes/(per+64) || src.read > pdp.MaxHeldImportBytes/per+1 {
		t.Fatalf("refused after reading %d lines (%d bytes of ids a line; bound %d bytes)", src.read, per, pdp.MaxHeldImportBytes)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("line %d:", src.read)) {
		t.Errorf("the refusal does not name the line read last (%d): %v", src.read, err)
	}
	if res.Chunks != 0 || svc.Revision() != before || count(t, svc) != 0 {
		t.Fatalf("result %+v, revision %d → %d", res, before, svc.Revision())
	}
}

// In chunks, a chunk whose lines' strings reach MaxHeldImportBytes is
// committed with the lines it has: an import of the longest ids in chunks
// of 50,000 lines commits more, smaller chunks, every line imported and
// the result counting each commit.
func TestImportStreamChunkCutByBytes(t *testing.T) {
	if testing.Short() {
		t.Skip("imports 40,000 lines")
	}
	svc := newService(t)
	const n = 40_000
	per := len(longAnalyst(1).Assignment.Subject) + len(longAnalyst(1).Assignment.Scope.ID)
	res, err := svc.ImportStream(context.Background(), (&lines{n: n, line: longAnalyst}).next, pdp.ImportOptions{Chunk: pdp.MaxImportChunk})
	if err != nil {
		t.Fatal(err)
	}
	// At most MaxHeldImportBytes/per lines a chunk: more than the one chunk of MaxImportChunk lines.
	if want := (n + pdp.MaxHeldImportBytes/per - 1) / (pdp.MaxHeldImportBytes / per); res.Imported != n || res.LastLine != n || res.Chunks < want {
		t.Fatalf("result %+v, want %d imported in at least %d chunks", res, n, want)
	}
	if c := count(t, svc); c != n {
		t.Fatalf("store holds %d assignments, want %d", c, n)
	}
}
