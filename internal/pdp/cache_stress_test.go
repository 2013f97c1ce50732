package pdp_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
)

// Every kind of write (grants of every system, memberships, custom roles,
// projects and their creators), bundle swaps between two policies that
// answer differently, and checks of every system with asserted groups in
// every shape, concurrently; every answer — most from the cache — is
// compared with an uncached evaluation by the policy that answered over a
// snapshot of the revision it names.
func TestDecisionCacheNeverStaleUnderEverything(t *testing.T) {
	ctx := context.Background()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "cache.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stock, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	// other allows u1 nothing: answers that differ from the stock policy's.
	other := pdp.DefaultBundleWith(t, func(p, src string) string {
		if strings.HasSuffix(p, "permatrix/lib/lib.rego") {
			return strings.Replace(src, "\tcount(missing) == 0\n} else", "\tcount(missing) == 0\n\tinput.subject != \"u1\"\n} else", 1)
		}
		return src
	}, nil)
	svc := pdp.New(db, opa.NewEngine(db), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if _, err := svc.Activate(ctx, stock); err != nil {
		t.Fatal(err)
	}
	cat := svc.Catalog()

	revs := keepRevisions(t, db)
	defer revs.close()

	users := []string{"u0", "u1", "u2"}
	groups := []string{"g0", "g1"}
	systems := cat.IDs()
	refused := func(err error) bool {
		switch permatrix.ErrorCode(err) {
		case permatrix.EINVALID, permatrix.ENOTFOUND, permatrix.EFORBIDDEN, permatrix.EUNPROCESSABLE, permatrix.ECONFLICT:
			return true
		}
		return false
	}

	stop := make(chan struct{})
	var writes, swaps, refusals atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the writer, and the bundle swapper
		defer wg.Done()
		rng := rand.New(rand.NewPCG(3, 4))
		var ids []string
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			sys := cat[systems[rng.IntN(len(systems))]]
			var err error
			switch op := rng.IntN(12); {
			case op == 0 && rng.IntN(4) == 0: // a compile takes as long as many writes
				b := stock
				if swaps.Add(1)%2 == 1 {
					b = other
				}
				if _, err := svc.Activate(ctx, b); err != nil {
					t.Error(err)
					return
				}
				continue
			case op < 5 || len(ids) == 0:
				a := randomAssignment(rng, sys, users, groups, []string{"r0", "r1"})
				a, _, err = svc.Assign(ctx, a, "")
				if err == nil {
					ids = append(ids, a.ID)
				}
			case op < 7:
				i := rng.IntN(len(ids))
				_, err = svc.Unassign(ctx, ids[i], "")
				ids = append(ids[:i], ids[i+1:]...)
			case op < 9:
				m := permatrix.Membership{Group: groups[rng.IntN(len(groups))], User: users[rng.IntN(len(users))]}
				if rng.IntN(2) == 0 {
					_, err = svc.AddMember(ctx, m, "")
				} else {
					_, err = svc.RemoveMember(ctx, m, "")
				}
			case op == 9:
				bp := cat["blueprism"]
				perms := slices.Sorted(maps.Keys(bp.Permissions))
				r := permatrix.Role{System: "blueprism", Name: fmt.Sprintf("r%d", rng.IntN(2))}
				if rng.IntN(4) == 0 {
					_, err = svc.DeleteRole(ctx, r.System, r.Name, "")
					break
				}
				for range 1 + rng.IntN(4) {
					r.Permissions = append(r.Permissions, perms[rng.IntN(len(perms))])
				}
				slices.Sort(r.Permissions)
				r.Permissions = slices.Compact(r.Permissions)
				_, err = svc.PutRole(ctx, r, "")
			default:
				var withProjects []string
				for _, id := range systems {
					if cat[id].HasScopeType("project") {
						withProjects = append(withProjects, id)
					}
				}
				p := permatrix.Project{System: withProjects[rng.IntN(len(withProjects))], ID: fmt.Sprintf("x%d", rng.IntN(2)),
					CreatedBy: users[rng.IntN(len(users))], Kind: []string{"", "assisted", "unassisted"}[rng.IntN(3)]}
				_, _, _, err = svc.PutProject(ctx, p, "")
			}
			if err != nil {
				if !refused(err) {
					t.Error(err)
					return
				}
				refusals.Add(1)
				continue
			}
			revs.keep()
			writes.Add(1)
			time.Sleep(time.Duration(rng.IntN(300)) * time.Microsecond)
		}
	}()
	var compared, differ, skipped atomic.Int64
	for c := range 2 { // the checkers
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 9))
			for {
				select {
				case <-stop:
					return
				default:
				}
				ch := randomCheck(rng, cat, systems, users)
				switch rng.IntN(5) {
				case 0:
					ch.Groups = []string{}
				case 1:
					ch.Groups = []string{groups[rng.IntN(2)]}
				case 2:
					ch.Groups = []string{"g1", "g0", "g1"}
				}
				p := svc.Policy()
				d, err := svc.Check(ctx, ch)
				if err != nil {
					t.Error(err)
					return
				}
				if svc.Policy() != p {
					skipped.Add(1) // which policy answered is not known
					continue
				}
				if !revs.compare(t, ctx, p, ch, d, &compared, &differ) {
					return
				}
			}
		}()
	}
	time.Sleep(4 * time.Second)
	close(stop)
	wg.Wait()
	st := svc.CacheStats()
	t.Logf("%d writes (%d refused), %d swaps, %d answers compared (%d from the cache, %d skipped), %d differences",
		writes.Load(), refusals.Load(), swaps.Load(), compared.Load(), st.Hits, skipped.Load(), differ.Load())
	if st.Hits == 0 || writes.Load() < 20 {
		t.Fatalf("the test exercised too little: %d cache hits, %d writes", st.Hits, writes.Load())
	}
}
