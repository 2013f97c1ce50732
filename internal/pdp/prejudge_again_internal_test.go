package pdp

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/store"
)

// A chunk planned while the chunk before it commits, whose commit then
// conflicts (the chunk before wrote a unit one of its lines read), is
// planned again taking the verdicts its first plan judged ahead that no
// commit changed — and only those: the line whose unit the commit between
// changed is judged again, and refused now. Here the commit between makes
// user:mem a Celonis member; the chunk's last line gives user:mem a
// permission, allowed when judged ahead (user:mem held nothing), refused
// once judged again. Taking its old verdict too would store a permission
// for a member.
func TestPlanAgainTakesTheVerdictsNoCommitChanged(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	ctx := context.Background()
	_, svc := newActiveService(t)
	const n = 100
	release, result := heldChunk(ctx, svc, append(analystLines(1, n-1), ImportLine{Line: n, Assignment: memPermission}))
	again := svc.aheadAgain.Load()
	if _, _, err := svc.Assign(ctx, memMember, ""); err != nil {
		t.Fatal(err)
	}
	release()
	if err := <-result; err == nil || permatrix.ErrorCode(err) != permatrix.EUNPROCESSABLE ||
		!strings.Contains(err.Error(), fmt.Sprintf("line %d: user:mem is a Celonis member", n)) {
		t.Fatalf("the chunk: %v; want line %d refused (user:mem is a member now)", err, n)
	}
	if taken := svc.aheadAgain.Load() - again; taken != n-1 {
		t.Fatalf("the plan made again took %d verdicts of the plan before, want %d (every line but the last)", taken, n-1)
	}
	list, _, err := svc.Assignments(ctx, permatrix.AssignmentFilter{})
	if err != nil || len(list) != 1 {
		t.Fatalf("the store holds %d assignments (%v), want the member's alone: the chunk was refused", len(list), err)
	}
}

// A chunk planned again because a bundle was swapped in while it waited
// for the chunk before takes none of its first plan's verdicts: they were
// judged by the rules of the bundle swapped out.
func TestPlanAgainAfterASwapJudgesEveryLineAgain(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	ctx := context.Background()
	_, svc := newActiveService(t)
	release, result := heldChunk(ctx, svc, analystLines(1, 100))
	swapped, err := svc.policy()
	if err != nil {
		t.Fatal(err)
	}
	b, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Activate(ctx, b); err != nil {
		t.Fatal(err)
	}
	if p, _ := svc.policy(); p == swapped {
		t.Fatal("the activation kept the policy: the test swaps nothing")
	}
	again, taken := svc.aheadAgain.Load(), svc.aheadTaken.Load()
	release()
	if err := <-result; err != nil {
		t.Fatal(err)
	}
	if n := svc.aheadAgain.Load() - again; n != 0 {
		t.Fatalf("the plan after the swap took %d verdicts judged by the bundle swapped out", n)
	}
	if svc.aheadTaken.Load() == taken {
		t.Fatal("the plan after the swap took no verdict judged ahead: was it planned again?")
	}
}

// A worker's snapshot newer than the plan's (a commit made between them)
// gives verdicts the plan takes where that commit changed nothing they
// read, and not the others: here the commit makes user:mem a Celonis
// member, so the last change's verdict, judged on the newer snapshot,
// is not what the plan's revision gives.
func TestJudgedAheadOnANewerSnapshot(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	ctx := context.Background()
	_, svc := newActiveService(t)
	p, err := svc.policy()
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	changes := changesOf(t, p, append(analystLines(1, n-1), ImportLine{Line: n, Assignment: memPermission}))
	snap, err := svc.backend.View()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	tx := store.NewTx(ctx, snap, nil)
	if _, _, err := svc.Assign(ctx, memMember, ""); err != nil {
		t.Fatal(err)
	}
	a := svc.prejudge(ctx, p, tx.Revision(), changes, nil)
	if a == nil {
		t.Fatal("nothing judged ahead")
	}
	defer a.stop()
	for i := range changes {
		_, _, err := a.verdict(i, tx)
		if r := a.results[i]; r.revision != tx.Revision()+1 {
			t.Fatalf("change %d judged at %d, the plan at %d: the workers' snapshots are not the newer one", i, r.revision, tx.Revision())
		}
		switch {
		case i < n-1 && err != nil:
			t.Fatalf("change %d (a user no commit since the plan's snapshot touched): %v, want its verdict taken", i, err)
		case i == n-1 && !errors.Is(err, errNotAhead):
			t.Fatalf("change %d (user:mem, made a member since the plan's snapshot): %v, want it judged in order", i, err)
		}
	}
}

