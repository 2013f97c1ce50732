package pdp_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/permatrix/permatrix"
)

// TestDeleteProjectRacingAnAssignment: a project's registration is
// deleted only while no assignment is made on it (409 otherwise). An
// assignment on it and its deletion, written at once on a real bbolt
// file, round after round: the deletion never commits after the
// assignment did (the assignment's scope index, which the deletion read
// empty, guards its commit), so no project is deleted with an assignment
// on it. One committed after the other's commit is fine either way round:
// an assignment may be made on a project not registered.
func TestDeleteProjectRacingAnAssignment(t *testing.T) {
	const system, rounds = "uipath-task-mining-cloud", 100
	svc := newService(t)
	ctx := context.Background()
	deletedFirst, refused := 0, 0
	for i := range rounds {
		id := fmt.Sprintf("p%d", i)
		if _, _, _, err := svc.PutProject(ctx, permatrix.Project{System: system, ID: id, CreatedBy: "alice", Kind: "assisted"}, ""); err != nil {
			t.Fatal(err)
		}
		var (
			wg                sync.WaitGroup
			start             = make(chan struct{})
			assignRev, delRev uint64
			assignErr, delErr error
		)
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			_, assignRev, assignErr = svc.Assign(ctx, permatrix.Assignment{Subject: "user:bob", System: system, Role: "business_analyst",
				Scope: permatrix.Scope{Type: "project", ID: id}}, "")
		}()
		deleting := make(chan struct{})
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				<-start
			}
			close(deleting)
			delRev, delErr = svc.DeleteProject(ctx, system, id, "")
		}()
		if i%2 == 1 {
			// The deletion a step ahead: it is planning when the
			// assignment starts.
			<-deleting
		}
		close(start)
		wg.Wait()
		if assignErr != nil {
			t.Fatalf("round %d: assign: %v", i, assignErr)
		}
		switch {
		case delErr == nil && delRev > assignRev:
			t.Fatalf("round %d: project %s deleted at revision %d with an assignment made on it at %d", i, id, delRev, assignRev)
		case delErr == nil:
			deletedFirst++
		case permatrix.ErrorCode(delErr) == permatrix.ECONFLICT:
			refused++
		default:
			t.Fatalf("round %d: delete: %v", i, delErr)
		}
	}
	t.Logf("%d rounds: the deletion first in %d, refused (409) in %d", rounds, deletedFirst, refused)
}
