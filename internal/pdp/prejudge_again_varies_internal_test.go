package pdp

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"
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
	b := bundleWith(t, map[string]string{"policies/celonis/window.rego": fmt.Sprintf(`package permatrix.systems.celonis_task_mining

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
	const n = 100
	var lines []ImportLine
	for i := 1; i < n; i++ {
		lines = append(lines, ImportLine{Line: i, Assignment: permatrix.Assignment{
			Subject: fmt.Sprintf("user:a%d", i), System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope}})
	}
	lines = append(lines, ImportLine{Line: n, Assignment: permatrix.Assignment{
		Subject: "user:mem", System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.ServiceScope}})

	before := &chunkWrite{planned: make(chan struct{}), done: make(chan struct{})}
	close(before.planned)
	w := &chunkWrite{after: before, planned: make(chan struct{}), done: make(chan struct{})}
	errc := make(chan error, 1)
	go func() {
		_, _, _, err := svc.importLines(ctx, lines, true, w)
		errc <- err
	}()
	<-w.planned // the first plan is made: it waits for the chunk before
	if !time.Now().Before(closes) {
		close(before.done)
		<-errc
		t.Skip("the first plan ended after the window closed: this machine is too slow for the test")
	}
	if _, _, err := svc.Assign(ctx, permatrix.Assignment{Subject: "user:mem", System: "celonis-task-mining", Role: "member", Scope: permatrix.ServiceScope}, ""); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(closes)) // the plan made again is made after the window closed
	close(before.done)
	err := <-errc
	if err == nil || permatrix.ErrorCode(err) != permatrix.EUNPROCESSABLE || !strings.Contains(err.Error(), "line 5: the grant window") {
		t.Fatalf("the chunk: %v; want line 5 refused (its window closed before the plan made again)", err)
	}
}

// bundleWith is the embedded bundle with more files (path: Rego).
func bundleWith(t *testing.T, more map[string]string) *opa.Bundle {
	t.Helper()
	fsys := fstest.MapFS{}
	err := fs.WalkDir(permatrix.DefaultBundle, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(permatrix.DefaultBundle, p)
		fsys[p] = &fstest.MapFile{Data: data}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for p, src := range more {
		fsys[p] = &fstest.MapFile{Data: []byte(src)}
	}
	b, err := opa.ReadLayout(fsys)
	if err != nil {
		t.Fatal(err)
	}
	return b
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
	b := bundleWith(t, map[string]string{"policies/celonis/frozen.rego": `package permatrix.systems.celonis_task_mining

# A store frozen for user:a5 from revision 1 on.
violations contains "user:a5 is frozen from revision 1 on" if {
	input.assignment.subject == "user:a5"
	data.store.revision >= 1
}
`})
	if _, err := svc.Activate(ctx, b); err != nil {
		t.Fatal(err)
	}
	if p, err := svc.policy(); err != nil || !p.VerdictVaries {
		t.Fatalf("the write rules that read data.store.revision are not said to vary (%v)", err)
	}
	const n = 100
	var lines []ImportLine
	for i := 1; i < n; i++ {
		lines = append(lines, ImportLine{Line: i, Assignment: permatrix.Assignment{
			Subject: fmt.Sprintf("user:a%d", i), System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope}})
	}
	lines = append(lines, ImportLine{Line: n, Assignment: permatrix.Assignment{
		Subject: "user:mem", System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.ServiceScope}})
	before := &chunkWrite{planned: make(chan struct{}), done: make(chan struct{})}
	close(before.planned)
	w := &chunkWrite{after: before, planned: make(chan struct{}), done: make(chan struct{})}
	errc := make(chan error, 1)
	go func() {
		_, _, _, err := svc.importLines(ctx, lines, true, w)
		errc <- err
	}()
	<-w.planned // the first plan is made, at revision 0
	if svc.Revision() != 0 {
		t.Fatalf("the store is at revision %d, want 0", svc.Revision())
	}
	if _, _, err := svc.Assign(ctx, permatrix.Assignment{Subject: "user:mem", System: "celonis-task-mining", Role: "member", Scope: permatrix.ServiceScope}, ""); err != nil {
		t.Fatal(err)
	}
	close(before.done)
	err := <-errc
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
	b := bundleWith(t, map[string]string{"policies/celonis/frozen.rego": `package permatrix.systems.celonis_task_mining

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
	changes := make([]change, 100)
	held := make([]bool, len(changes))
	for i := range changes {
		l := ImportLine{Line: i + 1, Assignment: permatrix.Assignment{
			Subject: fmt.Sprintf("user:a%d", i), System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope}}
		if changes[i], err = l.change(p, &held[i]); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := svc.backend.View()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	tx := store.NewTx(ctx, snap, nil)
	if tx.Revision() != 0 {
		t.Fatalf("the plan is at revision %d, want 0", tx.Revision())
	}
	if _, _, err := svc.Assign(ctx, permatrix.Assignment{Subject: "user:mem", System: "celonis-task-mining", Role: "member", Scope: permatrix.ServiceScope}, ""); err != nil {
		t.Fatal(err)
	}
	a := svc.prejudge(ctx, p, tx.Revision(), changes, nil)
	if a == nil {
		t.Fatal("nothing judged ahead")
	}
	defer a.stop()
	violations, _, err := a.verdict(5, tx)
	if r := a.results[5]; r.revision != 1 {
		t.Fatalf("user:a5 judged at %d, want the workers' revision 1", r.revision)
	}
	if !errors.Is(err, errNotAhead) {
		t.Fatalf("user:a5's verdict judged at revision 1 (%q) taken by the plan at 0: %v, want it judged in order", violations, err)
	}
}
