package opa_test

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/permatrix/permatrix/internal/store"
)

// oddReads read units of odd names and values (numeric-looking names,
// names that sort around each other, leaves of every JSON shape) by
// lookups, by keys as numbers and strings, and member by member. No two
// look up numbers equal as numbers but not as text (1 and 1.0): through
// one function topdown's cache of function results (plain OPA's), which
// compares arguments as terms, answers both with the first call's; the
// vm does not (TestNumberKeysReadAsPlainOPA compares them).
var oddReads = []string{
	`data.store.grants["user:x"].blueprism`,
	`[[k, n, v] | some k, x in data.store.grants["user:x"].blueprism; some n, v in x]`,
	`[[k, n, s, v] | some k, x in data.store.grants["user:x"].blueprism; some n, y in x; some s, v in y]`,
	`[[n, count(y)] | some n, y in data.store.grants["user:x"].blueprism.role]`,
	`[[n, y[0], y["0"], y[1], y["1"], y[-1], y["-1"]] | some n, y in data.store.grants["user:x"].blueprism.role]`,
	`[[n, s, v[0], v["0"], v["a"]] | some n, y in data.store.grants["user:x"].blueprism.role; some s, v in y]`,
	`[data.store.grants["user:x"].blueprism.role[0], data.store.grants["user:x"].blueprism.role["0"]]`,
	`[data.store.grants["user:x"].blueprism.role[1], data.store.grants["user:x"].blueprism.role["1"]]`,
	`[data.store.grants["user:x"].blueprism.role[-1], data.store.grants["user:x"].blueprism.role["-1"]]`,
	`[data.store.grants["user:x"].blueprism.role[100], data.store.grants["user:x"].blueprism.role["1e2"]]`,
	`[data.store.grants["user:x"].blueprism.role["0"][0], data.store.grants["user:x"].blueprism.role["0"]["0"]]`,
	`[data.store.grants["user:x"].blueprism.role[0][1], data.store.grants["user:x"].blueprism.role[0]["1"]]`,
	`[n | some n, y in data.store.grants["user:x"].blueprism.role; y == data.store.grants["user:x"].blueprism.role[n]]`,
	`{n: y | some n, y in data.store.grants["user:x"].blueprism.permission}`,
	`[[n, s] | some n, y in data.store.grants["user:x"].blueprism.role; some s; y[s] == 1]`,
	`[[n, s] | some n, y in data.store.grants["user:x"].blueprism.role; some s; is_array(y[s])]`,
	`[[n, s, y[s][0]] | some n, y in data.store.grants["user:x"].blueprism.role; some s; y[s][0]]`,
	`[[n, s, y[s].a] | some n, y in data.store.grants["user:x"].blueprism.role; some s; y[s].a]`,
	`[[n, p] | some n, y in data.store.grants["user:x"].blueprism.role; walk(y, [p, _])]`,
	`count(data.store.grants["user:x"].blueprism.role)`,
	`[k | some k in object.keys(data.store.grants["user:x"].blueprism.role)]`,
}

// TestVMReadsOddUnitsAsTopdown: units of odd names and values, around
// the 32-leaf edge, read by the vm as topdown reads them.
func TestVMReadsOddUnitsAsTopdown(t *testing.T) {
	names := []string{"0", "00", "1", "-1", "1.0", "1e2", "100", "10", "2", " ", "a:b", "a", "a b", "é", "true", "null", "0 ", "-0"}
	values := []string{`1`, `1.0`, `-0`, `1e400`, `12345678901234567890123456789`, `"0"`, `"é\u0000"`, `"a\"b"`, `true`, `false`, `null`,
		`[]`, `{}`, `[1, "1", [2]]`, `{"a": 1, "a": 2}`, `{"0": 1, "1": [0], "a": {"b": null}}`, `[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]`,
		`{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":1}}}}}}}}}}}}}}}}}}`, ` {"a" : [ 1 , 2 ] } `}
	for seed := range uint64(12) {
		rng := rand.New(rand.NewPCG(seed, 7))
		m := store.NewMemory()
		b := &store.Batch{}
		n := []int{3, 20, 31, 32, 33, 40}[seed%6]
		for range n {
			kind := []string{"role", "permission"}[rng.IntN(2)]
			segs := []string{"d", "grants", "user:x", "blueprism", kind, names[rng.IntN(len(names))], names[rng.IntN(len(names))]}
			b.Ops = append(b.Ops, store.Op{Key: store.Key(segs...), Value: []byte(values[rng.IntN(len(values))])})
		}
		if _, err := m.Commit(t.Context(), b); err != nil {
			t.Fatal(err)
		}
		vm, td, snap := readsOver(t, m, oddReads)
		vv, _, errV := vm.Verdict(t.Context(), snap, readsInput())
		vt, _, errT := td.Verdict(t.Context(), snap, readsInput())
		if errV != nil || errT != nil {
			t.Errorf("seed %d: vm %v, topdown %v", seed, errV, errT)
			continue
		}
		byRead := func(vs []string) map[string]string {
			m := map[string]string{}
			for _, v := range vs {
				k, rest, _ := strings.Cut(v, ": ")
				m[k] = rest
			}
			return m
		}
		mv, mt := byRead(vv), byRead(vt)
		for k := range mt {
			if mv[k] != mt[k] {
				t.Errorf("seed %d (%d leaves) %s:\n vm      %q\n topdown %q", seed, n, k, mv[k], mt[k])
			}
		}
		for k := range mv {
			if _, ok := mt[k]; !ok {
				t.Errorf("seed %d (%d leaves) %s:\n vm      %q\n topdown undefined", seed, n, k, mv[k])
			}
		}
	}
}
