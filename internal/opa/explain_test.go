package opa

import (
	"bytes"
	"compress/gzip"
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// TestExplainDecidesAsDecide: the traced decision is the decision, and the
// rules it reports held: the admin short-cut and its cited comment for an
// admin, the missing grant's rule for a user without one.
func TestExplainDecidesAsDecide(t *testing.T) {
	ctx := context.Background()
	p := compiles(t, mustDefault(t))
	mem := store.NewMemory()
	a := permatrix.Assignment{Subject: "user:alice", System: "celonis-task-mining", Role: "admin", Scope: permatrix.ServiceScope}
	if _, err := store.Update(ctx, mem, func(tx *store.Tx) error { return tx.CreateAssignment(&a) }); err != nil {
		t.Fatal(err)
	}
	snap, _ := mem.View()
	defer snap.Close()
	for _, c := range []struct {
		check permatrix.Check
		rule  string // a rule (package.name) that must be reported
	}{
		{permatrix.Check{Subject: "alice", System: "celonis-task-mining", Action: "edit_users"}, "data.permatrix.celonis.admin_reasons"},
		{permatrix.Check{Subject: "bob", System: "celonis-task-mining", Action: "edit_users"}, "data.permatrix.systems.celonis_task_mining.missing"},
		{permatrix.Check{Subject: "bob", System: "no-such-system", Action: "x"}, "data.permatrix.errors"},
	} {
		want, err := p.Decide(ctx, snap, c.check)
		if err != nil {
			t.Fatal(err)
		}
		got, rules, err := p.Explain(ctx, snap, c.check, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%+v: explained %+v, decided %+v", c.check, got, want)
		}
		if !slices.ContainsFunc(rules, func(r Rule) bool { return r.Package+"."+r.Name == c.rule }) {
			t.Errorf("%+v: %s is not among the rules that held: %+v", c.check, c.rule, rules)
		}
		if !slices.IsSortedFunc(rules, func(a, b Rule) int {
			if a.File != b.File {
				return strings.Compare(a.File, b.File)
			}
			return a.Row - b.Row
		}) {
			t.Errorf("rules not in file order: %+v", rules)
		}
	}
	_, rules, err := p.Explain(ctx, snap, permatrix.Check{Subject: "alice", System: "celonis-task-mining", Action: "edit_users"},
		func(r Rule) bool { return r.Name == "admin_reasons" })
	if err != nil || len(rules) != 1 || !strings.Contains(rules[0].Comment, `"Admins have always all permissions."`) || rules[0].File != "policies/celonis/platform.rego" {
		t.Errorf("keep admin_reasons: %+v %v", rules, err)
	}
}

func mustDefault(t *testing.T) *Bundle {
	t.Helper()
	b, err := ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCallsFindsBuiltins: a builtin called anywhere — an expression, an
// assignment, nested in a call, in a function — is found; a bundle that
// calls none has none.
func TestCallsFindsBuiltins(t *testing.T) {
	if calls := mustDefault(t).Calls("http.send", "net.lookup_ip_addr", "opa.runtime"); len(calls) != 0 {
		t.Errorf("the default bundle calls %v", calls)
	}
	src := `package x

a if http.send({"method": "get", "url": "http://127.0.0.1:1"})
b := object.get(http.send({"method": "get", "url": "http://127.0.0.1:1"}), "body", null)
f(x) := net.lookup_ip_addr(x)
c := upper("no")
`
	b := &Bundle{b: &bundle.Bundle{Modules: []bundle.ModuleFile{{Path: "x.rego", URL: "x.rego", Raw: []byte(src)}}}}
	got := b.Calls("http.send", "net.lookup_ip_addr")
	want := []string{"x.rego:3 http.send", "x.rego:4 http.send", "x.rego:5 net.lookup_ip_addr"}
	if !slices.Equal(got, want) {
		t.Errorf("Calls = %v, want %v", got, want)
	}
}

// TestReadTarballBounds: an upload is read when it is a bundle, and refused
// when it is not gzip, or unpacks to more than the bound.
func TestReadTarballBounds(t *testing.T) {
	raw := tarball(t)
	b, err := ReadTarball(raw, "up", 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	compiles(t, b)
	if _, err := ReadTarball(raw, "up", 1000); err == nil || !strings.Contains(err.Error(), "unpacks to more than 1000 bytes") {
		t.Errorf("over the bound: %v", err)
	}
	if _, err := ReadTarball([]byte("not gzip"), "up", 64<<20); err == nil || !strings.Contains(err.Error(), "not a .tar.gz") {
		t.Errorf("not gzip: %v", err)
	}
	// A gzip bomb: 256 MiB of zeros in a few hundred KiB is refused after
	// reading the bound, not unpacked whole.
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	zeros := make([]byte, 1<<20)
	for range 256 {
		zw.Write(zeros)
	}
	zw.Close()
	if _, err := ReadTarball(bomb.Bytes(), "bomb", 64<<20); err == nil || !strings.Contains(err.Error(), "unpacks to more than") {
		t.Errorf("gzip bomb: %v", err)
	}
}
