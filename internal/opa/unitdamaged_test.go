package opa_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/store"
)

// damagedUnit is a store whose unit user:bad/blueprism holds the leaves
// given (key segments below the unit, value), besides a good grant.
func damagedUnit(t *testing.T, leaves map[string][]string) store.Backend {
	t.Helper()
	m := store.NewMemory()
	b := &store.Batch{}
	b.Ops = append(b.Ops, store.Op{Key: store.Key("d", "grants", "user:bad", "blueprism", "role", "1", "service"),
		Value: []byte(`{"assignment":"a1","scope":{"type":"service"},"via":"user:bad"}`)})
	for v, segs := range leaves {
		b.Ops = append(b.Ops, store.Op{Key: store.Key(append([]string{"d", "grants", "user:bad", "blueprism"}, segs...)...), Value: []byte(v)})
	}
	if _, err := m.Commit(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	return m
}

// A corrupt leaf below the layout's leaves (a damaged store: a key longer
// than a grant's) fails the vm's read that reaches it, with an error: it
// does not panic.
func TestVMCorruptLeafBelowALeafFails(t *testing.T) {
	m := damagedUnit(t, map[string][]string{`{bad`: {"role", "0", "service", "extra"}})
	for _, read := range []string{
		`data.store.grants["user:bad"].blueprism.role["0"].service.extra`,
		`[x | some x in data.store.grants["user:bad"].blueprism.role["0"].service]`,
	} {
		vm, _, snap := readsOver(t, m, []string{read})
		var err error
		func() {
			defer func() {
				if p := recover(); p != nil {
					err = fmt.Errorf("panic: %v", p)
					t.Errorf("%s: the vm panicked: %v", read, p)
				}
			}()
			_, _, err = vm.Verdict(t.Context(), snap, readsInput())
		}()
		if err == nil {
			t.Errorf("%s: no error for a corrupt leaf", read)
		}
		t.Logf("%s: %v", read, err)
	}
}

// trailingDamage are leaves of a damaged store: a JSON value followed by
// bytes that are not white space. The JSON decoder reads a value and
// stops: a closing bracket after it is not "more" to it (dec.More), so
// these were read as their value.
var trailingDamage = []string{`"x"]`, `1}`, `true x`, `{"a": 1}}`, ` [true, 2] ] `, `null null`, `"x""y"`, `{}{}`, `[]]`, `0 1`,
	`{"assignment":"a1","scope":{"type":"service"},"via":"user:bad"}]`, `{"assignment":"a1","scope":{"type":"service"},"via":"user:bad"}}`}

// randomTrailingDamage is n good leaves with 1 to 4 random bytes after
// them, none valid JSON.
func randomTrailingDamage(rng *rand.Rand, n int) []string {
	goods := []string{`true`, `false`, `null`, `1`, `-0.5e3`, `"x"`, `"é\u0000"`, `[]`, `[1, "a"]`, `{}`, `{"a": {"b": null}}`,
		`{"assignment":"a1","scope":{"type":"service"},"via":"user:bad"}`, `{"permissions":["a","b"]}`}
	tails := []byte("]},:\"[{ 1xe.-\x00\n\t\\")
	var out []string
	for len(out) < n {
		raw := []byte(goods[rng.IntN(len(goods))])
		for range 1 + rng.IntN(4) {
			raw = append(raw, tails[rng.IntN(len(tails))])
		}
		if !json.Valid(raw) {
			out = append(out, string(raw))
		}
	}
	return out
}

// A leaf with bytes after its JSON value (a damaged store) fails every
// read that takes it — a lookup, the unit read whole, a scan member by
// member or of its keys alone, a count — under both evaluators, in a
// small unit (the vm reads it whole) and a large one (a leaf at a time);
// the reads that do not take it answer as before. It was read as its
// value.
func TestDamagedLeafWithTrailingBytesFailsItsReads(t *testing.T) {
	damagedLeavesFailTheirReads(t, append(slices.Clone(trailingDamage), randomTrailingDamage(rand.New(rand.NewPCG(3, 3)), 12)...))
}

// An empty leaf (no bytes: a damaged store, as one with bytes after its
// value) fails every read that takes it, under both evaluators, as above.
// It was read as null: a decision or verdict went on over it (a
// membership's leaf, whose presence is what a policy asks, read as there).
func TestEmptyLeafFailsItsReads(t *testing.T) {
	damagedLeavesFailTheirReads(t, []string{"", "", " ", "\n"})
}

// damagedLeavesFailTheirReads puts each of damaged in a grant's and a
// membership's leaf, in a small unit and a large one, and checks that
// the reads that take it fail under both evaluators and the others
// answer alike.
func damagedLeavesFailTheirReads(t *testing.T, damaged []string) {
	t.Helper()
	good := `{"assignment":"a1","scope":{"type":"service"},"via":"user:bad"}`
	reads := []struct {
		read string
		fail bool
	}{
		{`data.store.grants["user:bad"].blueprism.role["0"].service`, true},
		{`data.store.grants["user:bad"].blueprism.role["0"]`, true},
		{`data.store.grants["user:bad"].blueprism`, true},
		{`data.store.grants["user:bad"]`, true},
		{`[k | some k, _ in data.store.grants["user:bad"].blueprism.role]`, true},
		{`[[k, v] | some k, v in data.store.grants["user:bad"].blueprism.role]`, true},
		{`[k | some k, v in data.store.grants["user:bad"].blueprism; v["0"]]`, true},
		{`count(data.store.grants["user:bad"].blueprism)`, true},
		{`data.store.memberships.bad.x`, true},
		{`[g | some g, _ in data.store.memberships.bad]`, true},
		{`data.store.grants["user:bad"].blueprism.role["1"].service.assignment`, false},
		{`data.store.grants["user:bad"].blueprism.permission.view_dashboards.service.scope`, false},
		{`data.store.memberships.bad.ops`, false},
	}
	// One module for every read, each guarded by input.read: policies
	// made once (a failing read fails its whole evaluation).
	guarded := make([]string, len(reads))
	for i, c := range reads {
		guarded[i] = fmt.Sprintf("input.read == %d\n\tx := %s", i, c.read)
	}
	vm, td := readsPoliciesWith(t, store.NewMemory(), nil, guardedReads(guarded))
	for i, bad := range damaged {
		fillers := []int{0, 40}[i%2]
		m := store.NewMemory()
		b := &store.Batch{}
		put := func(v string, segs ...string) {
			b.Ops = append(b.Ops, store.Op{Key: store.Key(segs...), Value: []byte(v)})
		}
		put(bad, "d", "grants", "user:bad", "blueprism", "role", "0", "service")
		put(good, "d", "grants", "user:bad", "blueprism", "role", "1", "service")
		put(good, "d", "grants", "user:bad", "blueprism", "permission", "view_dashboards", "service")
		for f := range fillers {
			put(good, "d", "grants", "user:bad", "blueprism", "role", fmt.Sprintf("f%02d", f), "service")
		}
		put("true", "d", "memberships", "bad", "ops")
		put(bad, "d", "memberships", "bad", "x")
		if _, err := m.Commit(t.Context(), b); err != nil {
			t.Fatal(err)
		}
		snap, err := m.View()
		if err != nil {
			t.Fatal(err)
		}
		for r, c := range reads {
			in := readsInput()
			in["read"] = r
			vv, _, errV := vm.Verdict(t.Context(), snap, in)
			vt, _, errT := td.Verdict(t.Context(), snap, in)
			if (errV != nil) != c.fail || (errT != nil) != c.fail {
				t.Errorf("leaf %q (%d fillers) %s: want failed %v; vm: %v, topdown: %v", bad, fillers, c.read, c.fail, errV, errT)
				continue
			}
			if !c.fail && (fmt.Sprint(vv) != fmt.Sprint(vt) || !slices.ContainsFunc(vt, func(v string) bool { return strings.HasPrefix(v, fmt.Sprintf("read %d: ", r)) })) {
				t.Errorf("leaf %q %s: vm %q, topdown %q", bad, c.read, vv, vt)
			}
		}
		snap.Close()
	}
}

// guardedReads is the module text of reads as rules (violations), each
// a body of its own.
func guardedReads(bodies []string) string {
	src := ""
	for i, b := range bodies {
		src += fmt.Sprintf("violations contains sprintf(\"read %d: %%v\", [x]) if {\n\t%s\n}\n\n", i, b)
	}
	return src
}

// A decision that reads a grant leaf with bytes after its value fails
// under both evaluators: it is not the allow the value alone would give.
func TestDecisionOverATrailingDamagedGrantFails(t *testing.T) {
	m := store.NewMemory()
	a := permatrix.Assignment{Subject: "user:alice", System: "celonis-task-mining", Permission: "edit_users",
		Scope: permatrix.Scope{Type: "project", ID: "p1"}}
	if _, err := store.Update(t.Context(), m, func(tx *store.Tx) error { return tx.CreateAssignment(&a) }); err != nil {
		t.Fatal(err)
	}
	check := permatrix.Check{Subject: "alice", System: "celonis-task-mining", Action: "edit_users",
		Resource: &permatrix.Scope{Type: "project", ID: "p1"}}
	key := store.GrantKey(a)
	vm, td := readsPolicies(t, m, nil)
	for _, tail := range []string{"]", "}", " x", ",", `"`} {
		raw := leafNow(t, m, key)
		for _, p := range []*opa.Policy{vm, td} {
			d, err := decideNow(t, p, m, check)
			if err != nil || !d.Allow {
				t.Fatalf("the sound grant: %+v %v", d, err)
			}
		}
		damaged := append(slices.Clone(raw), tail...)
		if _, err := m.Commit(t.Context(), &store.Batch{Ops: []store.Op{{Key: key, Value: damaged}}}); err != nil {
			t.Fatal(err)
		}
		for i, p := range []*opa.Policy{vm, td} {
			d, err := decideNow(t, p, m, check)
			if err == nil {
				t.Errorf("%s, grant %q: no error: %+v", []string{"vm", "topdown"}[i], damaged, d)
			}
		}
		if _, err := m.Commit(t.Context(), &store.Batch{Ops: []store.Op{{Key: key, Value: raw}}}); err != nil {
			t.Fatal(err)
		}
	}
}

// leafNow is key's stored bytes in a view of db taken now; a key db does
// not hold fails the test.
func leafNow(t *testing.T, db store.Backend, key []byte) []byte {
	t.Helper()
	snap, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	raw, err := snap.Get(key)
	if err != nil || raw == nil {
		t.Fatalf("the leaf %q: %q %v", key, raw, err)
	}
	return raw
}

// decideNow decides c over a view of db taken now.
func decideNow(t *testing.T, p *opa.Policy, db store.Backend, c permatrix.Check) (*permatrix.Decision, error) {
	t.Helper()
	snap, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	return p.Decide(t.Context(), snap, c)
}

// A decision whose grant is reached through a membership whose leaf is
// empty, or whose grant's leaf is empty, fails under both evaluators: the
// empty leaf was read as null — present, so the membership counted and
// the decision allowed.
func TestDecisionOverAnEmptyLeafFails(t *testing.T) {
	m := store.NewMemory()
	a := permatrix.Assignment{Subject: "group:ops", System: "celonis-task-mining", Permission: "edit_users",
		Scope: permatrix.Scope{Type: "project", ID: "p1"}}
	if _, err := store.Update(t.Context(), m, func(tx *store.Tx) error {
		if err := tx.AddMember(permatrix.Membership{Group: "ops", User: "alice"}); err != nil {
			return err
		}
		return tx.CreateAssignment(&a)
	}); err != nil {
		t.Fatal(err)
	}
	check := permatrix.Check{Subject: "alice", System: "celonis-task-mining", Action: "edit_users",
		Resource: &permatrix.Scope{Type: "project", ID: "p1"}}
	vm, td := readsPolicies(t, m, nil)
	for _, key := range [][]byte{store.Key("d", "memberships", "alice", "ops"), store.GrantKey(a)} {
		raw := leafNow(t, m, key)
		for _, p := range []*opa.Policy{vm, td} {
			if d, err := decideNow(t, p, m, check); err != nil || !d.Allow {
				t.Fatalf("the sound store: %+v %v", d, err)
			}
		}
		if _, err := m.Commit(t.Context(), &store.Batch{Ops: []store.Op{{Key: key, Value: []byte{}}}}); err != nil {
			t.Fatal(err)
		}
		for i, p := range []*opa.Policy{vm, td} {
			if d, err := decideNow(t, p, m, check); err == nil {
				t.Errorf("%s, the leaf %q empty: no error: %+v", []string{"vm", "topdown"}[i], key, d)
			}
		}
		if _, err := m.Commit(t.Context(), &store.Batch{Ops: []store.Op{{Key: key, Value: raw}}}); err != nil {
			t.Fatal(err)
		}
	}
}
