package store

import (
	"slices"
	"testing"
)

// TestDocNodeIsDocKey: walking data.store one segment at a time reaches the
// key DocKey gives for the whole path, and stops where DocKey refuses.
func TestDocNodeIsDocKey(t *testing.T) {
	for _, path := range [][]string{
		{"grants"}, {"grants", "user:u"}, {"grants", "user:u", "sys"}, {"grants", "user:u", "sys", "role"},
		{"grants", "user:u", "sys", "role", "r", "service"},
		{"memberships", "u"}, {"memberships", "u", "g"}, {"scopes", "sys", "project:p"}, {"roles", "sys", "r"}, {"projects", "sys", "p"},
		{"scopes", "sys", "project:p", "id"}, {"nope"}, {"grants", "a\x00b"},
		{"memberships", "u", "g", "beyond"},
	} {
		key, leaf, rest, ok := DocKey(path)
		var n DocNode
		walked := true
		for _, seg := range path {
			if n, walked = n.Child(seg); !walked {
				break
			}
		}
		if len(rest) > 0 {
			// DocKey reads inside a leaf's value; the walk stops at the leaf.
			if walked {
				t.Errorf("%q: walked below the leaf", path)
			}
			continue
		}
		if walked != ok {
			t.Errorf("%q: walked %v, DocKey ok %v", path, walked, ok)
			continue
		}
		if ok && (n.Leaf() != leaf || string(DocNodeKey(path...)) != string(key) || n.Depth() != len(path)) {
			t.Errorf("%q: node (%q, leaf %v), DocKey (%q, leaf %v)", path, DocNodeKey(path...), n.Leaf(), key, leaf)
		}
		// A node is a unit when it is the unit of the keys below it.
		if below := UnitOf(DocNodeKey(append(slices.Clone(path), "x")...)); ok && n.Unit() != (len(Segments(below)) == len(path)+1) {
			t.Errorf("%q: Unit %v, UnitOf below it %q", path, n.Unit(), below)
		}
	}
}

// TestUnitOf: a key's unit is the key cut to its index's unit depth; a
// prefix shallower than that, a key of an unknown index and a key of one
// segment are their own unit; a trailing separator (a prefix) is dropped.
func TestUnitOf(t *testing.T) {
	for _, c := range []struct{ key, unit []byte }{
		{Key("d", "grants", "user:u", "sys", "role", "r", "service"), Key("d", "grants", "user:u", "sys")},
		{Key("d", "grants", "user:u", "sys"), Key("d", "grants", "user:u", "sys")},
		{Prefix("d", "grants", "user:u"), Key("d", "grants", "user:u")},
		{Prefix("d", "grants"), Key("d", "grants")},
		{Key("d", "memberships", "u", "g"), Key("d", "memberships", "u")},
		{Key("i", "role_uses", "sys", "r", "id"), Key("i", "role_uses", "sys", "r")},
		{Key("i", "assignments", "id"), Key("i", "assignments", "id")},
		{Key("d", "nope", "a", "b", "c"), Key("d", "nope", "a", "b", "c")},
		{Key("d"), Key("d")},
		{Prefix("d"), Key("d")},
		{[]byte{}, []byte{}},
		{Key("d", "grants"), Key("d", "grants")},
		{Key("dx", "grants", "a", "b", "c"), Key("dx", "grants", "a", "b", "c")},
	} {
		if got := UnitOf(c.key); string(got) != string(c.unit) {
			t.Errorf("UnitOf(%q) = %q, want %q", c.key, got, c.unit)
		}
	}
	if n := testing.AllocsPerRun(100, func() { UnitOf(Key("d", "grants", "user:u", "sys", "role", "r", "service")) }); n > 1 {
		t.Errorf("UnitOf allocates %v times; only the key built for the call should", n)
	}
}
