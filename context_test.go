package permatrix_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/permatrix/permatrix"
)

// TestValidateContext: a context built in Go (a client's check, a route's)
// is held to the bounds the HTTP API holds a body's to while reading it,
// in the same words.
func TestValidateContext(t *testing.T) {
	keys := func(n int) map[string]any {
		m := map[string]any{}
		for i := range n {
			m[fmt.Sprint("k", i)] = true
		}
		return m
	}
	list := func(n int) []any { return make([]any, n) }
	nested := func(depth int) any {
		var v any = true
		for range depth - 1 {
			v = []any{v}
		}
		return v
	}
	for _, c := range []struct {
		name string
		ctx  map[string]any
		want string
	}{
		{"none", nil, ""},
		{"32 keys", keys(32), ""},
		{"33 keys", keys(33), "context holds more than 32 keys"},
		{"depth 4", map[string]any{"a": nested(4)}, ""},
		{"depth 5", map[string]any{"a": nested(5)}, "context nests deeper than 4 levels"},
		{"256 values", map[string]any{"a": list(255)}, ""},
		{"257 values", map[string]any{"a": list(256)}, "context holds more than 256 values"},
		{"257 values and depth 5: the depth named", map[string]any{"a": list(256), "b": nested(5)}, "context nests deeper than 4 levels"},
		{"a number of 64 characters", map[string]any{"a": json.Number(strings.Repeat("9", 64))}, ""},
		{"a number of 65 characters", map[string]any{"a": []any{json.Number(strings.Repeat("9", 65))}}, "context holds a number of more than 64 characters"},
	} {
		err := permatrix.ValidateContext(c.ctx)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (permatrix.ErrorCode(err) != permatrix.EINVALID || permatrix.ErrorMessage(err) != c.want):
			t.Errorf("%s: %v, want EINVALID %q", c.name, err, c.want)
		}
	}
	// A context that holds itself is refused at its depth, not walked for
	// ever.
	loop := map[string]any{}
	loop["self"] = loop
	if err := permatrix.ValidateContext(loop); permatrix.ErrorMessage(err) != "context nests deeper than 4 levels" {
		t.Errorf("a context that holds itself: %v", err)
	}
}
