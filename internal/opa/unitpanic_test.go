package opa_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/store"
)

// faultySnapshot fails its nth key handed to a Scan's callback: with an
// error, or with a panic (a caller recovers it), mid-unit.
type faultySnapshot struct {
	store.Snapshot
	n     int
	panic bool
}

var errFaulty = errors.New("faulty snapshot")

// Scan hands fn the keys the base scan found, itself: a panic in fn then
// leaves Scan (a bolt snapshot's own Scan turns one into an error).
func (f *faultySnapshot) Scan(prefix, after []byte, fn func(k, v []byte) error) error {
	var kvs [][2][]byte
	err := f.Snapshot.Scan(prefix, after, func(k, v []byte) error {
		kvs = append(kvs, [2][]byte{slices.Clone(k), slices.Clone(v)})
		return nil
	})
	if err != nil {
		return err
	}
	for _, kv := range kvs {
		if f.n--; f.n == 0 {
			if f.panic {
				panic(errFaulty)
			}
			return errFaulty
		}
		if err := fn(kv[0], kv[1]); err != nil {
			if errors.Is(err, store.ErrStop) {
				return nil
			}
			return err
		}
	}
	return nil
}

// A vm Policy whose evaluations failed mid-unit — a Scan's error, a panic
// the caller recovered — reads every unit afterwards as topdown does (its
// pooled store nodes and their unit builder keep nothing of the scan cut
// short), and decides every check as topdown.
func TestVMReadsUnitsAsTopdownAfterScansFail(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 5))
	db := tempDB(t)
	cat := compile(t, db).Catalog
	c := corpus{rng: rng, cat: cat, systems: cat.IDs(),
		users:  []string{"u0", "u1", "u2", "u3"},
		groups: []string{"g0", "g1", "administrators", "ops"},
		ids:    []string{"p1", "p2", "p3", "p4"}}
	c.fill(t, db, 20, 600, nil)
	// Every unit of the store, read whole.
	var reads []string
	for _, u := range c.users {
		reads = append(reads, fmt.Sprintf("data.store.memberships[%q]", u))
	}
	for _, p := range []string{"user:u0", "user:u1", "user:u2", "user:u3", "group:g0", "group:g1", "group:administrators", "group:ops"} {
		for _, sys := range c.systems {
			reads = append(reads, fmt.Sprintf("data.store.grants[%q][%q]", p, sys))
		}
	}
	vm, td := readsPolicies(t, db, reads)
	ctx := context.Background()
	snap, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	in := map[string]any{"op": "assign", "assignment": map[string]any{"subject": "user:u0", "system": "blueprism", "role": "x", "scope": map[string]any{"type": "service"}}}
	verdict := func(p *opa.Policy, s store.Snapshot) (v []string, err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		v, _, err = p.Verdict(ctx, s, in)
		return v, err
	}
	want, err := verdict(td, snap)
	if err != nil || len(want) < len(reads)/2 {
		t.Fatalf("topdown: %d reads defined of %d, %v", len(want), len(reads), err)
	}
	decide := func(p *opa.Policy, s store.Snapshot, ch permatrix.Check) (d any, err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		return p.Decide(ctx, s, ch)
	}
	failed := 0
	for i := range 200 {
		f := &faultySnapshot{Snapshot: snap, n: 1 + rng.IntN(40), panic: i%2 == 0}
		var err error
		if i%4 < 2 {
			_, err = verdict(vm, f)
		} else {
			_, err = decide(vm, f, c.check(i))
		}
		if err != nil {
			failed++
		}
		if got, err := verdict(vm, snap); err != nil || !slices.Equal(got, want) {
			t.Fatalf("after a failed evaluation (%d): the vm read\n %q (%v)\ntopdown\n %q", i, got, err, want)
		}
		ch := c.check(i + 1000)
		got, gotErr := decide(vm, snap, ch)
		tdd, tdErr := decide(td, snap, ch)
		if !reflect.DeepEqual(got, tdd) || (gotErr == nil) != (tdErr == nil) {
			t.Fatalf("check %+v after a failed evaluation:\n vm %+v (%v)\n topdown %+v (%v)", ch, got, gotErr, tdd, tdErr)
		}
	}
	if failed < 100 {
		t.Fatalf("only %d of 200 evaluations met the fault", failed)
	}
}
