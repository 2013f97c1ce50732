package opa_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/permatrix/permatrix/internal/store"
)

// numberKeyFuncs are the functions and rules numberKeyReads call: a read
// of data.store by a key given as an argument.
const numberKeyFuncs = `
leaf(k) := data.store.grants["user:x"].blueprism.role[k].service

one := data.store.grants["user:x"].blueprism.role[1].service

one_point_oh := data.store.grants["user:x"].blueprism.role[1.0].service
`

// numberKeyDirectReads read units named by numbers that are equal as
// numbers and not as text (1, 1.0, 1e0; 0, -0; 100, 1e2; a number past
// 64 bits), by strings of the same text, by lookups, rules and
// iteration: each by its own text under both evaluators, as plain OPA.
var numberKeyDirectReads = []string{
	`[data.store.grants["user:x"].blueprism.role[1].service, data.store.grants["user:x"].blueprism.role[1.0].service]`,
	`[data.store.grants["user:x"].blueprism.role[1.0].service, data.store.grants["user:x"].blueprism.role[1].service]`,
	`[data.store.grants["user:x"].blueprism.role[1e0].service, data.store.grants["user:x"].blueprism.role[1].service]`,
	`[data.store.grants["user:x"].blueprism.role[0].service, data.store.grants["user:x"].blueprism.role[-0].service]`,
	`[data.store.grants["user:x"].blueprism.role[100].service, data.store.grants["user:x"].blueprism.role[1e2].service]`,
	`[data.store.grants["user:x"].blueprism.role["1"].service, data.store.grants["user:x"].blueprism.role[1].service]`,
	`[data.store.grants["user:x"].blueprism.role["1.0"].service, data.store.grants["user:x"].blueprism.role[1.0].service]`,
	`data.store.grants["user:x"].blueprism.role[12345678901234567890123].service`,
	`data.store.grants["user:x"].blueprism.role[12345678901234567890123.0].service`,
	`[one, one_point_oh]`,
	`[v | some k in [1, 1.0, 1e0, "1", "1.0"]; v := data.store.grants["user:x"].blueprism.role[k].service]`,
	`[v | some k in [1.0, 1]; v := data.store.grants["user:x"].blueprism.role[k].service]`,
	`[[k, v] | some k in [0, -0, 100, 1e2]; v := data.store.grants["user:x"].blueprism.role[k].service]`,
	`[[k, v.service] | some k, v in data.store.grants["user:x"].blueprism.role]`,
}

// numberKeyCalls call one function with arguments equal as numbers and
// not as text. OPA's topdown remembers a function's result by its
// arguments (its virtual cache, keyed by term equality): within one
// evaluation the first call's result answers every call with equal
// arguments, whatever the text — plain OPA as permatrix's topdown.
var numberKeyCalls = []string{
	`[leaf(1), leaf(1.0)]`,
	`[leaf(1.0), leaf(1)]`,
	`[leaf(-0), leaf(0)]`,
	`[leaf(1e2), leaf(100)]`,
	`[leaf("1"), leaf(1), leaf("1.0")]`,
}

// numberKeyStore is a store holding each unit name of numberKeyNames
// (and plain OPA's data with the same document), its leaf's service the
// name itself.
func numberKeyStore(t *testing.T) (store.Backend, map[string]any) {
	t.Helper()
	names := []string{"1", "1.0", "1e0", "0", "-0", "100", "1e2", "12345678901234567890123", "12345678901234567890123.0"}
	m := store.NewMemory()
	b := &store.Batch{}
	role := map[string]any{}
	for _, n := range names {
		b.Ops = append(b.Ops, store.Op{Key: store.Key("d", "grants", "user:x", "blueprism", "role", n, "service"), Value: []byte(fmt.Sprintf("%q", "unit "+n))})
		role[n] = map[string]any{"service": "unit " + n}
	}
	if _, err := m.Commit(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	return m, map[string]any{"store": map[string]any{"grants": map[string]any{"user:x": map[string]any{"blueprism": map[string]any{"role": role}}}}}
}

// plainReads evaluates reads as readsPoliciesWith's module does (one
// evaluation of them all) with plain OPA over data: "read i: value".
func plainReads(t *testing.T, data map[string]any, reads []string, funcs string) map[string]string {
	t.Helper()
	src := "package p\n" + funcs + "\n"
	for i, r := range reads {
		src += fmt.Sprintf("violations contains sprintf(\"read %d: %%v\", [x]) if x := %s\n\n", i, r)
	}
	rs, err := rego.New(rego.Store(inmem.NewFromObject(data)), rego.Module("p.rego", src), rego.Query("data.p.violations")).Eval(context.Background())
	if err != nil || len(rs) != 1 {
		t.Fatalf("plain opa: %v %v", rs, err)
	}
	out := map[string]string{}
	for _, v := range rs[0].Expressions[0].Value.([]any) {
		k, rest, _ := strings.Cut(v.(string), ": ")
		out[k] = rest
	}
	return out
}

// readsBy is a verdict's violations "read i: value" by read.
func readsBy(vs []string) map[string]string {
	out := map[string]string{}
	for _, v := range vs {
		if k, rest, ok := strings.Cut(v, ": "); ok && strings.HasPrefix(k, "read ") {
			out[k] = rest
		}
	}
	return out
}

// Reads of data.store by numbers equal as numbers and not as text are
// answered by topdown as plain OPA answers them over the same data in
// one evaluation, and by the vm too where no function call is remembered
// (numberKeyDirectReads). A reviewer found topdown served u[1.0]'s read for
// u[1]: that is OPA's function cache (numberKeyCalls), which plain OPA
// shares; the vm, which remembers no function call, answers each call by
// its own text there — it disagrees with both (see docs/architecture.md).
func TestNumberKeysReadAsPlainOPA(t *testing.T) {
	db, data := numberKeyStore(t)
	for _, c := range []struct {
		name  string
		reads []string
		vm    bool // the vm must agree too
	}{{"direct", numberKeyDirectReads, true}, {"calls", numberKeyCalls, false}} {
		vm, td, snap := readsOverWith(t, db, c.reads, numberKeyFuncs)
		vv, _, errV := vm.Verdict(t.Context(), snap, readsInput())
		vt, _, errT := td.Verdict(t.Context(), snap, readsInput())
		if errV != nil || errT != nil {
			t.Fatalf("%s: vm %v, topdown %v", c.name, errV, errT)
		}
		plain, mv, mt := plainReads(t, data, c.reads, numberKeyFuncs), readsBy(vv), readsBy(vt)
		if len(plain) != len(c.reads) {
			t.Errorf("%s: plain OPA defined %d of %d reads: %q", c.name, len(plain), len(c.reads), plain)
		}
		for i, r := range c.reads {
			k := fmt.Sprintf("read %d", i)
			if mt[k] != plain[k] {
				t.Errorf("%s: topdown %q, plain OPA %q", r, mt[k], plain[k])
			}
			if c.vm && mv[k] != plain[k] {
				t.Errorf("%s: vm %q, plain OPA %q", r, mv[k], plain[k])
			}
			if !c.vm && mv[k] != mt[k] {
				t.Logf("%s: vm %s, topdown and plain OPA %s (OPA's function cache)", r, mv[k], mt[k])
			}
		}
	}
}
