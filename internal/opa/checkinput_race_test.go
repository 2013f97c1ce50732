package opa_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// TestPooledCheckInputsUnderGoroutines: many goroutines deciding checks at
// once by the vm — each check's input filled into pooled objects
// (checkInputs) — each get the decision topdown gives the same check
// alone, hostile subjects and ids too (the input's own keys, empty,
// another user's name). Under -race it also holds a pooled input to being
// one decision's at a time, and the inputs' shared terms to being only
// read.
func TestPooledCheckInputsUnderGoroutines(t *testing.T) {
	rng := rand.New(rand.NewPCG(38, 8))
	vmPolicy, tdPolicy, c, db, snap := assignCorpus(t, rng)
	ctx := context.Background()
	hostile := []string{"", "subject", "system", "action", "resource", "type", "id", "service", "u0", "null"}
	checks := make([]permatrix.Check, 400)
	decisions := make([]*permatrix.Decision, len(checks))
	for i := range checks {
		ch := c.check(i)
		if i%5 == 0 {
			ch.Subject = c.pick(hostile)
		}
		if ch.Resource != nil && ch.Resource.ID != "" && i%7 == 0 {
			ch.Resource = &permatrix.Scope{Type: ch.Resource.Type, ID: c.pick(hostile)}
		}
		checks[i] = ch
		var err error
		if decisions[i], err = tdPolicy.Decide(ctx, store.Track(snap), ch); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			// A snapshot is one goroutine's.
			snap, err := db.View()
			if err != nil {
				errs <- err
				return
			}
			defer snap.Close()
			for r := range 3 {
				for i := range checks {
					k := (i*7 + g*31 + r*13) % len(checks)
					d, err := vmPolicy.Decide(ctx, snap, checks[k])
					if err != nil || !reflect.DeepEqual(d, decisions[k]) {
						errs <- fmt.Errorf("goroutine %d, check %+v:\n vm      %+v %v\n topdown %+v", g, checks[k], d, err, decisions[k])
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
