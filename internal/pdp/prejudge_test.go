package pdp_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/pdp"
)

// mixedImport is a random import of n lines over a few users, so lines meet
// each other's writes: Celonis roles (member, analyst, admin) and
// permissions — refused for a member, which an earlier line of the same
// import may have made the user —, UiPath suite roles and Blue Prism
// permissions.
func mixedImport(r *rand.Rand, n int) []pdp.ImportLine {
	var out []pdp.ImportLine
	for i := range n {
		u := fmt.Sprintf("user:m%d", r.IntN(40))
		var a permatrix.Assignment
		switch r.IntN(5) {
		case 0:
			a = permatrix.Assignment{Subject: u, System: "celonis-task-mining", Role: []string{"member", "analyst", "analyst", "analyst", "admin", "admin", "admin", "admin"}[r.IntN(8)], Scope: permatrix.ServiceScope}
		case 1, 2:
			a = permatrix.Assignment{Subject: u, System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.Scope{Type: "project", ID: fmt.Sprintf("p%d", r.IntN(4))}}
		case 3:
			a = permatrix.Assignment{Subject: u, System: "uipath-task-mining-suite", Role: "user", Scope: permatrix.ServiceScope}
		default:
			a = permatrix.Assignment{Subject: u, System: "blueprism", Permission: "view_dashboards", Scope: permatrix.ServiceScope}
		}
		out = append(out, pdp.ImportLine{Line: i + 1, Assignment: a})
	}
	return out
}

// importAll imports each batch in turn (each all or nothing) and returns
// every outcome and the export.
func importAll(t *testing.T, svc *pdp.Service, batches [][]pdp.ImportLine) ([]string, []byte) {
	t.Helper()
	var outcomes []string
	for _, b := range batches {
		n, _, err := svc.Import(context.Background(), b)
		outcomes = append(outcomes, fmt.Sprintf("%d %v", n, err))
	}
	var buf bytes.Buffer
	if _, err := svc.Export(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	// The export's revision differs with the commits made: compare the rest.
	i := bytes.Index(buf.Bytes(), []byte(`"grants"`))
	return outcomes, buf.Bytes()[i:]
}

// Judging ahead gives what judging in order gives, line for line: the same
// refusals (a permission for a user an earlier line of the import made a
// Celonis member) and the same store, while the plans do take verdicts
// judged ahead.
func TestJudgingAheadSameAsInOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var batches [][]pdp.ImportLine
	for range 30 {
		batches = append(batches, mixedImport(r, 64+r.IntN(200)))
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	inOrder := newService(t)
	wantOutcomes, wantExport := importAll(t, inOrder, batches)
	if pdp.AheadTaken(inOrder) != 0 {
		t.Fatal("one core judged ahead")
	}

	runtime.GOMAXPROCS(4)
	ahead := newService(t)
	gotOutcomes, gotExport := importAll(t, ahead, batches)
	for i := range wantOutcomes {
		if gotOutcomes[i] != wantOutcomes[i] {
			t.Errorf("batch %d: judged ahead %q, in order %q", i, gotOutcomes[i], wantOutcomes[i])
		}
	}
	if !bytes.Equal(gotExport, wantExport) {
		t.Errorf("the stores differ:\nahead:    %.400s\nin order: %.400s", gotExport, wantExport)
	}
	refused := 0
	for _, o := range wantOutcomes {
		if o[0] == '0' {
			refused++
		}
	}
	if refused == 0 || refused == len(batches) {
		t.Fatalf("%d of %d batches refused: the test needs both", refused, len(batches))
	}
	if pdp.AheadTaken(ahead) == 0 {
		t.Fatal("no verdict judged ahead was taken")
	}
	t.Logf("%d of %d batches refused; %d verdicts judged ahead taken", refused, len(batches), pdp.AheadTaken(ahead))
}

// A line refused only because of the line before it in the same import
// (a Celonis member given a permission) is refused although judged ahead
// against the store without that line.
func TestJudgingAheadSeesEarlierLines(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	svc := newService(t)
	var ls []pdp.ImportLine
	for i := range 100 {
		ls = append(ls, analyst(i+1))
	}
	ls = append(ls,
		pdp.ImportLine{Line: 101, Assignment: member},
		pdp.ImportLine{Line: 102, Assignment: refused})
	_, _, err := svc.Import(context.Background(), ls)
	wantCode(t, err, permatrix.EUNPROCESSABLE, fmt.Sprintf(refusedR, 102))
	if count(t, svc) != 0 {
		t.Fatal("a refused import stored something")
	}
	if pdp.AheadTaken(svc) == 0 {
		t.Fatal("no verdict judged ahead was taken")
	}
}

// An import whose context ends while its lines are judged ahead returns
// (the workers stop taking lines; the plan must not wait for the lines
// they never reached — it once did, forever: a SIGINT'd `permatrix import`
// hung).
func TestJudgingAheadCancelled(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	for round := range 5 {
		svc := newService(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { _, _, err := svc.Import(ctx, analysts(0, 20000)); done <- err }()
		time.Sleep(time.Duration(20+round*20) * time.Millisecond)
		cancel()
		select {
		case err := <-done:
			if err == nil {
				t.Fatalf("round %d: the import of 40,000 lines finished before its context ended", round)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("round %d: the import hung after its context ended", round)
		}
	}
}
