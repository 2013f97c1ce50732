package pdp_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/pdp"
)

// An import's chunks judged ahead, planned again after conflicts and
// overlapped with the chunk before, while single writes change the very
// users they grant to, keep the vendor rule every write is judged by:
// no Celonis member holds a permission ("members can be granted
// nothing", vendor-docs/README.md; both ways: a member is given no
// permission, a user holding one is made no member). A verdict taken for
// a state it was not judged on — judged ahead before a member was made,
// taken by a plan after it — stores a permission for a member.
func TestImportAgainstConcurrentMembersKeepsTheRule(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	const users, rounds = 40, 40
	r := rand.New(rand.NewPCG(7, 11))
	ctx := context.Background()
	conflicts := 0
	for round := range rounds {
		svc := newService(t)
		var imported []pdp.ImportLine
		for i := range 600 {
			imported = append(imported, pdp.ImportLine{Line: i + 1, Assignment: permatrix.Assignment{
				Subject: fmt.Sprintf("user:c%d", r.IntN(users)), System: "celonis-task-mining", Permission: "edit_users",
				Scope: permatrix.Scope{Type: "project", ID: fmt.Sprintf("p%d", r.IntN(30))}}})
		}
		members := r.Perm(users)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, u := range members {
				select {
				case <-stop:
					return
				default:
				}
				// Refused (422) for a user holding a permission already.
				_, _, _ = svc.Assign(ctx, permatrix.Assignment{Subject: fmt.Sprintf("user:c%d", u), System: "celonis-task-mining", Role: "member", Scope: permatrix.ServiceScope}, "")
			}
		}()
		src := &lines{n: len(imported), line: func(n int) pdp.ImportLine { return imported[n-1] }}
		_, err := svc.ImportStream(ctx, src.next, pdp.ImportOptions{Chunk: 100})
		close(stop)
		wg.Wait()
		if err != nil && permatrix.ErrorCode(err) != permatrix.EUNPROCESSABLE {
			t.Fatalf("round %d: %v", round, err)
		}
		list, _, err := svc.Assignments(ctx, permatrix.AssignmentFilter{})
		if err != nil {
			t.Fatal(err)
		}
		member, permitted := map[string]bool{}, map[string]bool{}
		for _, a := range list {
			if a.Role == "member" {
				member[a.Subject] = true
			}
			if a.Permission != "" {
				permitted[a.Subject] = true
			}
		}
		for u := range member {
			if permitted[u] {
				t.Fatalf("round %d: %s is a Celonis member holding a permission", round, u)
			}
		}
		conflicts += int(pdp.PlansAgain(svc))
	}
	if conflicts == 0 {
		t.Fatal("no chunk was planned again: the test meets no conflict")
	}
	t.Logf("%d verdicts taken by plans made again", conflicts)
}
