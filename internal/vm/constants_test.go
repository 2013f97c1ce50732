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

// topdownJSON is data.test.p by topdown, as JSON.
func topdownJSON(t *testing.T, module string, input, data ast.Value) string {
	t.Helper()
	var in any
	if input != nil {
		var err error
		if in, err = ast.JSON(input); err != nil {
			t.Fatal(err)
		}
	}
	d, err := ast.JSON(data)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rego.New(rego.Query("x = data.test.p"), rego.Module("test.rego", module),
		rego.Input(in), rego.Data(d.(map[string]any))).Eval(context.Background())
	if err != nil || len(rs) != 1 {
		t.Fatalf("topdown: %v, %v", rs, err)
	}
	raw, err := json.Marshal(rs[0].Bindings["x"])
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
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
