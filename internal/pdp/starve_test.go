package pdp_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/pdp"
)

// TestImportNotStarvedByWrites: an import whose lines take longer to judge
// than the time between two writes to one of its users lost every race
// (its commit read that user, who changed meanwhile) and ended, after the
// retry budget, in 503 "conflicted … in a row" with nothing stored — a
// single writer granting and revoking one user at a steady pace kept any
// large import out (found by the import attack). A large write that lost
// once plans again with the other writes of this process held back.
func TestImportNotStarvedByWrites(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc := newService(t)
	const users = 4000
	var lines []pdp.ImportLine
	for i := range users {
		lines = append(lines, pdp.ImportLine{Line: i + 1, Assignment: permatrix.Assignment{
			Subject: fmt.Sprintf("user:k%d", i), System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.ServiceScope}})
	}
	// The writer grants and revokes k5 (a user of the import) as fast as
	// it can, until the import is answered.
	var wg sync.WaitGroup
	writes := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			err := grantAndRevoke(ctx, svc, permatrix.Assignment{Subject: "user:k5", System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope})
			if err != nil && ctx.Err() == nil {
				t.Errorf("the writer: %v", err)
				return
			}
			writes++
		}
	}()
	time.Sleep(50 * time.Millisecond) // the writer is going
	start := time.Now()
	n, rev, err := svc.Import(ctx, lines)
	cancel()
	wg.Wait()
	if err != nil {
		t.Fatalf("the import, after %s and %d writes of the other writer: %v", time.Since(start), writes, err)
	}
	if n != users || rev == 0 {
		t.Fatalf("imported %d at revision %d, want %d", n, rev, users)
	}
	if writes < 2 {
		t.Fatalf("the other writer made %d writes: no race was run", writes)
	}
}

// TestImportSmallChunksNotStarvedByWrites: an import in chunks of fewer
// lines than minAhead (64), each chunk granting to user:k5, while six
// writers grant and revoke k5's permissions as fast as they can. A chunk
// of 63 lines plans longer than the writers take between two changes of
// k5: it lost every race and the import ended in 503 "conflicted … 100
// times in a row", where the same import in chunks of 64 lines was stored
// (a write of 64 changes or more plans again alone after it lost; one of
// fewer never did).
func TestImportSmallChunksNotStarvedByWrites(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc := newService(t)
	const chunk, n = 63, 630
	src := &lines{n: n, line: func(i int) pdp.ImportLine {
		subject := fmt.Sprintf("user:k%d", i)
		if i%chunk == chunk/2 {
			subject = "user:k5"
		}
		return pdp.ImportLine{Line: i, Assignment: permatrix.Assignment{
			Subject: subject, System: "celonis-task-mining", Permission: "edit_users",
			Scope: permatrix.Scope{Type: "project", ID: fmt.Sprintf("p%d", i)}}}
	}}
	var wg sync.WaitGroup
	writes := make([]int, 6)
	for w := range writes {
		wg.Go(func() {
			for ctx.Err() == nil { // a grant and its revoke, whole
				if err := grantAndRevoke(context.Background(), svc, permatrix.Assignment{Subject: "user:k5", System: "celonis-task-mining", Permission: "edit_users",
					Scope: permatrix.Scope{Type: "project", ID: fmt.Sprintf("w%d", w)}}); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				writes[w]++
			}
		})
	}
	time.Sleep(20 * time.Millisecond) // the writers are going
	start := time.Now()
	res, err := svc.ImportStream(ctx, src.next, pdp.ImportOptions{Chunk: chunk})
	cancel()
	wg.Wait()
	if err != nil {
		t.Fatalf("the import, after %s and %v writes of the writers: %v (%+v)", time.Since(start), writes, err, res)
	}
	if res.Imported != n || res.LastLine != n {
		t.Fatalf("result %+v, want %d lines imported", res, n)
	}
}
