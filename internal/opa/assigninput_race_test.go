package opa_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/store"
)

// TestPooledAssignInputsUnderGoroutines: many goroutines judging
// assignments at once — each verdict's input filled into pooled objects
// (assignInputs) — interleaved with decisions by the same vm policy, get
// each the verdict topdown gives the same input as a map alone, hostile
// strings too (the input's own keys as values, empty, huge, case
// variants of the bundle's names). Under -race it also holds a pooled
// input to being one verdict's at a time.
func TestPooledAssignInputsUnderGoroutines(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	vmPolicy, tdPolicy, c, db, snap := assignCorpus(t, rng)
	ctx := context.Background()
	hostile := []string{"", "op", "assign", "assignment", "actor", "role", "permission", "scope", "id",
		"subject", "system", "service", "Analyst", "ANALYST", strings.Repeat("x", 4096), "user:u0", "1", "null"}
	type judged struct {
		in        opa.AssignInput
		v, f      []string
		wantError bool
	}
	var cases []judged
	for i := range 300 {
		in := opa.AssignInput{Assignment: c.assignment()}
		switch i % 4 {
		case 1:
			in.Assignment.Subject = c.pick(hostile)
		case 2:
			if in.Assignment.Role != "" {
				in.Assignment.Role = c.pick(hostile)
			} else {
				in.Assignment.Permission = c.pick(hostile)
			}
			in.Assignment.ID = c.pick(hostile)
		case 3:
			in.Assignment.System = c.pick(hostile)
			in.Assignment.Scope = permatrix.Scope{Type: c.pick(hostile), ID: c.pick(hostile)}
		}
		m := map[string]any{"op": "assign", "assignment": in.Assignment.Value()}
		if rng.IntN(2) == 0 {
			in.Actor = c.pick(append(hostile, c.users...))
			if in.Actor != "" {
				m["actor"] = in.Actor
			}
		}
		v, f, err := tdPolicy.Verdict(ctx, store.Track(snap), m)
		cases = append(cases, judged{in: in, v: v, f: f, wantError: err != nil})
	}
	checks := make([]permatrix.Check, 20)
	decisions := make([]*permatrix.Decision, len(checks))
	for i := range checks {
		var err error
		checks[i] = c.check(i)
		if decisions[i], err = tdPolicy.Decide(ctx, store.Track(snap), checks[i]); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A snapshot is one goroutine's.
			snap, err := db.View()
			if err != nil {
				errs <- err
				return
			}
			defer snap.Close()
			for r := range 3 {
				for i := range cases {
					k := (i*7 + g*31 + r*13) % len(cases)
					jc := cases[k]
					in := jc.in
					v, f, err := vmPolicy.Verdict(ctx, store.Track(snap), &in)
					if (err != nil) != jc.wantError || !reflect.DeepEqual(v, jc.v) || !reflect.DeepEqual(f, jc.f) {
						errs <- fmt.Errorf("goroutine %d, assign %+v:\n vm      %v %v %v\n topdown %v %v (error %v)", g, in, v, f, err, jc.v, jc.f, jc.wantError)
						return
					}
					if i%15 == 0 {
						j := (i + g) % len(checks)
						d, err := vmPolicy.Decide(ctx, store.Track(snap), checks[j])
						if err != nil || !reflect.DeepEqual(d, decisions[j]) {
							errs <- fmt.Errorf("goroutine %d, check %+v:\n vm      %+v %v\n topdown %+v", g, checks[j], d, err, decisions[j])
							return
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
