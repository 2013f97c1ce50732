package pdp

import (
	"context"
	"runtime"
	"testing"
	"weak"

	"github.com/permatrix/permatrix"
)

// An overlapped import holds at most two chunks: the one in its write and
// the one being read. A chunk committed is not held by the chunk after it
// while that one waits to plan, or plans: the chunk after points to it
// (chunkWrite.after) until its first plan is made, and it held its lines
// — a third chunk, 50,000 lines, beside the two. Chunk 2's plan is held
// back here (s.writers, taken whole) while chunk 1, committed, is let go:
// its line's record must be collectable.
func TestImportOverlapLetsTheChunkCommittedGo(t *testing.T) {
	ctx := context.Background()
	_, svc := newActiveService(t)
	first := &permatrix.Membership{Group: "g1", User: "u1"}
	committed := weak.Make(first)
	w1 := svc.startChunk(ctx, []ImportLine{{Line: 1, Membership: first}}, nil)
	first = nil
	var res ImportResult
	if err := w1.wait(&res, nil); err != nil {
		t.Fatal(err)
	}
	svc.writers.Lock()
	w2 := svc.startChunk(ctx, []ImportLine{{Line: 2, Membership: &permatrix.Membership{Group: "g2", User: "u2"}}}, w1)
	w1 = nil
	runtime.GC()
	held := committed.Value() != nil
	svc.writers.Unlock()
	if err := w2.wait(&res, nil); err != nil {
		t.Fatal(err)
	}
	if held {
		t.Fatal("chunk 1, committed, is held while chunk 2 waits to plan")
	}
	if res.LastLine != 2 || res.Chunks != 2 {
		t.Fatalf("result %+v", res)
	}
}
