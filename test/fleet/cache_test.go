package fleet_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/etcd"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
	"github.com/permatrix/permatrix/test/harness"
)

// TestCacheAfterWriteElsewhere: sidecar B's decision cache, warmed before
// every write, never answers stale after a write through sidecar A — for
// grants, group memberships, custom roles and projects, with the write's
// revision as a consistency token and without one (once B has applied it).
// B's replica learns what changed from the data keys' events alone (the
// watch carries no guards): every answer is compared with an uncached
// evaluation over B's snapshot of the revision it names.
func TestCacheAfterWriteElsewhere(t *testing.T) {
	ctx := context.Background()
	cluster := harness.StartEtcdCluster(t, 1)
	prefix := fmt.Sprintf("cache%d", time.Now().UnixNano())
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	bundle, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	sidecar := func(name string) (*etcd.Store, *pdp.Service, *opa.Policy) {
		s, err := etcd.Open(ctx, etcd.Options{URL: cluster.StoreURL(prefix), Replica: filepath.Join(t.TempDir(), name+".db"), Logger: discard})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if snap, err := s.View(); err == nil {
				snap.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("replica never loaded")
			}
		}
		svc := pdp.New(s, opa.NewEngine(s), discard, nil)
		svc.SetCacheSize(pdp.DefaultCacheSize)
		p, err := svc.Activate(ctx, bundle)
		if err != nil {
			t.Fatal(err)
		}
		return s, svc, p
	}
	_, svcA, _ := sidecar("a")
	b, svcB, pB := sidecar("b")

	const bp, tm = "blueprism", "celonis-task-mining"
	users := []string{"ann", "bob"}
	checks := []permatrix.Check{}
	for _, u := range users {
		for _, act := range []string{"execute_process", "edit_process", "delete_process"} {
			checks = append(checks, permatrix.Check{Subject: u, System: bp, Action: act})
		}
		for _, act := range []string{"edit_users", "view_project"} {
			checks = append(checks, permatrix.Check{Subject: u, System: tm, Action: act, Resource: &permatrix.Scope{Type: "project", ID: "p1"}})
		}
	}
	// ask decides every check at B and compares each answer with an
	// uncached evaluation at the revision it names (B changes only with A's
	// writes: one writer, waited for).
	ask := func(round int, min uint64) {
		t.Helper()
		for _, c := range checks {
			c.MinRevision = min
			d, err := svcB.Check(ctx, c)
			if err != nil {
				t.Fatalf("round %d: %+v: %v", round, c, err)
			}
			snap, err := b.View()
			if err != nil {
				t.Fatal(err)
			}
			if snap.Revision() != d.Revision {
				snap.Close()
				t.Fatalf("round %d: B moved from %d to %d with no write", round, d.Revision, snap.Revision())
			}
			want, err := pB.Decide(ctx, snap, c)
			snap.Close()
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow != want.Allow || !reflect.DeepEqual(d.Reasons, want.Reasons) || !reflect.DeepEqual(d.Missing, want.Missing) {
				t.Fatalf("round %d (min_revision %d), %s %s %s: B served allow=%v at %d, evaluated allow=%v\nserved reasons %v\nevaluated %v",
					round, min, c.Subject, c.System, c.Action, d.Allow, d.Revision, want.Allow, d.Reasons, want.Reasons)
			}
		}
	}
	rng := rand.New(rand.NewPCG(7, 11))
	var grants []string // assignment ids made through A
	roleAssigned := false
	perms := []string{"execute_process", "edit_process", "delete_process"}
	var rev uint64
	writes := 0
	for round := range 60 {
		ask(round, 0) // warm B's cache on the state before the write
		var err error
		var what string
		switch op := rng.IntN(8); {
		case op == 0 || len(grants) == 0:
			what = "grant"
			var a permatrix.Assignment
			a, rev, err = svcA.Assign(ctx, permatrix.Assignment{Subject: "user:" + users[rng.IntN(2)], System: tm, Permission: "edit_users", Scope: permatrix.Scope{Type: "project", ID: "p1"}}, "")
			grants = append(grants, a.ID)
		case op == 1:
			what = "unassign"
			i := rng.IntN(len(grants))
			rev, err = svcA.Unassign(ctx, grants[i], "")
			grants = append(grants[:i], grants[i+1:]...)
			if permatrix.ErrorCode(err) == permatrix.ENOTFOUND {
				err = nil // a duplicate grant had the same id
			}
		case op == 2:
			what = "group grant"
			_, rev, err = svcA.Assign(ctx, permatrix.Assignment{Subject: "group:ops", System: bp, Role: "dev", Scope: permatrix.ServiceScope}, "")
			roleAssigned = roleAssigned || err == nil
		case op == 3:
			what = "add member"
			rev, err = svcA.AddMember(ctx, permatrix.Membership{Group: "ops", User: users[rng.IntN(2)]}, "")
		case op == 4:
			what = "remove member"
			rev, err = svcA.RemoveMember(ctx, permatrix.Membership{Group: "ops", User: users[rng.IntN(2)]}, "")
			if permatrix.ErrorCode(err) == permatrix.ENOTFOUND {
				continue
			}
		case op == 5 || op == 6:
			what = "put role"
			ps := []string{}
			for _, p := range perms {
				if rng.IntN(2) == 0 {
					ps = append(ps, p)
				}
			}
			rev, err = svcA.PutRole(ctx, permatrix.Role{System: bp, Name: "dev", Permissions: ps}, "")
		default:
			what = "put project"
			_, rev, _, err = svcA.PutProject(ctx, permatrix.Project{System: tm, ID: "p1", CreatedBy: users[rng.IntN(2)], Kind: "assisted"}, "")
			if permatrix.ErrorCode(err) == permatrix.ECONFLICT {
				continue // registered already, by the other user
			}
		}
		if err != nil && permatrix.ErrorCode(err) != permatrix.EUNPROCESSABLE {
			t.Fatalf("round %d: %s at A: %v", round, what, err)
		}
		if err != nil {
			continue
		}
		writes++
		ask(round, rev) // with the token
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = b.Wait(wctx, rev)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		ask(round, 0) // without
	}
	st := svcB.CacheStats()
	t.Logf("%d writes at A; B's cache: %d hits, %d misses", writes, st.Hits, st.Misses)
	if writes < 20 || st.Hits == 0 || !roleAssigned {
		t.Fatalf("the test exercised too little: %d writes, %d cache hits, role assigned %v", writes, st.Hits, roleAssigned)
	}
}
