package store

import (
	"encoding/json"
	"testing"
)

// TestDecodeGrantLeafEdgesLikeJSON: bytes where UTF-8 decoders part —
// surrogates encoded in UTF-8 (ED A0 80), overlong forms (C0 80, E0 80 80),
// code points past U+10FFFF, a BOM before or inside the leaf, U+2028, DEL,
// NUL, keys that json.Unmarshal folds onto a field (Kelvin sign K, long
// s ſ) — are either left to json.Unmarshal by the fast decoder or read as
// it reads them; and the fast decoder still reads the valid ones.
func TestDecodeGrantLeafEdgesLikeJSON(t *testing.T) {
	leaf := func(role string) string {
		return `{"kind":"role","role":"` + role + `","scope":{"type":"service"},"via":"user:u","assignment":"a1"}`
	}
	fastOnes := map[string]bool{}
	var cases []string
	for _, s := range []string{"\xed\xa0\x80", "\xed\xbf\xbf", "\xc0\x80", "\xe0\x80\x80", "\xf4\x90\x80\x80", "\xf8\x88\x80\x80\x80", "\xff", "a\xc3"} {
		cases = append(cases, leaf(s))
	}
	for _, s := range []string{"\u2028", "\u2029", "\x7f", "\ufeff", "\U0010ffff", "\uffff", "\ufffd"} {
		cases = append(cases, leaf(s))
		fastOnes[leaf(s)] = true
	}
	cases = append(cases,
		"\xef\xbb\xbf"+leaf("r"), leaf("\x00"), leaf("a\x00b"),
		`{"kind":"role","role":"r","scope":{"type":"service"},"via":"user:u","assignment":"a1","\u212aind":"x"}`,
		"{\"kind\":\"role\",\"role\":\"r\",\"\u017fcope\":{\"type\":\"project\",\"id\":\"p\"},\"via\":\"user:u\",\"assignment\":\"a1\"}",
		"{\"kind\":\"role\",\"role\":\"r\",\"scope\":{\"type\":\"service\",\"\u0130d\":\"x\"},\"via\":\"user:u\",\"assignment\":\"a1\"}",
	)
	for _, v := range cases {
		fast, ok := decodeGrantLeaf([]byte(v))
		if fastOnes[v] && !ok {
			t.Errorf("%q: valid UTF-8 without escapes left to json.Unmarshal", v)
		}
		if !ok {
			continue
		}
		var want grantLeaf
		if err := json.Unmarshal([]byte(v), &want); err != nil {
			t.Errorf("%q: fast decoder accepts what json.Unmarshal refuses: %v", v, err)
		} else if fast != want {
			t.Errorf("%q: fast %+v, json.Unmarshal %+v", v, fast, want)
		}
	}
}
