package pdp

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/store"
)

// A bundle's write rules may depend on more than their input, the bundle
// and the store units they read: the clock (a vendor rule that stops
// grants after a given time), randomness, http.send. A verdict of such
// rules judged for a plan holds for that plan only: a chunk planned again
// judges every line again. Here a rule refuses line 5 once a time has
// passed; the first plan judges it before that time (allowed), the plan
// made again after (the commit between conflicted with line 100). Taking
// line 5's old verdict let the plan go on to line 100 (refused there: its
// unit changed) instead of refusing line 5, which judging in order at the
// commit's revision and time refuses — and a chunk without such a line 100
// would have stored line 5.
func TestPlanAgainJudgesAgainVerdictsOfRulesThatVary(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	ctx := context.Background()
	_, svc := newActiveService(t)
	closes := time.Now().Add(time.Second)
	b := DefaultBundleWith(t, nil, map[string]string{"policies/celonis/window.rego": fmt.Sprintf(`package permatrix.systems.celonis_task_mining

# A grant window: user:a5 is granted nothing once it has closed.
violations contains "the grant window for user:a5 has closed" if {
	input.assignment.subject == "user:a5"
	time.now_ns() >= %d
}
`, closes.UnixNano())})
	if _, err := svc.Activate(ctx, b); err != nil {
		t.Fatal(err)
	}
	if p, err := svc.policy(); err != nil || !p.VerdictVaries {
		t.Fatalf("the write rules that read the clock are not said to vary (%v)", err)
	}
	lines := append(analystLines(1, 99), ImportLine{Line: 100, Assignment: memPermission})
	release, result := heldChunk(ctx, svc, lines) // the first plan is made: it waits for the chunk before
	if !time.Now().Before(closes) {
		release()
		<-result
		t.Skip("the first plan ended after the window closed: this machine is too slow for the test")
	}
	if _, _, err := svc.Assign(ctx, memMember, ""); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(closes)) // the plan made again is made after the window closed
	release()
	err := <-result
	if err == nil || permatrix.ErrorCode(err) != permatrix.EUNPROCESSABLE || !strings.Contains(err.Error(), "line 5: the grant window") {
		t.Fatalf("the chunk: %v; want line 5 refused (its window closed before the plan made again)", err)
	}
}

// Write rules that read data.store.revision — which no store unit stands
// for, so no verdict records it as read — give a verdict for their own
// plan's revision only: a chunk planned again judges every line again.
// Here a rule refuses line 5 from revision 1 on; the first plan is made at
// revision 0 (allowed), the plan made again at 1.
func TestPlanAgainJudgesAgainVerdictsOfRulesThatReadTheRevision(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	ctx := context.Background()
	_, svc := newActiveService(t)
	activateFrozen(ctx, t, svc)
	lines := append(analystLines(1, 99), ImportLine{Line: 100, Assignment: memPermission})
	release, result := heldChunk(ctx, svc, lines) // the first plan is made, at revision 0
	if svc.Revision() != 0 {
		t.Fatalf("the store is at revision %d, want 0", svc.Revision())
	}
	if _, _, err := svc.Assign(ctx, memMember, ""); err != nil {
		t.Fatal(err)
	}
	release()
	err := <-result
	if err == nil || permatrix.ErrorCode(err) != permatrix.EUNPROCESSABLE || !strings.Contains(err.Error(), "line 5: user:a5 is frozen") {
		t.Fatalf("the chunk: %v; want line 5 refused (the plan made again is at revision 1)", err)
	}
}

// Nor is a verdict of such rules judged on a worker's snapshot newer than
// the plan's taken: here the rule refuses user:a5 from revision 1 on, the
// plan is at revision 0 (allowed there) and the workers at 1 (refused).
func TestJudgedAheadOnANewerSnapshotOfRulesThatReadTheRevision(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	ctx := context.Background()
	_, svc := newActiveService(t)
	p := activateFrozen(ctx, t, svc)
	changes := changesOf(t, p, analystLines(1, 100)) // user:a5 is changes[4]
	snap, err := svc.backend.View()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	tx := store.NewTx(ctx, snap, nil)
	if tx.Revision() != 0 {
		t.Fatalf("the plan is at revision %d, want 0", tx.Revision())
	}
	if _, _, err := svc.Assign(ctx, memMember, ""); err != nil {
		t.Fatal(err)
	}
	a := svc.prejudge(ctx, p, tx.Revision(), changes, nil)
	if a == nil {
		t.Fatal("nothing judged ahead")
	}
	defer a.stop()
	violations, _, err := a.verdict(4, tx)
	if r := a.results[4]; r.revision != 1 {
		t.Fatalf("user:a5 judged at %d, want the workers' revision 1", r.revision)
	}
	if !errors.Is(err, errNotAhead) {
		t.Fatalf("user:a5's verdict judged at revision 1 (%q) taken by the plan at 0: %v, want it judged in order", violations, err)
	}
}

// activateFrozen activates the embedded bundle with a rule that refuses
// user:a5 anything from revision 1 on, and returns its policy (said to
// vary: it reads data.store.revision).
func activateFrozen(ctx context.Context, t *testing.T, svc *Service) *opa.Policy {
	t.Helper()
	b := DefaultBundleWith(t, nil, map[string]string{"policies/celonis/frozen.rego": `package permatrix.systems.celonis_task_mining

# A store frozen for user:a5 from revision 1 on.
violations contains "user:a5 is frozen from revision 1 on" if {
	input.assignment.subject == "user:a5"
	data.store.revision >= 1
}
`})
	if _, err := svc.Activate(ctx, b); err != nil {
		t.Fatal(err)
	}
	p, err := svc.policy()
	if err != nil || !p.VerdictVaries {
		t.Fatalf("the write rules that read data.store.revision are not said to vary (%v)", err)
	}
	return p
}
