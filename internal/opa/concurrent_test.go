package opa_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/store"
)

// TestVMConcurrentDecisionsAsSequential: one vm Policy deciding from many
// goroutines at once (its pooled evaluations, scans under way and store
// units read whole, shared by none) answers each check as it does alone,
// and reads the same units. Under -race it also holds the evaluations to
// sharing nothing mutable.
func TestVMConcurrentDecisionsAsSequential(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 3))
	db := tempDB(t)
	p := compile(t, db, opa.WithEvaluator(opa.VM))
	cat := p.Catalog
	c := corpus{rng: rng, cat: cat, systems: cat.IDs(),
		users:  []string{"u0", "u1", "u2", "u3"},
		groups: []string{"g0", "g1", "administrators", "ops"},
		ids:    []string{"p1", "p2", "p3", "p4"}}
	ctx := context.Background()
	// Enough grants that some units are read whole and some not.
	c.fill(t, db, 20, 600, nil)
	type answer struct {
		d     any
		err   string
		units [][]byte
	}
	// A snapshot each (a snapshot is one goroutine's, as the server's are).
	decide := func(ch permatrix.Check) answer {
		snap, err := db.View()
		if err != nil {
			return answer{err: err.Error()}
		}
		defer snap.Close()
		tr := store.Track(snap)
		d, err := p.Decide(ctx, tr, ch)
		a := answer{d: d, units: tr.Units()}
		if err != nil {
			a.err = err.Error()
		}
		return a
	}
	const n = 300
	checks := make([]permatrix.Check, n)
	want := make([]answer, n)
	for i := range checks {
		checks[i] = c.check(i)
		want[i] = decide(checks[i])
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8*n)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range n {
				i := (j*7 + w*31) % n
				if got := decide(checks[i]); !reflect.DeepEqual(got, want[i]) {
					errs <- fmt.Sprintf("check %+v concurrently:\n %+v\nalone:\n %+v", checks[i], got, want[i])
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}
