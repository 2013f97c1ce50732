package vm_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/permatrix/permatrix/internal/vm"
)

// constantsModule has rules of every kind Constants tells apart. Only
// fixed, calls_fixed and via_function read nothing but data outside the
// varying root "store".
const constantsModule = `package test

fixed := {x | some x in data.fixed}

calls_fixed := count(fixed)

f(x) := x + count(data.fixed)

via_function := f(1)

by_input := input.x

by_store := data.store.v

by_dynamic_key := data.lookup[input.k]

calls_by_input := concat("", [by_input, "!"])

now := time.now_ns()

under_with := x if x := fixed with data.fixed as ["w"]

divided := 1 / data.zero

p := {
	"fixed": fixed,
	"calls_fixed": calls_fixed,
	"via_function": via_function,
	"by_input": by_input,
	"by_store": by_store,
	"by_dynamic_key": by_dynamic_key,
	"calls_by_input": calls_by_input,
	"under_with": under_with,
	"now": now > 0,
}
`

// Constants keeps exactly the rules of fixed data, and an evaluation
// that reads them after another gets what topdown computes from its own
// input and data.
func TestConstants(t *testing.T) {
	p := plan(t, "x = data.test.p", constantsModule).Constants("store")
	want := []string{"g0.data.test.fixed", "g0.data.test.calls_fixed", "g0.data.test.via_function"}
	got := p.ConstantRules()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("constant rules %v, want %v", got, want)
	}
	if n := plan(t, "x = data.test.p", constantsModule).ConstantRules(); len(n) != 0 {
		t.Fatalf("a Program without Constants keeps %v", n)
	}
	fixed := `"fixed": [1, 2], "zero": 1, "lookup": {"a": 1, "b": 2, "c": 3}`
	for _, c := range []struct{ input, data string }{
		{`{"x": "a", "k": "a"}`, `{` + fixed + `, "store": {"v": 1}}`},
		{`{"x": "b", "k": "b"}`, `{` + fixed + `, "store": {"v": 2}}`},
		{`{"x": "c", "k": "c"}`, `{` + fixed + `, "store": {"v": 3}}`},
	} {
		input, data := ast.MustParseTerm(c.input).Value, ast.MustParseTerm(c.data).Value
		rs, err := p.Results(context.Background(), input, vm.Value(data))
		if err != nil || len(rs) != 1 {
			t.Fatalf("%s: got %v, %v", c.input, rs, err)
		}
		if got, td := asJSON(t, rs[0].Get(ast.StringTerm("x"))), topdownJSON(t, constantsModule, input, data); got != td {
			t.Errorf("%s over %s: vm %s, topdown %s", c.input, c.data, got, td)
		}
	}
	// The values are kept: data that breaks the promise (its fixed part
	// changed) still gets them, while the rest follows the data.
	broken := ast.MustParseTerm(`{"fixed": [9], "zero": 1, "lookup": {"a": 1}, "store": {"v": 4}}`).Value
	rs, err := p.Results(context.Background(), ast.MustParseTerm(`{"x": "d", "k": "a"}`).Value, vm.Value(broken))
	if err != nil || len(rs) != 1 {
		t.Fatalf("got %v, %v", rs, err)
	}
	x := rs[0].Get(ast.StringTerm("x"))
	for key, want := range map[string]string{"fixed": "{1, 2}", "calls_fixed": "2", "via_function": "3", "by_store": "4", "under_with": `{"w"}`} {
		if got := x.Get(ast.StringTerm(key)); !got.Equal(ast.MustParseTerm(want)) {
			t.Errorf("%s = %v, want %s", key, got, want)
		}
	}
}

// A constant whose builtin fails is not kept: strict, each evaluation
// fails; Lenient keeps its own values (undefined there).
func TestConstantsAndBuiltinErrors(t *testing.T) {
	p := plan(t, "x = data.test.divided", constantsModule).Constants("store")
	zero := vm.Value(ast.MustParseTerm(`{"zero": 0}`).Value)
	for range 2 {
		if rs, err := p.Results(context.Background(), nil, zero); err == nil {
			t.Fatalf("strict: got %v, want divide by zero", rs)
		}
	}
	lenient := p.Lenient()
	for range 2 {
		if rs, err := lenient.Results(context.Background(), nil, zero); err != nil || len(rs) != 0 {
			t.Fatalf("lenient: got %v, %v; want undefined", rs, err)
		}
	}
	if rs, err := p.Results(context.Background(), nil, zero); err == nil {
		t.Fatalf("strict after lenient: got %v, want divide by zero", rs)
	}
}

