package pdp_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
	"github.com/permatrix/permatrix/internal/store"
)

// Writes and checks run concurrently; every answer — most from the
// decision cache — is compared with an uncached evaluation over a snapshot
// of the very revision the answer names. Zero differences.
func TestDecisionCacheNeverStale(t *testing.T) {
	ctx := context.Background()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "cache.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	svc := pdp.New(db, opa.NewEngine(db), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	p, err := svc.Activate(ctx, b)
	if err != nil {
		t.Fatal(err)
	}

	revs := keepRevisions(t, db)
	defer revs.close()

	const tm = "celonis-task-mining"
	users := []string{"ann", "bob", "cy"}
	project := func(i int) *permatrix.Scope { return &permatrix.Scope{Type: "project", ID: fmt.Sprintf("p%d", i)} }
	stop := make(chan struct{})
	var writes atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the writer
		defer wg.Done()
		rng := rand.New(rand.NewPCG(1, 2))
		var ids []string
		for {
			select {
			case <-stop:
				return
			default:
			}
			var err error
			switch op := rng.IntN(5); {
			case op < 2 || len(ids) == 0:
				a := permatrix.Assignment{Subject: "user:" + users[rng.IntN(3)], System: tm, Permission: "edit_users", Scope: *project(rng.IntN(3))}
				if rng.IntN(3) == 0 {
					a.Scope = permatrix.ServiceScope
				}
				a, _, err = svc.Assign(ctx, a, "")
				ids = append(ids, a.ID)
			case op == 2:
				i := rng.IntN(len(ids))
				_, err = svc.Unassign(ctx, ids[i], "")
				ids = append(ids[:i], ids[i+1:]...)
				if permatrix.ErrorCode(err) == permatrix.ENOTFOUND {
					err = nil
				}
			case op == 3:
				_, _, err = svc.Assign(ctx, permatrix.Assignment{Subject: "group:ops", System: tm, Permission: "edit_client_settings", Scope: permatrix.ServiceScope}, "")
			default:
				m := permatrix.Membership{Group: "ops", User: users[rng.IntN(3)]}
				if rng.IntN(2) == 0 {
					_, err = svc.AddMember(ctx, m, "")
				} else if _, err = svc.RemoveMember(ctx, m, ""); permatrix.ErrorCode(err) == permatrix.ENOTFOUND {
					err = nil
				}
			}
			if err != nil {
				t.Error(err)
				return
			}
			revs.keep()
			writes.Add(1)
			time.Sleep(time.Duration(rng.IntN(300)) * time.Microsecond)
		}
	}()
	var compared, differ atomic.Int64
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
				ch := permatrix.Check{Subject: users[rng.IntN(3)], System: tm, Action: []string{"edit_users", "view_project", "edit_client_settings"}[rng.IntN(3)], Resource: project(rng.IntN(3))}
				d, err := svc.Check(ctx, ch)
				if err != nil {
					t.Error(err)
					return
				}
				if !revs.compare(t, ctx, p, ch, d, &compared, &differ) {
					return
				}
			}
		}()
	}
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()
	st := svc.CacheStats()
	t.Logf("%d writes, %d answers compared (%d from the cache), %d differences", writes.Load(), compared.Load(), st.Hits, differ.Load())
	if st.Hits == 0 || writes.Load() < 20 {
		t.Fatalf("the test exercised too little: %d cache hits, %d writes", st.Hits, writes.Load())
	}
}

// A decision is kept the second time its question is asked, and a sweep of
// one-off questions larger than the cache neither evicts the questions
// asked all the time nor fills the cache.
func TestDecisionCacheKeepsRepeatedQuestions(t *testing.T) {
	ctx := context.Background()
	svc := newService(t)
	if _, _, err := svc.Import(ctx, analysts(0, 700)); err != nil {
		t.Fatal(err)
	}
	const size = 50
	svc.SetCacheSize(size)
	check := func(i int) permatrix.Check {
		return permatrix.Check{Subject: fmt.Sprintf("u%d", i), System: "celonis-task-mining", Action: "view_project",
			Resource: &permatrix.Scope{Type: "project", ID: fmt.Sprintf("p%d", i%50)}}
	}
	ask := func(i int) {
		t.Helper()
		d, err := svc.Check(ctx, check(i))
		if err != nil || !d.Allow {
			t.Fatalf("check %d: %v %+v", i, err, d)
		}
	}

	ask(0)
	if st := svc.CacheStats(); st.Entries != 0 || st.Firsts != 1 {
		t.Fatalf("after one ask: %+v, want no entry and one first sighting", st)
	}
	ask(0)
	ask(0)
	if st := svc.CacheStats(); st.Entries != 1 || st.Hits != 1 || st.Misses != 2 {
		t.Fatalf("after three asks: %+v, want one entry, one hit (the third ask), two misses", st)
	}

	const hot = 20 // the questions asked all the time
	for range 2 {
		for i := range hot {
			ask(i)
		}
	}
	before := svc.CacheStats()
	for i := hot; i < hot+600; i++ { // the sweep: 12 times the cache's size
		ask(i)
	}
	swept := svc.CacheStats()
	if kept := swept.Entries - before.Entries; kept > size/5 {
		t.Errorf("the sweep of 600 one-off questions left %d entries (%+v); the doorkeeper should keep almost none", kept, swept)
	}
	for i := range hot {
		ask(i)
	}
	after := svc.CacheStats()
	if after.Hits-swept.Hits != hot || after.Misses != swept.Misses {
		t.Errorf("the hot questions after the sweep: %d hits, %d misses; want %d hits, none missed", after.Hits-swept.Hits, after.Misses-swept.Misses, hot)
	}
}

