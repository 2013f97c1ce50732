package pdp

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/permatrix/permatrix"
)

// Two checks share a cache key exactly when the policies' inputs they make
// are the same (under one policy generation and store epoch): random checks
// over a small alphabet, so that fields meet each other's bytes and inputs
// often repeat, keyed and compared by their input documents.
func TestCacheKeyIsTheInput(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	words := []string{"", "a", "b", "ab", "a\x00", "\x00b", "\x01", "a\x01b"}
	word := func() string { return words[r.IntN(len(words))] }
	random := func() permatrix.Check {
		c := permatrix.Check{Subject: word(), System: word(), Action: word(), MinRevision: uint64(r.IntN(3))}
		if r.IntN(3) > 0 {
			c.Resource = &permatrix.Scope{Type: word(), ID: word()}
		}
		for range r.IntN(3) {
			c.Groups = append(c.Groups, word())
		}
		switch r.IntN(4) {
		case 1:
			c.Context = map[string]any{}
		case 2:
			c.Context = map[string]any{word(): word(), word(): float64(r.IntN(2))}
		case 3:
			c.Context = map[string]any{"role": []any{word()}}
		}
		return c
	}
	byKey := map[string]permatrix.Check{}
	same := 0
	for range 20000 {
		c := random()
		key, ok := cacheKey(3, 1, c)
		if !ok {
			t.Fatalf("%+v: not cacheable", c)
		}
		if other, seen := byKey[key]; seen {
			if !reflect.DeepEqual(other.Input(), c.Input()) {
				t.Fatalf("one key for two inputs:\n%#v\n%#v", other.Input(), c.Input())
			}
			same++
			continue
		}
		byKey[key] = c
	}
	// Every pair of distinct keys is a pair of distinct inputs.
	var inputs []map[string]any
	for _, c := range byKey {
		inputs = append(inputs, c.Input())
	}
	for i := range inputs {
		for j := i + 1; j < len(inputs) && j < i+200; j++ {
			if reflect.DeepEqual(inputs[i], inputs[j]) {
				t.Fatalf("two keys for one input: %#v", inputs[i])
			}
		}
	}
	if same == 0 || len(byKey) < 1000 {
		t.Fatalf("%d keys, %d repeats: the test needs both", len(byKey), same)
	}
	// The generation and the epoch are part of the key.
	c := random()
	k, _ := cacheKey(3, 1, c)
	for _, g := range [][2]uint64{{4, 1}, {3, 2}, {31, 1}} {
		if other, _ := cacheKey(g[0], g[1], c); other == k {
			t.Fatalf("generation %d epoch %d: the same key as generation 3 epoch 1", g[0], g[1])
		}
	}
}

// A check whose key would be longer than maxCacheKey — a large context,
// sent by a client — is not kept: the cache's memory is bounded by its
// entries, not by what clients send.
func TestCacheKeyBounded(t *testing.T) {
	c := permatrix.Check{Subject: "alice", System: "celonis-task-mining", Action: "edit_users"}
	if _, ok := cacheKey(1, 1, c); !ok {
		t.Fatal("a plain check is not cacheable")
	}
	c.Context = map[string]any{"note": strings.Repeat("x", maxCacheKey)}
	if key, ok := cacheKey(1, 1, c); ok {
		t.Fatalf("a key of %d bytes is cacheable", len(key))
	}
	c.Groups = nil
	c.Context = nil
	for i := range maxCacheKey / 8 {
		c.Groups = append(c.Groups, fmt.Sprintf("group%03d", i))
	}
	if key, ok := cacheKey(1, 1, c); ok {
		t.Fatalf("a key of %d bytes (many groups) is cacheable", len(key))
	}
}