// Evaluations computing the constants at once agree (run under the race
// detector by test/race).
func TestConstantsConcurrently(t *testing.T) {
	p := plan(t, "x = data.test.p", constantsModule).Constants("store")
	data := ast.MustParseTerm(`{"fixed": [1, 2, 3], "zero": 1, "lookup": {"a": 1}, "store": {"v": 1}}`).Value
	input := ast.MustParseTerm(`{"x": "a", "k": "a"}`).Value
	want := topdownJSON(t, constantsModule, input, data)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				rs, err := p.Results(context.Background(), input, vm.Value(data))
				if err != nil || len(rs) != 1 || asJSON(t, rs[0].Get(ast.StringTerm("x"))) != want {
					t.Errorf("got %v, %v; want %s", rs, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// topdownJSON is data.test.p by topdown over module, as JSON.
func topdownJSON(t *testing.T, module string, input, data ast.Value) string {
	t.Helper()
	return topdownQuery(t, "x = data.test.p", map[string]string{"test.rego": module}, input, data, false)
}

// inParallel runs check from 8 goroutines, each over n of the indexes 0
// to cases-1 (in turn, from its own start), and fails on the first error.
func inParallel(t *testing.T, n, cases int, check func(int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for j := range n {
				if err := check((g + j) % cases); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// asJSON is a value as topdown's results give it (sets as sorted arrays).
func asJSON(t *testing.T, v *ast.Term) string {
	t.Helper()
	x, err := ast.JSONWithOpt(v.Value, ast.JSONOpt{SortSets: true})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// A certificate chain's verification depends on the clock, not only on its
// arguments (x509 verifies at time.Now() unless told a time): a rule of it
// is not kept, or a certificate that expired would stay valid for the life
// of the Program.
func TestConstantsAndCertificateExpiry(t *testing.T) {
	t.Parallel()
	chain := certificateChain(t, time.Now().Add(-time.Hour), time.Now().Truncate(time.Second).Add(2*time.Second))
	const module = `package test

p := [
	crypto.x509.parse_and_verify_certificates(data.chain)[0],
	crypto.x509.parse_and_verify_certificates_with_options(data.chain, {"KeyUsages": ["KeyUsageServerAuth"]})[0],
]
`
	p := plan(t, "x = data.test.p", module).Constants("store")
	data := ast.NewObject(ast.Item(ast.StringTerm("chain"), ast.StringTerm(chain)))
	eval := func() string {
		rs, err := p.Results(context.Background(), nil, vm.Value(data))
		if err != nil || len(rs) != 1 {
			t.Fatalf("got %v, %v", rs, err)
		}
		return asJSON(t, rs[0].Get(ast.StringTerm("x")))
	}
	if got, want := eval(), topdownJSON(t, module, nil, data); got != want || want != "[true,true]" {
		t.Fatalf("before expiry: vm %s, topdown %s, want [true,true]", got, want)
	}
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(3 * time.Second)))
	if got, want := eval(), topdownJSON(t, module, nil, data); got != want || want != "[false,false]" {
		t.Fatalf("after expiry: vm %s, topdown %s, want [false,false]", got, want)
	}
}

// certificateChain is a CA and a leaf it signed, valid from notBefore to
// notAfter, in PEM.
func certificateChain(t *testing.T, notBefore, notAfter time.Time) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"},
		NotBefore: notBefore, NotAfter: notAfter.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "leaf"},
		NotBefore: notBefore, NotAfter: notAfter,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})) +
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}))
}

