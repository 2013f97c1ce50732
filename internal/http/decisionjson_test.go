package http

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/permatrix/permatrix"
)

// encodeAsServer is what jsonSerializer's encoder writes for v.
func encodeAsServer(t testing.TB, v any) ([]byte, error) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(v)
	return buf.Bytes(), err
}

// hostileStrings need escaping, or look as if they might: quotes,
// backslashes, control bytes, HTML, invalid UTF-8, U+2028/2029, DEL.
var hostileStrings = []string{
	"", "plain", "user:ann", `q"uote`, `back\slash`, "tab\tnew\nline\r", "\x00\x01\x1f\x7f",
	"<script>&amp;</script>", "\xff\xfe", "a\xc3", "\u2028\u2029", "é ü 中文 🙂", "\u00ad\ufeff",
	strings.Repeat("x", 300), "ends with \\",
}

func randomValue(rng *rand.Rand, depth int) any {
	switch n := rng.IntN(10); {
	case n == 0:
		return nil
	case n == 1:
		return rng.IntN(2) == 0
	case n == 2:
		return json.Number([]string{"0", "-1", "3.5", "1e3", "12345678901234567890"}[rng.IntN(5)])
	case n == 3:
		return rng.Float64() * 1e6 // a Go float: written by encoding/json
	case n == 4 && depth < 3:
		l := make([]any, rng.IntN(4))
		for i := range l {
			l[i] = randomValue(rng, depth+1)
		}
		if rng.IntN(8) == 0 {
			l = nil
		}
		return l
	case n == 5 && depth < 3:
		return randomObject(rng, depth+1)
	case n == 6:
		return []string{"a", "<b>"} // another Go type
	default:
		return hostileStrings[rng.IntN(len(hostileStrings))]
	}
}

func randomObject(rng *rand.Rand, depth int) map[string]any {
	if rng.IntN(10) == 0 {
		return nil
	}
	m := map[string]any{}
	for range rng.IntN(12) {
		m[hostileStrings[rng.IntN(len(hostileStrings))]+[]string{"", "kind", "scope", "Via"}[rng.IntN(4)]] = randomValue(rng, depth)
	}
	return m
}

// A decision is written byte for byte as the server's encoder writes it,
// whatever its strings and values hold.
func TestDecisionJSONAsEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		d := &permatrix.Decision{Allow: rng.IntN(2) == 0, Revision: rng.Uint64() >> rng.IntN(64)}
		if rng.IntN(3) == 0 {
			d.DecisionID = hostileStrings[rng.IntN(len(hostileStrings))]
		}
		for _, list := range []*[]map[string]any{&d.Reasons, &d.Missing} {
			if rng.IntN(6) > 0 {
				*list = []map[string]any{}
			}
			for range rng.IntN(4) {
				*list = append(*list, randomObject(rng, 0))
			}
		}
		for range rng.IntN(3) {
			d.Errors = append(d.Errors, hostileStrings[rng.IntN(len(hostileStrings))])
		}
		want, wantErr := encodeAsServer(t, d)
		got, err := appendDecision([]byte("kept"), d)
		if wantErr != nil {
			if err == nil {
				t.Fatalf("decision %d: encoding/json fails (%v), appendDecision wrote %s", i, wantErr, got)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, append([]byte("kept"), want...)) {
			t.Fatalf("decision %d:\n got  %q (%v)\n want %q", i, got, err, want)
		}
	}
}

// A number encoding/json refuses fails the decision, as it does there.
func TestDecisionJSONRefusesWhatEncodingJSONRefuses(t *testing.T) {
	for _, v := range []any{json.Number("1x"), json.Number("NaN"), map[string]any{"f": func() {}}} {
		d := &permatrix.Decision{Reasons: []map[string]any{{"v": v}}, Missing: []map[string]any{}}
		if _, err := encodeAsServer(t, d); err == nil {
			t.Fatalf("%v: encoding/json accepts it", v)
		}
		if b, err := appendDecision(nil, d); err == nil {
			t.Fatalf("%v: appendDecision wrote %s", v, b)
		}
	}
}

func FuzzDecisionJSON(f *testing.F) {
	for _, s := range hostileStrings {
		f.Add(s, s, true)
	}
	f.Fuzz(func(t *testing.T, k, v string, allow bool) {
		d := &permatrix.Decision{Allow: allow, DecisionID: v, Reasons: []map[string]any{{k: v, "scope": map[string]any{v: k}}}, Missing: []map[string]any{{"m": []any{k, v}}}, Errors: []string{k}}
		want, _ := encodeAsServer(t, d)
		got, err := appendDecision(nil, d)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("got %q (%v), want %q", got, err, want)
		}
	})
}

// BenchmarkDecisionJSON writes a check's answer (an allow with its reason,
// the shape of most answers) by encoding/json, as before, and by
// appendDecision.
func BenchmarkDecisionJSON(b *testing.B) {
	d := &permatrix.Decision{Allow: true, Revision: 1000003, Reasons: []map[string]any{{
		"kind": "role", "role": "analyst", "via": "user:u123456", "assignment": "a-0193d4b6-6b7e-7c4a-9f1e-2a3b4c5d6e7f",
		"scope": map[string]any{"type": "project", "id": "p4711"},
	}}, Missing: []map[string]any{}}
	b.Run("by=encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(d); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("by=appendDecision", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			var err error
			if buf, err = appendDecision(buf[:0], d); err != nil {
				b.Fatal(err)
			}
		}
	})
}
