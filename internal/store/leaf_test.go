package store

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/permatrix/permatrix"
)

// leafSeeds are grant leaves as this package writes them, and variants of
// them json.Unmarshal reads too (or refuses).
func leafSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	for _, a := range []permatrix.Assignment{
		{ID: "a000000000001", Subject: "user:ann", System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope},
		{ID: "a000000000002", Subject: "group:ops", System: "blueprism", Permission: "view_dashboards", Scope: permatrix.Scope{Type: "process_group", ID: "pg-1"}},
		{ID: "a3", Subject: "user:zoë", System: "uipath", Role: "rôle", Scope: permatrix.Scope{Type: "project", ID: "日本"}},
		{ID: "a4", Subject: `user:"quoted"`, System: "s", Role: `back\slash`, Scope: permatrix.Scope{Type: "t", ID: "<&>"}},
		{ID: "a5", Subject: "user:\u2028", System: "s", Permission: "p", Scope: permatrix.Scope{Type: "t", ID: "\x01"}},
	} {
		v, err := json.Marshal(leafOf(a))
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, v)
	}
	for _, v := range append(oddLeaves, `{}`, `{"scope":{}}`, `{"kind":"role","role":"r","scope":{},"via":"user:u","assignment":"a1"}`) {
		seeds = append(seeds, []byte(v))
	}
	return seeds
}

// oddLeaves are leaves this package does not write, which the fast decoder
// leaves to json.Unmarshal: duplicate, case-variant and unknown keys,
// whitespace, null, trailing bytes, invalid UTF-8, escapes, and broken JSON.
var oddLeaves = []string{
	`{"kind":"role","role":"r","role":"s","scope":{"type":"service"},"via":"user:u","assignment":"a1"}`,
	`{"kind":"role","Role":"r","scope":{"type":"service"},"via":"user:u","assignment":"a1"}`,
	`{"kind":"role","role":"r","scope":{"type":"service","TYPE":"x"},"via":"user:u","assignment":"a1"}`,
	`{"kind":"role","role":"r","scope":{"type":"service"},"scope":{"id":"x"},"via":"u","assignment":"a1"}`,
	`{"kind":"role", "role":"r","scope":{"type":"service"},"via":"user:u","assignment":"a1"}`,
	`{"kind":"role","role":null,"scope":{"type":"service"},"via":"user:u","assignment":"a1"}`,
	`{"kind":"role","role":"r","scope":{"type":"service"},"via":"user:u","assignment":"a1","extra":1}`,
	`{"kind":"role","role":"r","scope":{"type":"service"},"via":"user:u","assignment":"a1"}x`,
	"{\"kind\":\"role\",\"role\":\"\xff\",\"scope\":{\"type\":\"service\"},\"via\":\"user:u\",\"assignment\":\"a1\"}",
	`{"kind":"role","role":"r\u0041","scope":{"type":"service"},"via":"user:u","assignment":"a1"}`,
	`[]`, `{`, `{"kind"`, `{"kind":"r"`, `{"kind":"r",}`, `{"kind":1}`, ``, `null`,
}

// FuzzDecodeGrantLeaf: whatever decodeGrantLeaf accepts, json.Unmarshal
// reads the same (it decodes everything else).
func FuzzDecodeGrantLeaf(f *testing.F) {
	for _, s := range leafSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		fast, ok := decodeGrantLeaf(v)
		if !ok {
			return
		}
		var want grantLeaf
		if err := json.Unmarshal(v, &want); err != nil {
			t.Fatalf("%q: decodeGrantLeaf accepts what json.Unmarshal refuses: %v", v, err)
		}
		if fast != want {
			t.Fatalf("%q: decodeGrantLeaf %+v, json.Unmarshal %+v", v, fast, want)
		}
	})
}

// TestDecodeGrantLeafReadsWhatLeafOfWrites: the fast path is the common
// one — every leaf this package writes without escapes is decoded by it.
func TestDecodeGrantLeafReadsWhatLeafOfWrites(t *testing.T) {
	for i := range 200 {
		a := permatrix.Assignment{ID: fmt.Sprintf("a%012d", i), Subject: fmt.Sprintf("user:u%d", i), System: "blueprism", Scope: permatrix.ServiceScope}
		switch i % 3 {
		case 0:
			a.Role = fmt.Sprintf("role-%d", i)
		case 1:
			a.Permission = "view_dashboards"
			a.Scope = permatrix.Scope{Type: "process_group", ID: fmt.Sprintf("pg%d é", i)}
		default:
			a.Role, a.Scope = "", permatrix.Scope{Type: "project", ID: "p"}
			a.Permission = "edit"
		}
		v, err := json.Marshal(leafOf(a))
		if err != nil {
			t.Fatal(err)
		}
		got, ok := decodeGrantLeaf(v)
		if !ok || got != leafOf(a) {
			t.Fatalf("%s: decodeGrantLeaf %+v, %v; wrote %+v", v, got, ok, leafOf(a))
		}
	}
	// And what json.Unmarshal must decode instead.
	for _, v := range oddLeaves {
		if l, ok := decodeGrantLeaf([]byte(v)); ok {
			t.Errorf("%q: decoded %+v, not left to json.Unmarshal", v, l)
		}
	}
}