// adversarialModules are rules that read input, data.store, a with, a
// mock, a dynamic key or call, data whole, the clock, in every kind of
// rule (default, else chains, partial sets and objects, general refs,
// functions, every, comprehensions), beside rules of fixed data only.
var adversarialModules = map[string]string{
	"test.rego": `package test

fixed := {x | some x in data.fixed}

count_fixed := count(data.fixed)

default dflt := "d"

dflt := input.d

else_chain := 1 if input.e == 1
else := 2 if data.store.e == 2
else := 3

else_fixed := 1 if count(data.fixed) > 5
else := 2

partial_set contains x if some x in data.fixed

partial_set contains input.s if input.s

store_set contains x if some x in data.store.list

partial_obj[k] := v if some k, v in data.lookup

partial_obj[concat("", ["in-", k])] := 1 if k := input.k

general.a[x] := y if some x, y in data.lookup

general.b[x] contains y if {
	some x in ["s"]
	some y in data.store.list
}

general.c[input.k] := 1 if input.k

f(x) := x + count(data.fixed)

fn_input := f(input.n)

fn_store := f(count(data.store.list))

fn_fixed := f(1)

g(x) := {y | some y in data.fixed; y > x}

fn_closure := g(input.n)

every_input if every x in data.fixed { x < input.n }

every_store if every x in data.fixed { x < count(data.store.list) }

every_fixed if every x in data.fixed { x > 0 }

compr_input := [x | some x in data.fixed; x > input.n]

compr_store := {x | some x in data.store.list}

dyn_key := data.lookup[input.k]

dyn_root_store := x if {
	r := concat("", ["st", "ore"])
	x := data[r].e
}

call_dyn := data.pkg[input.rule]

with_input := x if x := fn_input with input.n as 100

with_store := x if x := fn_store with data.store.list as [1]

with_fixed := x if x := count_fixed with data.fixed as [7]

with_then := [x, y] if {
	x := count_fixed with data.fixed as [7]
	y := fn_input
}

mock_builtin := x if x := count_fixed with count as input.n

mock_function := x if x := fn_fixed with f as input.n

mock_fixed := x if x := count_fixed with count as 42

via_pkg := data.pkg.by_store

via_pkg_fixed := data.pkg.fixed

store_revision := data.store.revision

input_whole := input

not_input if not input.missing

not_store if not data.store.missing
`,
	"pkg.rego": `package pkg

by_input := input.n

by_store := count(data.store.list)

fixed := count(data.fixed) * 10
`,
}

// TestConstantsAdversarial evaluates every rule of adversarialModules with
// one Program keeping constants, over inputs and data.store that change
// from one evaluation to the next (the rest of data fixed, as Constants
// asks), one after the other, in parallel, strict and lenient: every
// answer is topdown's for that input and data.
func TestConstantsAdversarial(t *testing.T) {
	fixed := `"fixed": [1, 2, 3], "lookup": {"a": 1, "b": 2}`
	var cases []struct{ input, data ast.Value }
	for i, c := range []struct{ input, store string }{
		{`{"d": "x", "e": 1, "s": "s1", "k": "a", "n": 1, "root": "fixed", "rule": "by_input"}`, `{"e": 2, "list": [1, 2], "revision": 1}`},
		{`{"d": "y", "e": 0, "s": "s2", "k": "b", "n": 5, "root": "store", "rule": "by_store"}`, `{"e": 0, "list": [], "revision": 2}`},
		{`{"k": "zz", "n": 0, "root": "lookup", "rule": "fixed"}`, `{"list": [5, 6, 7, 8], "revision": 3, "missing": true}`},
		{`{"n": 2, "missing": 1}`, `{"e": 2, "revision": 4}`},
		{`{}`, `{"list": [3]}`},
	} {
		input := ast.MustParseTerm(c.input).Value
		data := ast.MustParseTerm(`{` + fixed + `, "store": ` + c.store + `}`).Value
		if i == 4 {
			input = nil // no input at all
		}
		cases = append(cases, struct{ input, data ast.Value }{input, data})
	}
	var opts []func(*rego.Rego)
	for name, m := range adversarialModules {
		opts = append(opts, rego.Module(name, m))
	}
	for _, lenient := range []bool{false, true} {
		p, err := vm.Plan(context.Background(), ast.MustParseBody("x = data.test"), opts...)
		if err != nil {
			t.Fatal(err)
		}
		if lenient {
			p = p.Lenient()
		}
		p = p.Constants("store")
		// Exactly the rules of fixed data (g3: count_fixed planned again
		// under with count as 42, a constant too).
		got := p.ConstantRules()
		slices.Sort(got)
		if want := []string{"g0.data.pkg.fixed", "g0.data.test.count_fixed", "g0.data.test.else_fixed",
			"g0.data.test.every_fixed", "g0.data.test.fixed", "g0.data.test.fn_fixed", "g0.data.test.general.a",
			"g0.data.test.mock_fixed", "g0.data.test.via_pkg_fixed", "g3.data.test.count_fixed"}; !slices.Equal(got, want) {
			t.Fatalf("constant rules\n %v\nwant\n %v", got, want)
		}
		want := make([]string, len(cases))
		for i, c := range cases {
			want[i] = topdownQuery(t, "x = data.test", adversarialModules, c.input, c.data, !lenient)
		}
		check := func(i int) error {
			c := cases[i]
			rs, err := p.Results(context.Background(), c.input, vm.Value(c.data))
			if err != nil || len(rs) != 1 {
				return fmt.Errorf("case %d: got %v, %v", i, rs, err)
			}
			if got := asJSON(t, rs[0].Get(ast.StringTerm("x"))); got != want[i] {
				return fmt.Errorf("case %d (lenient %v):\n vm      %s\n topdown %s", i, lenient, got, want[i])
			}
			return nil
		}
		for range 2 {
			for i := range cases {
				if err := check(i); err != nil {
					t.Fatal(err)
				}
			}
		}
		inParallel(t, 40, len(cases), check)
	}
}

