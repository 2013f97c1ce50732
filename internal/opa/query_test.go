package opa

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/permatrix/permatrix/internal/store"
)

func compileDefault(t testing.TB, backend store.Backend, opts ...Option) *Policy {
	t.Helper()
	b, err := ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(context.Background(), b, backend, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func roundTripAny(t *testing.T, v any) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// The entrypoints come from the `entrypoint: true` annotations of the
// compiled bundle, and a path inside one is inside it.
func TestEntrypointsFromAnnotations(t *testing.T) {
	p := compileDefault(t, nil)
	got := p.Entrypoints()
	slices.Sort(got)
	want := []string{"data.permatrix.admin.verdict", "data.permatrix.allow", "data.permatrix.decision"}
	if !slices.Equal(got, want) {
		t.Fatalf("entrypoints %v, want %v", got, want)
	}
	for path, is := range map[string]bool{
		"permatrix/allow": true, "permatrix/decision": true, "permatrix/decision/allow": true,
		"permatrix/admin/verdict": true, "permatrix": false, "permatrix/admin": false,
		"store": false, "store/grants": false, "": false, "systems": false, "permatrix/errors": false,
		"permatrix/allowx": false, "permatrix/lib/grants": false,
	} {
		if got := p.IsEntrypoint(split(path)); got != is {
			t.Errorf("IsEntrypoint(%q) = %v, want %v", path, got, is)
		}
	}
}

func split(path string) []string {
	if path == "" {
		return nil
	}
	return strings.Split(path, "/")
}

// 20,000 distinct paths nobody defined leave the Data API's query cache as
// it was, and the heap does not grow with them; paths inside a rule's value
// are evaluated without being cached either.
func TestQueryCacheBounded(t *testing.T) {
	ctx := context.Background()
	p := compileDefault(t, nil)
	for _, path := range []string{"permatrix/decision", "permatrix/allow", "permatrix"} {
		if _, _, err := p.Query(ctx, store.Empty(0), split(path), map[string]any{}); err != nil {
			t.Fatal(err)
		}
	}
	base := p.CachedQueries()
	if base != 3 {
		t.Fatalf("%d cached queries after three defined paths", base)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range 20000 {
		paths := [][]string{
			{fmt.Sprintf("q%d", i), "x"},
			{"permatrix", "decision", fmt.Sprintf("k%d", i)},
			{"systems", fmt.Sprintf("s%d", i)},
		}
		for _, path := range paths[:1+i%3] {
			res, defined, err := p.Query(ctx, store.Empty(0), path, nil)
			if err != nil || defined {
				t.Fatalf("%v: %v %v %v", path, res, defined, err)
			}
		}
	}
	if n := p.CachedQueries(); n != base {
		t.Fatalf("%d cached queries after 20,000 undefined paths, want %d", n, base)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 8<<20 {
		t.Fatalf("live heap grew by %d MiB over 20,000 undefined paths", grew>>20)
	}
}

// Data API answers follow stock opa: base data is read, array indexes are
// integers, a non-object input is evaluated (builtin errors undefined), and
// odd keys (NUL, quotes) are plain keys.
func TestQueryLikeStockOPA(t *testing.T) {
	ctx := context.Background()
	p := compileDefault(t, nil)
	snap := store.Empty(4)
	cases := []struct {
		path    string
		input   any
		want    string
		defined bool
	}{
		{"store/revision", nil, "4", true},
		{"systems/blueprism/documents/0", nil, `"blueprism-user-permissions.txt"`, true},
		{"permatrix/decision", "alice", `{"allow":false,"errors":["the input must be a JSON object, got string"],"missing":[],"reasons":[],"revision":4}`, true},
		{"permatrix/allow", 42.0, "false", true},
		{"permatrix/admin/verdict", []any{"x"}, `{"forbidden":[],"violations":[]}`, true},
		{"\x00", nil, "", false},
		{`a"b`, nil, "", false},
		{"permatrix/decision/allow", map[string]any{}, "false", true},
		// OPA reads an index with trailing decimal zeroes as the integer
		// (util.Atoi64: "1.0" is 1), in the path and in its store.
		{"systems/celonis-storage-manager/scope_types/1.0", nil, `"bucket"`, true},
		{"systems/celonis-storage-manager/scope_types/0.00", nil, `"service"`, true},
		{"systems/celonis-storage-manager/scope_types/1.5", nil, "", false},
	}
	for _, c := range cases {
		res, defined, err := p.Query(ctx, snap, split(c.path), c.input)
		if err != nil {
			t.Errorf("%q: %v", c.path, err)
			continue
		}
		if defined != c.defined {
			t.Errorf("%q: defined %v, want %v", c.path, defined, c.defined)
			continue
		}
		if got := string(roundTripAny(t, res)); c.defined && got != c.want {
			t.Errorf("%q: %s, want %s", c.path, got, c.want)
		}
	}
}
