package pdp_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/store"
)

// revisions keeps a read transaction of every revision a test's only
// writer makes (right after a write returns, the store is at its
// revision), to evaluate a served answer again over the revision it names.
type revisions struct {
	t     testing.TB
	db    *bolt.DB
	mu    sync.Mutex
	snaps map[uint64]store.Snapshot
	// deciding lets one decide read the snapshots at a time.
	deciding sync.Mutex
}

// keepRevisions keeps the store's revision now, and the ones keep is told
// of. close them before the db: bbolt's Close waits for its reads.
func keepRevisions(t testing.TB, db *bolt.DB) *revisions {
	r := &revisions{t: t, db: db, snaps: map[uint64]store.Snapshot{}}
	r.keep()
	return r
}

// keep keeps the revision the store is at (one kept already: a write that
// changed nothing).
func (r *revisions) keep() {
	s, err := r.db.View()
	if err != nil {
		r.t.Error(err)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.snaps[s.Revision()] != nil {
		s.Close()
		return
	}
	r.snaps[s.Revision()] = s
}

// decide is p's decision of ch over the snapshot of rev, waited for while
// its writer keeps it (up to 5 s). The deciders share the snapshots, and a
// bbolt read transaction is for one goroutine at a time (the bolt snapshot
// also counts the bytes its scans read): one decides at a time.
func (r *revisions) decide(ctx context.Context, p *opa.Policy, rev uint64, ch permatrix.Check) (*permatrix.Decision, error) {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		r.mu.Lock()
		s := r.snaps[rev]
		r.mu.Unlock()
		if s != nil {
			r.deciding.Lock()
			defer r.deciding.Unlock()
			return p.Decide(ctx, s, ch)
		}
	}
	return nil, fmt.Errorf("no snapshot of revision %d", rev)
}

// compare holds d, the served answer to ch, to p's decision of ch at the
// revision d names, counting the comparison in compared and a difference
// in differ (a test error). false: deciding again failed (a test error).
func (r *revisions) compare(t testing.TB, ctx context.Context, p *opa.Policy, ch permatrix.Check, d *permatrix.Decision, compared, differ *atomic.Int64) bool {
	want, err := r.decide(ctx, p, d.Revision, ch)
	if err != nil {
		t.Error(err)
		return false
	}
	compared.Add(1)
	if !sameAnswer(d, want) {
		differ.Add(1)
		t.Errorf("revision %d, %+v: served %v %v %v, decided again %v %v %v", d.Revision, ch, d.Allow, d.Reasons, d.Missing, want.Allow, want.Reasons, want.Missing)
	}
	return true
}

// close closes every snapshot kept.
func (r *revisions) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.snaps {
		s.Close()
	}
	r.snaps = nil
}

// randomScope is a scope of one of types: the service, or one of two ids.
func randomScope(rng *rand.Rand, types []string) permatrix.Scope {
	if typ := types[rng.IntN(len(types))]; typ != "service" {
		return permatrix.Scope{Type: typ, ID: fmt.Sprintf("x%d", rng.IntN(2))}
	}
	return permatrix.ServiceScope
}

// randomCheck is a check by one of users of an action of one of cat's
// systems, at a scope the action takes (its service scope given or not).
func randomCheck(rng *rand.Rand, cat permatrix.Catalog, systems, users []string) permatrix.Check {
	sys := cat[systems[rng.IntN(len(systems))]]
	actions := sys.ActionIDs()
	action := actions[rng.IntN(len(actions))]
	ch := permatrix.Check{Subject: users[rng.IntN(len(users))], System: sys.ID, Action: action}
	if sc := randomScope(rng, sys.Actions[action].Scopes); !sc.IsService() || rng.IntN(2) == 0 {
		ch.Resource = &sc
	}
	return ch
}

// sameAnswer reports whether two decisions answer alike: allowed or not,
// with the same reasons and the same missing.
func sameAnswer(a, b *permatrix.Decision) bool {
	return a.Allow == b.Allow && reflect.DeepEqual(a.Reasons, b.Reasons) && reflect.DeepEqual(a.Missing, b.Missing)
}

// randomAssignment is an assignment to one of users or groups of a role
// or permission of sys — its custom roles (named in custom) half the time
// where it has them — at a scope the grant takes.
func randomAssignment(rng *rand.Rand, sys *permatrix.System, users, groups, custom []string) permatrix.Assignment {
	a := permatrix.Assignment{System: sys.ID, Subject: "user:" + users[rng.IntN(len(users))]}
	if rng.IntN(3) == 0 {
		a.Subject = "group:" + groups[rng.IntN(len(groups))]
	}
	roles, perms := slices.Sorted(maps.Keys(sys.Roles)), slices.Sorted(maps.Keys(sys.Permissions))
	if len(custom) > 0 && sys.CustomRoles.Scopes != nil && rng.IntN(2) == 0 {
		roles = custom
	}
	var scopes []string
	if len(perms) == 0 || (len(roles) > 0 && rng.IntN(2) == 0) {
		a.Role = roles[rng.IntN(len(roles))]
		scopes = sys.ScopeTypes
		if g, ok := sys.Roles[a.Role]; ok {
			scopes = g.Scopes
		}
	} else {
		a.Permission = perms[rng.IntN(len(perms))]
		scopes = sys.Permissions[a.Permission].Scopes
	}
	a.Scope = randomScope(rng, scopes)
	return a
}