// A working set exactly as large as the cache, asked round and round, is
// kept: the doorkeeper must not forget the question that fills it (at
// size 1 the cache would otherwise keep nothing, at size n a cycle of n
// questions never be kept).
func TestDecisionCacheKeepsAWorkingSetOfItsSize(t *testing.T) {
	ctx := context.Background()
	svc := newService(t)
	if _, _, err := svc.Import(ctx, analysts(0, 8)); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{1, 2, 8} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			svc.SetCacheSize(size)
			round := func() {
				for i := range size {
					d, err := svc.Check(ctx, permatrix.Check{Subject: fmt.Sprintf("u%d", i), System: "celonis-task-mining", Action: "view_project",
						Resource: &permatrix.Scope{Type: "project", ID: fmt.Sprintf("p%d", i%50)}})
					if err != nil || !d.Allow {
						t.Fatalf("check %d: %v %+v", i, err, d)
					}
				}
			}
			round() // each question seen first (a Bloom false positive may keep one)
			round() // each question kept
			kept := svc.CacheStats()
			round()
			round()
			// (Asserted on the last two rounds only: the doorkeeper's seed is
			// random, and a false positive would add a hit in round 2.)
			if st := svc.CacheStats(); kept.Entries != size || st.Hits-kept.Hits != uint64(2*size) || st.Misses != kept.Misses {
				t.Errorf("%d questions asked round and round, cache of %d: after 2 rounds %+v, after 4 %+v; want %d entries, then only hits",
					size, size, kept, st, size)
			}
		})
	}
}

// A large --decision-cache-size costs memory only as decisions are kept:
// the doorkeeper's filter is sized by the cache's size up to a bound, not
// allocated at 2 bytes an entry of any size asked for (at 10^11 that was
// a fatal out-of-memory at start, and past 2^59 entries the size wrapped).
func TestDecisionCacheLargeSizeAllocatesLittle(t *testing.T) {
	svc := newService(t)
	for _, size := range []int{1 << 30, 1 << 60, math.MaxInt} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		svc.SetCacheSize(size)
		runtime.ReadMemStats(&after)
		if grown := after.TotalAlloc - before.TotalAlloc; grown > 64<<20 {
			t.Errorf("SetCacheSize(%d) allocated %d MiB", size, grown>>20)
		}
		ctx := context.Background()
		c := permatrix.Check{Subject: "ann", System: "celonis-task-mining", Action: "edit_users"}
		for range 3 {
			if _, err := svc.Check(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		if st := svc.CacheStats(); st.Entries != 1 || st.Hits != 1 {
			t.Errorf("cache of %d, a question asked 3 times: %+v, want it kept and answered once", size, st)
		}
	}
}

// TestDecisionCacheAcrossReplicaWipe: a fleet's replica that is emptied and
// loaded afresh (internal/etcd: a replica of another etcd cluster, or
// ahead of its own cluster restored from a snapshot) numbers its revisions
// anew — the same revision may now name another state. A decision cached
// before the wipe must not answer for the new state once the new
// revisions pass the one it was decided at.
func TestDecisionCacheAcrossReplicaWipe(t *testing.T) {
	ctx := context.Background()
	// The state the stale replica had: ann may edit users.
	primary := newService(t)
	a := permatrix.Assignment{Subject: "user:ann", System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.ServiceScope}
	if _, _, err := primary.Assign(ctx, a, ""); err != nil {
		t.Fatal(err)
	}
	var granted []store.Op
	snap, err := primary.Store().View()
	if err != nil {
		t.Fatal(err)
	}
	err = snap.Scan(nil, nil, func(k, v []byte) error {
		granted = append(granted, store.Op{Key: bytes.Clone(k), Value: bytes.Clone(v)})
		return nil
	})
	snap.Close()
	if err != nil || len(granted) == 0 {
		t.Fatalf("reading the grant's keys: %d keys, %v", len(granted), err)
	}

	replica, err := bolt.Open(filepath.Join(t.TempDir(), "replica.db"), bolt.Options{Replica: true, Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close()
	if err := replica.Resync(10, granted); err != nil {
		t.Fatal(err)
	}
	svc := pdp.New(replica, opa.NewEngine(replica), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	b, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Activate(ctx, b); err != nil {
		t.Fatal(err)
	}
	ch := permatrix.Check{Subject: "ann", System: a.System, Action: "edit_users", Resource: &permatrix.Scope{Type: "project", ID: "p1"}}
	for range 3 { // asked again: kept, then answered from the cache
		if d, err := svc.Check(ctx, ch); err != nil || !d.Allow || d.Revision != 10 {
			t.Fatalf("on the stale replica: %+v %v, want an allow at 10", d, err)
		}
	}
	if svc.CacheStats().Hits == 0 {
		t.Fatal("the decision was not cached: the test proves nothing")
	}

	// Emptied and loaded from the new cluster (no grant), at a lower
	// revision; then the new cluster passes revision 10.
	if err := replica.Wipe(); err != nil {
		t.Fatal(err)
	}
	if err := replica.Resync(4, nil); err != nil {
		t.Fatal(err)
	}
	if err := replica.Apply(12, nil, nil); err != nil {
		t.Fatal(err)
	}
	d, err := svc.Check(ctx, ch)
	if err != nil || d.Allow {
		t.Fatalf("after the replica was rebuilt without the grant: %+v %v, want a deny", d, err)
	}
}
