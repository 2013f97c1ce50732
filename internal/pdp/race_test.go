package pdp_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/opa"
)

// Two actors each make, at the same moment, a write the rules allow alone
// but not after the other's: alice and bob, Task Mining Admins, each
// remove the other's admin role — granted directly, or held through a
// group each removes the other from. Each write's verdict reads the
// actor's own authority, and those reads guard its commit, so the second
// to commit is judged again after the first and refused: exactly one of
// the two goes through, with either evaluator (the vm's reads are the
// guards as much as topdown's).
func TestDelegationRaces(t *testing.T) {
	const suite = "uipath-task-mining-suite"
	admin := func(subject string) permatrix.Assignment {
		return permatrix.Assignment{Subject: subject, System: suite, Role: "admin", Scope: permatrix.ServiceScope}
	}
	for _, ev := range []opa.Evaluator{opa.VM, opa.Topdown} {
		t.Run(string(ev), func(t *testing.T) {
			ctx := context.Background()
			_, svc := newBoltService(t, opa.WithEvaluator(ev))
			// race runs the two writes at once and fails unless exactly
			// one is made and the other refused (403).
			race := func(what string, writes [2]func() error) {
				t.Helper()
				var errs [2]error
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i, w := range writes {
					wg.Go(func() { <-start; errs[i] = w() })
				}
				close(start)
				wg.Wait()
				made := 0
				for _, err := range errs {
					switch {
					case err == nil:
						made++
					case permatrix.ErrorCode(err) != permatrix.EFORBIDDEN:
						t.Fatalf("%s: %v", what, err)
					}
				}
				if made != 1 {
					t.Fatalf("%s: %d of the two writes made (%v)", what, made, errs)
				}
			}
			for round := range 8 {
				alice, bob := fmt.Sprintf("alice%d", round), fmt.Sprintf("bob%d", round)
				var ids [2]string
				for i, u := range []string{alice, bob} {
					a, _, err := svc.Assign(ctx, admin("user:"+u), "")
					if err != nil {
						t.Fatal(err)
					}
					ids[i] = a.ID
				}
				race(fmt.Sprintf("round %d, direct grants", round), [2]func() error{
					func() error { _, err := svc.Unassign(ctx, ids[1], alice); return err },
					func() error { _, err := svc.Unassign(ctx, ids[0], bob); return err },
				})

				group := fmt.Sprintf("admins%d", round)
				if _, _, err := svc.Assign(ctx, admin("group:"+group), ""); err != nil {
					t.Fatal(err)
				}
				for _, u := range []string{alice, bob} {
					if _, err := svc.AddMember(ctx, permatrix.Membership{Group: group, User: u}, ""); err != nil {
						t.Fatal(err)
					}
				}
				// The one left an admin by the first race is removed
				// from it: both are admins through the group only.
				for i, u := range []string{alice, bob} {
					if _, err := svc.Unassign(ctx, ids[i], ""); err != nil && permatrix.ErrorCode(err) != permatrix.ENOTFOUND {
						t.Fatalf("%s's grant: %v", u, err)
					}
				}
				race(fmt.Sprintf("round %d, through a group", round), [2]func() error{
					func() error {
						_, err := svc.RemoveMember(ctx, permatrix.Membership{Group: group, User: bob}, alice)
						return err
					},
					func() error {
						_, err := svc.RemoveMember(ctx, permatrix.Membership{Group: group, User: alice}, bob)
						return err
					},
				})
			}
		})
	}
}
