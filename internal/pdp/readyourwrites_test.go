package pdp_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/permatrix/permatrix"
)

// TestReadYourWritesWithTheCache: writers grant, revoke and find nothing to
// do (a member already there), each checking its own user right after each
// answer, the checks repeated so that most are answered from the decision
// cache: every check is decided at the revision the write answered or
// later, and says what the write did. (A write with nothing to do answered
// a revision bbolt showed but had not published yet, and the check after
// it came from the cache at the revision before: TestNothingToDoAnsweredOncePublished
// in internal/bolt holds that moment still.)
func TestReadYourWritesWithTheCache(t *testing.T) {
	ctx := context.Background()
	svc := newService(t)
	const tm = "celonis-task-mining"
	var wg sync.WaitGroup
	deadline := time.Now().Add(4 * time.Second)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := fmt.Sprintf("w%d", w)
			ch := permatrix.Check{Subject: user, System: tm, Action: "edit_users"}
			m := permatrix.Membership{Group: "ops", User: user}
			for n := 0; time.Now().Before(deadline); n++ {
				a, rev, err := svc.Assign(ctx, permatrix.Assignment{Subject: "user:" + user, System: tm, Permission: "edit_users", Scope: permatrix.ServiceScope}, "")
				if err != nil {
					t.Error(err)
					return
				}
				for range 2 {
					d, err := svc.Check(ctx, ch)
					if err != nil || !d.Allow || d.Revision < rev {
						t.Errorf("after assign at %d: %+v %v", rev, d, err)
						return
					}
				}
				if rev, err = svc.AddMember(ctx, m, ""); err != nil {
					t.Error(err)
					return
				}
				rev2, err := svc.Unassign(ctx, a.ID, "")
				if err != nil {
					t.Error(err)
					return
				}
				for range 2 {
					d, err := svc.Check(ctx, ch)
					if err != nil || d.Allow || d.Revision < rev2 {
						t.Errorf("after unassign at %d: %+v %v", rev2, d, err)
						return
					}
				}
				if rev, err = svc.AddMember(ctx, m, ""); err != nil { // nothing to do
					t.Error(err)
					return
				}
				d, err := svc.Check(ctx, ch)
				if err != nil || d.Allow || d.Revision < rev {
					t.Errorf("after a no-op at %d: %+v %v", rev, d, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if st := svc.CacheStats(); st.Hits == 0 {
		t.Fatalf("no check was answered from the cache: %+v", st)
	}
}
