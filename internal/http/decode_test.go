package http

import (
	stdjson "encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/labstack/echo/v4"

	"github.com/permatrix/permatrix"
)

// Every refusal of the strict decoder says which key or field and what was
// expected.
func TestDecodeJSONMessages(t *testing.T) {
	for _, c := range []struct {
		body string
		into any
		msg  string
	}{
		{`{"actor":"ba","Actor":""}`, &assignmentRequest{}, `unknown key "Actor" in the body (keys are case-sensitive: did you mean "actor"?)`},
		{`{"actor":"ba","actor":""}`, &assignmentRequest{}, `duplicate key "actor" in the body: a key may appear only once in an object`},
		{`{"scope":{"type":"a","TYPE":"b"}}`, &assignmentRequest{}, `unknown key "TYPE" in object scope (keys are case-sensitive: did you mean "type"?)`},
		{`{"reason":"x"}`, &actorBody{}, `unknown key "reason" in the body (known keys: actor)`},
		{`{"subject":"a","context":{"x":[{"k":1,"k":2}]}}`, &permatrix.Check{}, `duplicate key "k" in object context.x[0]`},
		{`{"input":{"a":1,"a":1}}`, &dataRequest{}, `duplicate key "a" in object input`},
		{`{"permissions":"edit_process"}`, &roleRequest{}, `permissions: expected an array of strings, got JSON string`},
		{`{"permissions":["a",7]}`, &roleRequest{}, `permissions[1]: expected a string, got JSON number`},
		{`{"permissions":[null]}`, &roleRequest{}, `permissions[0]: expected a string, got null (leave the key out instead)`},
		{`{"scope":"service"}`, &assignmentRequest{}, `scope: expected an object, got JSON string`},
		{`{"checks":{}}`, &batchRequest{}, `checks: expected an array of JSON values, got JSON object`},
		{`{"actor":true}`, &actorBody{}, `actor: expected a string, got JSON boolean`},
		{`{"actor":null}`, &actorBody{}, `actor: expected a string, got null (leave the key out instead)`},
		{`{"subject":"a"} {}`, &permatrix.Check{}, `request body has data after the JSON value`},
		{`{"subject":"a"`, &permatrix.Check{}, `malformed JSON at byte`},
		{"{\"subject\":\"\xff\"}", &permatrix.Check{}, `invalid UTF-8`},
		{`null`, &projectRequest{}, `the body must be a JSON object, got null`},
		{`"x"`, &projectRequest{}, `the body must be a JSON object, got string`},
		{` `, &projectRequest{}, `request body is empty: a JSON object is required`},
	} {
		err := decodeJSON([]byte(c.body), c.into)
		if permatrix.ErrorCode(err) != permatrix.EINVALID || !strings.Contains(permatrix.ErrorMessage(err), c.msg) {
			t.Errorf("%s: got %v, want EINVALID with %q", c.body, err, c.msg)
		}
	}
}

// Free-form values keep their numbers exact, as OPA reads them.
func TestDecodeJSONKeepsNumbersExact(t *testing.T) {
	var ch permatrix.Check
	if err := decodeJSON([]byte(`{"subject":"a","context":{"n":12345678901234567890123,"f":0.1}}`), &ch); err != nil {
		t.Fatal(err)
	}
	if n, ok := ch.Context["n"].(stdjson.Number); !ok || n != "12345678901234567890123" {
		t.Fatalf("context.n = %#v", ch.Context["n"])
	}
	var d dataRequest
	if err := decodeJSON([]byte(`{"input":[1e400]}`), &d); err != nil {
		t.Fatal(err)
	}
	if d.Input == nil {
		t.Fatal("no input")
	}
	if l, ok := (*d.Input).([]any); !ok || l[0] != stdjson.Number("1e400") {
		t.Fatalf("input = %#v", d.Input)
	}
}