// topdownQuery is query's x by topdown over modules, input and data, as
// JSON.
func topdownQuery(t *testing.T, query string, modules map[string]string, input, data ast.Value, strict bool) string {
	t.Helper()
	opts := []func(*rego.Rego){rego.Query(query), rego.StrictBuiltinErrors(strict)}
	for name, m := range modules {
		opts = append(opts, rego.Module(name, m))
	}
	if input != nil {
		in, err := ast.JSON(input)
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, rego.Input(in))
	}
	d, err := ast.JSON(data)
	if err != nil {
		t.Fatal(err)
	}
	opts = append(opts, rego.Data(d.(map[string]any)))
	rs, err := rego.New(opts...).Eval(context.Background())
	if err != nil || len(rs) != 1 {
		t.Fatalf("topdown: %v, %v", rs, err)
	}
	raw, err := json.Marshal(rs[0].Bindings["x"])
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// An evaluation whose context ends while it computes a constant keeps
// nothing: it fails (strict or lenient: a cancellation is not a builtin's
// error), and the next evaluation computes the value in full. The
// cancellation is met by a builtin (numbers.range watches Cancel) and by
// the statements' own checks (a comprehension over data).
func TestConstantsAndCancellation(t *testing.T) {
	const module = `package test

by_builtin := count(numbers.range(1, 100000))

by_statements := count([x | some x in data.big; x % 3 == 0])
`
	big := make([]*ast.Term, 50000)
	for i := range big {
		big[i] = ast.InternedTerm(i)
	}
	data := ast.NewObject(ast.Item(ast.StringTerm("big"), ast.ArrayTerm(big...)))
	for _, rule := range []string{"by_builtin", "by_statements"} {
		query := "x = data.test." + rule
		want := topdownQuery(t, query, map[string]string{"test.rego": module}, nil, data, true)
		for _, lenient := range []bool{false, true} {
			for _, deadline := range []time.Duration{0, 100 * time.Microsecond, time.Millisecond} {
				p := plan(t, query, module)
				if lenient {
					p = p.Lenient()
				}
				p = p.Constants("store")
				ctx, cancel := context.WithTimeout(context.Background(), deadline)
				rs, err := p.Results(ctx, nil, vm.Value(data))
				cancel()
				switch {
				case deadline == 0 && err == nil:
					t.Fatalf("%s, lenient %v: a done context gave %v, want an error", rule, lenient, rs)
				case err == nil && (len(rs) != 1 || asJSON(t, rs[0].Get(ast.StringTerm("x"))) != want):
					t.Fatalf("%s, lenient %v, deadline %v: got %v, want %s or an error", rule, lenient, deadline, rs, want)
				}
				rs, err = p.Results(context.Background(), nil, vm.Value(data))
				if err != nil || len(rs) != 1 {
					t.Fatalf("%s, lenient %v, deadline %v, after: got %v, %v", rule, lenient, deadline, rs, err)
				}
				if got := asJSON(t, rs[0].Get(ast.StringTerm("x"))); got != want {
					t.Fatalf("%s, lenient %v, deadline %v, after a cancelled evaluation: got %s, want %s", rule, lenient, deadline, got, want)
				}
			}
		}
	}
}
