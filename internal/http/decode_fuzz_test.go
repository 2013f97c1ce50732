package http

// Fuzz targets for the strict decoder (decode.go) on every body permatrix
// parses. go test runs their seeds; fuzz longer with e.g.
//
//	go test ./internal/http -run '^$' -fuzz FuzzCheckBody -fuzztime 5m
//
// (one target per run; the others: FuzzBatchBody, FuzzAssignmentBody,
// FuzzWriteBody, FuzzImportBody, FuzzDataBody). Properties:
//   - the decoder never panics, and refuses only with EINVALID;
//   - an accepted body re-encodes to the same value (decode, encode,
//     decode again: equal);
//   - an accepted body with one of its keys repeated, or with a case
//     variant of one of its keys added, is refused.

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/permatrix/permatrix"
)

// seeds are bodies of every kind, valid and hostile, shared by the targets.
var seeds = []string{
	`{"subject":"alice","system":"celonis-task-mining","action":"edit_users","resource":{"type":"project","id":"p1"},"context":{"space":"s1","n":12345678901234567890123,"deep":[{"x":[1,2.5e3,null,true]}]},"groups":["g"]}`,
	`{"subject":"alice","Subject":"root","system":"s","action":"a"}`,
	`{"subject":"root","subject":"alice","system":"s","action":"a"}`,
	`{"subject":"a","system":"s","action":"a","context":{"k":1,"k":2}}`,
	`{"subject":"a","system":"s","action":"a","resource":null,"context":null,"groups":null}`,
	`{"checks":[{"subject":"a","system":"s","action":"a"},{"Subject":"a"},{}]}`,
	`{"checks":[{"subject":"a","context":{"x":{"y":1,"y":2}}}]}`,
	`{"subject":"user:ba","system":"uipath-task-mining-cloud","role":"administrator","scope":{"type":"service"},"actor":"ba"}`,
	`{"actor":"ba","Actor":"","subject":"user:ba","system":"s","role":"r","scope":{"type":"service"}}`,
	`{"actor":"ba","actor":"","subject":"user:ba"}`,
	`{"ACTOR":"ba","subject":"user:ba"}`,
	`{"actor":null}`,
	`{"actor":""}`,
	`{"actor":"ru"}`,
	`{"actor":"ru","ACTOR":""}`,
	`{"permissions":["edit_process","security_users"],"actor":"sam"}`,
	`{"permissions":["a"],"permissions":[]}`,
	`{"created_by":"alice","kind":"unassisted","actor":"pc"}`,
	`{"created_by":null}`,
	`{"input":{"subject":"a","subject":"b"}}`,
	`{"input":"alice"}`,
	`{"input":{"n":1e400,"s":"\u00e9\ud83d\ude00","a":[]}}`,
	`{"scope":{"type":"service","Type":"project"}}`,
	`{"id":"x","subject":"user:a","system":"s","permission":"p","scope":{"type":"bucket","id":"b"}}`,
	"{\"subject\":\"\xff\"}",
	`{"subject":"a"} {"subject":"b"}`,
	`{"subject":"a"`,
	`null`,
	`[]`,
	`"x"`,
	``,
	" \n\t",
	`{}`,
	`{"":1}`,
	`{"subject":"a","\u0073ubject":"b"}`,
	`{"s\u0075bject":"a"}`,
	strings.Repeat(`{"context":`, 64) + `1` + strings.Repeat(`}`, 64),
}

func addSeeds(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
}

// reencode writes a decoded value back as JSON: zero fields left out (as a
// client leaves them out), "omitempty" as encoding/json reads it (an empty
// resource object is kept: it is not the same request as no resource),
// free-form numbers as written.
var reencode = json.JoinOptions(
	json.OmitZeroStructFields(true),
	jsonv1.OmitEmptyWithLegacySemantics(true),
	json.WithMarshalers(json.MarshalToFunc(func(enc *jsontext.Encoder, n stdjson.Number) error {
		return enc.WriteValue(jsontext.Value(n))
	})),
)

