package pdp

import (
	"reflect"
	"testing"

	"github.com/permatrix/permatrix"
)

// Two contexts whose strings are two different invalid UTF-8 bytes
// (routes refuse such a path segment now, but a check's context may come
// from elsewhere): the policies see both (inputValue keeps a string's
// bytes), so the two checks are two inputs; encoding/json writes every
// invalid byte as \ufffd, so they must not share a cache key through it.
func TestCacheKeyInvalidUTF8Context(t *testing.T) {
	check := func(a, b string) permatrix.Check {
		return permatrix.Check{Subject: "alice", System: "s", Action: "a", Context: map[string]any{"a": a, "b": b}}
	}
	same, other := check("\xff", "\xff"), check("\xff", "\xfe")
	if reflect.DeepEqual(same.Input(), other.Input()) {
		t.Fatalf("one input: %#v", same.Input())
	}
	k1, ok1 := cacheKey(3, 1, same)
	k2, ok2 := cacheKey(3, 1, other)
	if ok1 && ok2 && k1 == k2 {
		t.Fatalf("one cache key for two inputs (context.a == context.b in one, not in the other):\n%q\n%q", same.Context, other.Context)
	}
	// Go values encoding/json writes alike that the policies see apart:
	// a nil slice (an empty array to jsonTerm) and nil (null).
	a := permatrix.Check{Subject: "alice", System: "s", Action: "a", Context: map[string]any{"k": []any(nil)}}
	b := permatrix.Check{Subject: "alice", System: "s", Action: "a", Context: map[string]any{"k": nil}}
	ka, oka := cacheKey(3, 1, a)
	kb, okb := cacheKey(3, 1, b)
	if oka && okb && ka == kb {
		t.Fatalf("one cache key for a nil slice and a nil: %q", ka)
	}
}