// actorOf is the one place that decides the actor of a write.
func TestActorOf(t *testing.T) {
	ptr := func(s string) *string { return &s }
	for _, c := range []struct {
		what     string
		operator bool
		user     any // under callerUserKey, nil for none
		body     *string
		header   []string
		want     string
		code     string // "" for success
	}{
		{what: "operator, no actor", operator: true, want: ""},
		{what: "operator, body actor", operator: true, body: ptr("ba"), want: "ba"},
		{what: "operator, header actor", operator: true, header: []string{"ba"}, want: "ba"},
		{what: "operator, same in both", operator: true, body: ptr("ba"), header: []string{"ba"}, want: "ba"},
		{what: "operator, body and header differ", operator: true, body: ptr("ba"), header: []string{"root"}, code: permatrix.EINVALID},
		{what: "operator, header twice", operator: true, header: []string{"ba", "ba"}, code: permatrix.EINVALID},
		{what: "operator, empty body actor", operator: true, body: ptr(""), code: permatrix.EINVALID},
		{what: "operator, empty header", operator: true, header: []string{""}, code: permatrix.EINVALID},
		{what: "operator, control characters", operator: true, body: ptr("b\na"), code: permatrix.EINVALID},
		{what: "operator, too long", operator: true, body: ptr(strings.Repeat("a", permatrix.MaxIDBytes+1)), code: permatrix.EINVALID},
		{what: "user, no actor named", user: "ba", want: "ba"},
		{what: "user naming itself", user: "ba", body: ptr("ba"), header: []string{"ba"}, want: "ba"},
		{what: "user naming another in the body", user: "ba", body: ptr("root"), code: permatrix.EINVALID},
		{what: "user naming another in the header", user: "ba", header: []string{"root"}, code: permatrix.EINVALID},
		{what: "user and operator: the user", operator: true, user: "ba", want: "ba"},
		{what: "user id not valid", user: "", code: permatrix.EINTERNAL},
		{what: "user id not a string", operator: true, user: 7, code: permatrix.EINTERNAL},
		{what: "neither operator nor user", code: permatrix.EUNAUTHORIZED},
		{what: "neither, with an actor", body: ptr("ba"), code: permatrix.EUNAUTHORIZED},
	} {
		req := httptest.NewRequest(http.MethodPost, "/v1/assignments", nil)
		for _, h := range c.header {
			req.Header.Add(actorHeader, h)
		}
		ctx := echo.New().NewContext(req, httptest.NewRecorder())
		if c.operator {
			ctx.Set(callerOperatorKey, true)
		}
		if c.user != nil {
			ctx.Set(callerUserKey, c.user)
		}
		got, err := actorOf(ctx, c.body)
		switch {
		case c.code == "" && (err != nil || got != c.want):
			t.Errorf("%s: got %q, %v; want %q", c.what, got, err, c.want)
		case c.code != "" && (permatrix.ErrorCode(err) != c.code || got != ""):
			t.Errorf("%s: got %q, %v; want a %s error", c.what, got, err, c.code)
		}
	}
}

// The options that count free-form values are pooled, each Unmarshal's
// bound set on them for its length: decodes running at once, with bounds
// that refuse or take the same input, each get their own bound's answer.
func TestDecodeValueBoundsAtOnce(t *testing.T) {
	const values = 5 // the input below: the object and its four values
	input := []byte(`{"a": 1, "b": [true, "x"]}`)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				limit := values
				if (g+i)%2 == 1 {
					limit = values - 1
				}
				bound := &inputValues{max: limit}
				_, err := decodeValue(input, "input", bound)
				if refused := err != nil; refused != (limit < values) || bound.n != min(values, limit+1) {
					errs <- fmt.Errorf("bound %d: err %v after %d values", limit, err, bound.n)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// readAll reads every byte whatever length the request declares: its own,
// a shorter one (a compressed body's wire bytes: the small first buffer
// grows), none (-1: chunked), a larger one, or one past any body (no
// buffer sized from it) — and through readers that return one byte at a
// time or the last bytes with io.EOF.
func TestReadAllDeclaredLengths(t *testing.T) {
	body := strings.Repeat("0123456789", 100) // 1 000 bytes
	for _, declared := range []int64{-1, 0, 1, 100, 511, 512, 999, 1000, 1001, 5000, 1 << 40} {
		for name, wrap := range map[string]func(io.Reader) io.Reader{
			"plain":    func(r io.Reader) io.Reader { return r },
			"one byte": iotest.OneByteReader,
			"data+EOF": iotest.DataErrReader,
		} {
			got, err := readAll(wrap(strings.NewReader(body)), declared)
			if err != nil || string(got) != body {
				t.Errorf("declared %d, %s: %d bytes, %v", declared, name, len(got), err)
			}
			if cap(got) > 4*len(body) {
				t.Errorf("declared %d, %s: a buffer of %d bytes for a 1 000-byte body", declared, name, cap(got))
			}
		}
	}
	// A read error is returned with what was read before it.
	got, err := readAll(io.MultiReader(strings.NewReader("ab"), iotest.ErrReader(io.ErrUnexpectedEOF)), 10)
	if string(got) != "ab" || err != io.ErrUnexpectedEOF {
		t.Errorf("a failing body: %q, %v", got, err)
	}
}