// checkStrict asserts the decoder's properties for body decoded as a T.
func checkStrict[T any](t *testing.T, body []byte) {
	t.Helper()
	var v T
	if err := decodeJSON(body, &v); err != nil {
		if code := permatrix.ErrorCode(err); code != permatrix.EINVALID || permatrix.ErrorMessage(err) == "" {
			t.Fatalf("refused with %s %q, want EINVALID with a message", code, permatrix.ErrorMessage(err))
		}
		return
	}
	again, err := json.Marshal(&v, reencode)
	if err != nil {
		t.Fatalf("accepted %q but cannot re-encode %#v: %v", body, v, err)
	}
	var w T
	if err := decodeJSON(again, &w); err != nil {
		t.Fatalf("accepted %q, its re-encoding %q is refused: %v", body, again, err)
	}
	// An empty array or object and none are the same request.
	if !cmp.Equal(v, w, cmpopts.EquateEmpty()) {
		t.Fatalf("accepted %q as %#v; re-encoded %q reads as %#v", body, v, again, w)
	}
	for _, m := range keyMutations(body) {
		if err := decodeJSON(m, new(T)); err == nil {
			t.Fatalf("accepted %q, and also %q (a repeated or case-variant key)", body, m)
		}
	}
}

// keyMutations are body with a top-level member repeated at the front, and
// with a case variant of a member's key added at the front, for each
// member.
func keyMutations(body []byte) [][]byte {
	dec := jsontext.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return nil
	}
	open := dec.InputOffset()
	var out [][]byte
	for dec.PeekKind() != '}' {
		name, err := dec.ReadToken()
		if err != nil {
			return out
		}
		key := name.String() // before the next read voids the token
		value, err := dec.ReadValue()
		if err != nil {
			return out
		}
		variants := []string{key}
		if v := swapCase(key); v != key {
			variants = append(variants, v)
		}
		for _, k := range variants {
			quoted, _ := jsontext.AppendQuote(nil, k)
			m := append([]byte{}, body[:open]...)
			m = append(m, quoted...)
			m = append(m, ':')
			m = append(m, value...) // copied before the next read reuses it
			m = append(m, ',')
			m = append(m, body[open:]...)
			out = append(out, m)
		}
	}
	return out
}

func swapCase(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsUpper(r) {
			return unicode.ToLower(r)
		}
		return unicode.ToUpper(r)
	}, s)
}

func FuzzCheckBody(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) { checkStrict[permatrix.Check](t, body) })
}

// FuzzBatchBody: the batch, then each item as a check.
func FuzzBatchBody(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		var b batchRequest
		if err := decodeJSON(body, &b); err != nil {
			return
		}
		for _, item := range b.Checks {
			checkStrict[permatrix.Check](t, item)
		}
		for _, m := range keyMutations(body) {
			if decodeJSON(m, new(batchRequest)) == nil {
				t.Fatalf("accepted %q with a repeated or case-variant key", m)
			}
		}
	})
}

func FuzzAssignmentBody(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) { checkStrict[assignmentRequest](t, body) })
}

// FuzzWriteBody: the other write bodies (roles, projects, DELETE and
// membership bodies).
func FuzzWriteBody(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		checkStrict[roleRequest](t, body)
		checkStrict[projectRequest](t, body)
		checkStrict[actorBody](t, body)
	})
}

// FuzzImportBody: an NDJSON import; every line it accepts is an accepted
// assignment body on its own.
func FuzzImportBody(f *testing.F) {
	addSeeds(f)
	f.Add([]byte(seeds[7] + "\n\n" + seeds[23] + "\r\n"))
	f.Add([]byte(seeds[7] + "\n" + seeds[9]))
	f.Fuzz(func(t *testing.T, body []byte) {
		ir := NewImportReader(bytes.NewReader(body), func(_ int, given *string) (string, error) {
			if given != nil {
				return *given, nil
			}
			return "", nil
		})
		raw := bytes.Split(body, []byte("\n"))
		for {
			l, err := ir.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				if permatrix.ErrorCode(err) != permatrix.EINVALID {
					t.Fatalf("refused with %v", err)
				}
				return
			}
			checkStrict[assignmentRequest](t, bytes.TrimSuffix(raw[l.Line-1], []byte("\r")))
		}
	})
}

func FuzzDataBody(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) { checkStrict[dataRequest](t, body) })
}