// The count of verdicts a plan made again took from the plan before it
// counts the ones it took, not the ones its workers carried over: here the
// plan made again refuses its first line (user:mem became a member while
// the chunk waited), so it takes none of the 99 verdicts its workers
// carried over. It counted them all.
func TestPlanAgainCountsTheVerdictsTaken(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	ctx := context.Background()
	_, svc := newActiveService(t)
	release, result := heldChunk(ctx, svc, append([]ImportLine{{Line: 1, Assignment: memPermission}}, analystLines(2, 100)...))
	again := svc.aheadAgain.Load()
	if _, _, err := svc.Assign(ctx, memMember, ""); err != nil {
		t.Fatal(err)
	}
	release()
	if err := <-result; err == nil || !strings.Contains(err.Error(), "line 1: user:mem is a Celonis member") {
		t.Fatalf("the chunk: %v; want line 1 refused", err)
	}
	if n := svc.aheadAgain.Load() - again; n != 0 {
		t.Fatalf("the plan made again, refusing its first line, counts %d verdicts taken from the plan before", n)
	}
}

// memPermission gives user:mem a Celonis permission, which the rules
// refuse once memMember is stored (members can be granted nothing).
var (
	memPermission = permatrix.Assignment{Subject: "user:mem", System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.ServiceScope}
	memMember     = permatrix.Assignment{Subject: "user:mem", System: "celonis-task-mining", Role: "member", Scope: permatrix.ServiceScope}
)

// analystLines are import lines from to to, line i making user:a<i> a
// Celonis analyst.
func analystLines(from, to int) []ImportLine {
	var lines []ImportLine
	for i := from; i <= to; i++ {
		lines = append(lines, ImportLine{Line: i, Assignment: permatrix.Assignment{
			Subject: fmt.Sprintf("user:a%d", i), System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope}})
	}
	return lines
}

// heldChunk starts the write of lines as an import's chunk whose chunk
// before is still in its write, and returns once the chunk's first plan is
// made (it waits there for the chunk before): release ends the chunk
// before's write, committed at the store's revision then (after the
// chunk's snapshot), and the chunk's outcome comes on result.
func heldChunk(ctx context.Context, svc *Service, lines []ImportLine) (release func(), result <-chan error) {
	before := chunkBefore()
	result = writeChunkAfter(ctx, svc, lines, before)
	return func() { before.rev = svc.backend.Revision(); close(before.done) }, result
}

// chunkBefore is a stand-in for the chunk before a chunk: planned, still
// in its write until its done is closed (its rev set first: the revision
// it committed at).
func chunkBefore() *chunkWrite {
	before := &chunkWrite{planned: make(chan struct{}), done: make(chan struct{})}
	close(before.planned)
	return before
}

// writeChunkAfter starts the write of lines as an import's chunk after
// before, and returns once the chunk's first plan is made (it waits there
// for before's write to end); the chunk's outcome comes on the channel.
func writeChunkAfter(ctx context.Context, svc *Service, lines []ImportLine, before *chunkWrite) <-chan error {
	w := &chunkWrite{after: before, planned: make(chan struct{}), done: make(chan struct{})}
	errc := make(chan error, 1)
	go func() {
		_, _, _, err := svc.importLines(ctx, lines, true, w)
		errc <- err
	}()
	<-w.planned
	return errc
}

// changesOf are lines as the changes of one write, judged by p.
func changesOf(t *testing.T, p *opa.Policy, lines []ImportLine) []change {
	t.Helper()
	changes := make([]change, len(lines))
	held := make([]bool, len(lines))
	for i := range lines {
		var err error
		if changes[i], err = lines[i].change(p, &held[i]); err != nil {
			t.Fatal(err)
		}
	}
	return changes
}
