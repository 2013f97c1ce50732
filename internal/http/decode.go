package http

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/labstack/echo/v4"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// Every JSON body permatrix parses (checks, batch items, write bodies,
// DELETE bodies, import lines, the Data API's request) goes through
// decodeJSON, and nothing else decodes request JSON. It is strict because
// a lenient decoder lets a request mean two things: encoding/json (v1)
// matches keys case-insensitively and lets the last of two equal keys win,
// so {"actor":"ba","Actor":""} was a write made as the operator.
//
// It is encoding/json/v2 (the github.com/go-json-experiment/json module,
// which Go 1.27 ships as the standard library) with these options:
//   - keys match field names exactly: a case variant ("Actor") is an unknown
//     key, and unknown keys are refused (RejectUnknownMembers);
//   - a key twice in one object, anywhere in the document, is refused (v2's
//     default, also inside free-form values such as a check's context and
//     the Data API's input);
//   - invalid UTF-8 is refused (v2's default);
//   - a string field holds a string: null is refused (leave the key out);
//   - an import line's record (membership, custom_role, project, export,
//     end) holds an object: null is refused;
//   - free-form values keep their numbers exact (json.Number, as OPA reads
//     them), as the v1 decoder's UseNumber did.
var strictJSON = strictJSONWithin(nil)

// strictUnmarshalers are strictJSON's refusals of null.
var strictUnmarshalers = json.JoinUnmarshalers(
	json.UnmarshalFromFunc(func(dec *jsontext.Decoder, _ *string) error { return refuseNull(dec) }),
	json.UnmarshalFromFunc(func(dec *jsontext.Decoder, _ **string) error { return refuseNull(dec) }),
	// An import line's record given null was taken for no record:
	// {"membership":null, "subject":…} an assignment line, and
	// {"export":null} first made an export plain lines.
	json.UnmarshalFromFunc(func(dec *jsontext.Decoder, _ **permatrix.Membership) error { return refuseNullObject(dec) }),
	json.UnmarshalFromFunc(func(dec *jsontext.Decoder, _ **permatrix.Role) error { return refuseNullObject(dec) }),
	json.UnmarshalFromFunc(func(dec *jsontext.Decoder, _ **permatrix.Project) error { return refuseNullObject(dec) }),
	json.UnmarshalFromFunc(func(dec *jsontext.Decoder, _ **store.ExportHeader) error { return refuseNullObject(dec) }),
	json.UnmarshalFromFunc(func(dec *jsontext.Decoder, _ **store.ExportEnd) error { return refuseNullObject(dec) }),
)

// strictJSONWithin is strictJSON whose free-form values are counted by
// bound as they are read (nil: not counted).
func strictJSONWithin(bound valueBound) json.Options {
	return json.JoinOptions(
		json.RejectUnknownMembers(true),
		json.WithUnmarshalers(json.JoinUnmarshalers(
			strictUnmarshalers,
			json.UnmarshalFromFunc(func(dec *jsontext.Decoder, v *any) error {
				var err error
				*v, err = freeForm(dec, bound)
				return err
			}),
		)),
	)
}

// A valueBound is told of each free-form value before it is read, with
// the decoder's depth there (dec.StackDepth()), and refuses the one past
// its bound. The free-form values of a body — a check's context, the Data
// API's input — are what a client sends the most of for the least: each
// {} is three bytes and ~100 once a Go value and again an OPA term, so
// they are counted while they are read, and none is built past the bound.
type valueBound interface {
	value(depth int) error
	// number refuses a number written longer than
	// permatrix.MaxNumberLength.
	number(literal string) error
}

// checkContext bounds a check's context (permatrix.ContextShape): a check
// body, or a batch item, is decoded on its own, so its context's values
// are read at depth 2 and below (the body, then the context object).
type checkContext struct{ shape permatrix.ContextShape }

func (b *checkContext) value(depth int) error { return b.shape.Add(depth - 1) }

func (b *checkContext) number(literal string) error {
	if len(literal) > permatrix.MaxNumberLength {
		return permatrix.NumberTooLong("context")
	}
	return nil
}

// maxInputValues bounds the values of the Data API's input sent without
// the admin token: to the policy entrypoints, whose input is a check (at
// most ~525 values: 256 groups, a context's 256, a few fields) or a write
// (a custom role names at most the ~100 permissions of a system). One
// value costs up to ~1.1 KiB decoded, made an OPA term and iterated by
// the rules, so the bound (8 times the largest check) keeps a request
// under ~5 MiB whatever a 1 MiB body holds. With the token the input is
// the operator's, bounded only by --body-limit, as in stock OPA.
const maxInputValues = 4096

// inputValues bounds the values of the Data API's input.
type inputValues struct{ n, max int }

func (b *inputValues) value(int) error {
	if b.n++; b.n > b.max {
		return permatrix.Errorf(permatrix.EINVALID, "the input holds more than %d JSON values (objects, arrays, and the values inside them), over the limit without the admin token", b.max)
	}
	return nil
}

func (b *inputValues) number(literal string) error {
	if len(literal) > permatrix.MaxNumberLength {
		return permatrix.Errorf(permatrix.EINVALID, "the input holds a number of more than %d characters, over the limit without the admin token", permatrix.MaxNumberLength)
	}
	return nil
}

// errNullString is how refuseNull reports a null where a string belongs.
var errNullString = errors.New("null where a string belongs")

// errNullObject is how refuseNullObject reports a null where an object
// belongs.
var errNullObject = errors.New("null where an object belongs")

// refuseNullObject is refuseNull for an object.
func refuseNullObject(dec *jsontext.Decoder) error {
	if dec.PeekKind() == 'n' {
		return errNullObject
	}
	return errors.ErrUnsupported
}

// refuseNull refuses a JSON null and leaves anything else to the default
// decoding (errors.ErrUnsupported means "not handled here" to json v2).
func refuseNull(dec *jsontext.Decoder) error {
	if dec.PeekKind() == 'n' {
		return errNullString
	}
	return errors.ErrUnsupported
}

// freeForm reads a free-form value (a check's context values, the Data
// API's input) as OPA expects it: numbers as json.Number, exact. It reads
// token by token, so that bound refuses a value before it is built; the
// decoder checks syntax, UTF-8 and duplicate keys as it goes.
func freeForm(dec *jsontext.Decoder, bound valueBound) (any, error) {
	if bound != nil {
		if err := bound.value(dec.StackDepth()); err != nil {
			return nil, err
		}
	}
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, err
	}
	switch tok.Kind() {
	case 'n':
		return nil, nil
	case 't', 'f':
		return tok.Bool(), nil
	case '"':
		return tok.String(), nil
	case '0':
		n := tok.String()
		if bound != nil {
			if err := bound.number(n); err != nil {
				return nil, err
			}
		}
		return stdjson.Number(n), nil
	case '{':
		m := map[string]any{}
		for dec.PeekKind() != '}' {
			tok, err := dec.ReadToken()
			if err != nil {
				return nil, err
			}
			name := tok.String() // before the next read invalidates tok
			v, err := freeForm(dec, bound)
			if err != nil {
				return nil, err
			}
			m[name] = v
		}
		_, err := dec.ReadToken()
		return m, err
	case '[':
		a := []any{}
		for dec.PeekKind() != ']' {
			v, err := freeForm(dec, bound)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err := dec.ReadToken()
		return a, err
	}
	return nil, fmt.Errorf("unexpected JSON token %v", tok)
}

// decodeJSON decodes body, which must be one JSON object, into v (a pointer
// to a struct). Anything it refuses is an EINVALID error whose message
// names the key or the place and says what was expected.
func decodeJSON(body []byte, v any) error { return decodeJSONWithin(body, v, nil) }

// decodeJSONWithin is decodeJSON whose free-form values bound counts (nil:
// not counted).
func decodeJSONWithin(body []byte, v any, bound valueBound) error {
	kind := jsontext.Value(body).Kind()
	switch {
	case blank(body):
		return permatrix.Errorf(permatrix.EINVALID, "request body is empty: a JSON object is required")
	case kind != '{' && kind != 0:
		return permatrix.Errorf(permatrix.EINVALID, "the body must be a JSON object, got %s", kindName(kind))
	}
	if err := unmarshalWithin(body, v, bound); err != nil {
		return jsonError(err)
	}
	return nil
}

// blank says body is empty or JSON's whitespace only (space, tab, CR,
// LF): no body. Any other whitespace (a vertical tab, a no-break space,
// which bytes.TrimSpace trims) is malformed JSON, refused as such — a
// write's optional body of it was taken for none, the write made as the
// operator.
func blank(body []byte) bool { return len(bytes.Trim(body, " \t\r\n")) == 0 }

// decodeValue decodes one JSON value of any kind (OPA's input: the body of
// POST /v0/data and POST /, the input parameter of GET /v1/data) with
// decodeJSON's checks: a key twice in one object, invalid UTF-8 or data
// after the value are refused; numbers stay exact. param names where the
// value came from when it is not the body ("input": GET /v1/data's
// ?input=), for the messages; bound counts its values (nil: not counted).
func decodeValue(raw []byte, param string, bound valueBound) (any, error) {
	var v any
	if err := unmarshalWithin(raw, &v, bound); err != nil {
		return nil, jsonErrorIn(err, param)
	}
	return v, nil
}

// unmarshalWithin is json.Unmarshal with strictJSON's options, its
// free-form values counted by bound (nil: not counted).
func unmarshalWithin(raw []byte, v any, bound valueBound) error {
	if bound == nil {
		return json.Unmarshal(raw, v, strictJSON)
	}
	b := boundOptionsPool.Get().(*boundOptions)
	b.bound = bound
	err := json.Unmarshal(raw, v, b.opts)
	b.bound = nil
	boundOptionsPool.Put(b)
	return err
}

// boundOptions are strictJSONWithin's options, made once and pooled, their
// bound the one of the Unmarshal under way: made for every check, the
// options and the arshaler cache each new set of them starts were ~1 KiB
// of the ~4.4 KiB of garbage a cached check's handler makes (the
// collector's marking is what the open loop's tail waits for:
// docs/performance.md, 2026-11-29 03:30).
type boundOptions struct {
	bound valueBound
	opts  json.Options
}

func (b *boundOptions) value(depth int) error       { return b.bound.value(depth) }
func (b *boundOptions) number(literal string) error { return b.bound.number(literal) }

var boundOptionsPool = sync.Pool{New: func() any {
	b := &boundOptions{}
	b.opts = strictJSONWithin(b)
	return b
}}

// readAll is io.ReadAll whose buffer starts at the length a small request
// declares — a check is ~100 bytes, io.ReadAll's first buffer 512 — and is
// io.ReadAll itself for a larger or undeclared one: a buffer sized from the
// header before the bytes come would let a client that declares much and
// sends little hold that much (and past 512 bytes io.ReadAll's growth is
// what the amplification bounds were measured with). A compressed body
// declares its wire bytes and grows the buffer as io.ReadAll does.
func readAll(r io.Reader, declared int64) ([]byte, error) {
	if declared < 0 || declared >= 512 {
		return io.ReadAll(r)
	}
	b := make([]byte, 0, declared+1) // +1: room for the read that finds the end
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

// decode reads the request body and decodes it with decodeJSON.
func decode(c echo.Context, v any) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	return decodeJSON(body, v)
}

// readBody reads the whole body; over the limit it is the body-limit
// middleware's 413.
func readBody(c echo.Context) ([]byte, error) {
	req := c.Request()
	body, err := readAll(req.Body, req.ContentLength)
	if err != nil {
		var he *echo.HTTPError
		if errors.As(err, &he) {
			return nil, he
		}
		return nil, permatrix.Errorf(permatrix.EINVALID, "reading body: %v", err)
	}
	return body, nil
}

// jsonError turns a json v2 error in a request body into a client message.
func jsonError(err error) error { return jsonErrorIn(err, "") }

// jsonErrorIn is jsonError for JSON from the query parameter param ("":
// the body).
func jsonErrorIn(err error, param string) error {
	var syn *jsontext.SyntacticError
	var sem *json.SemanticError
	var refused *permatrix.Error
	if errors.As(err, &refused) {
		return refused // a valueBound's: it says what and where
	}
	where := where
	if param != "" {
		where = func(p jsontext.Pointer) string {
			if p == "" {
				return "the " + param + " parameter"
			}
			return "object " + field(p) + " of the " + param + " parameter"
		}
	}
	switch {
	case errors.As(err, &syn) && errors.Is(syn.Err, jsontext.ErrDuplicateName):
		return permatrix.Errorf(permatrix.EINVALID, "duplicate key %q in %s: a key may appear only once in an object",
			syn.JSONPointer.LastToken(), where(syn.JSONPointer.Parent()))
	case errors.As(err, &syn) && strings.Contains(syn.Err.Error(), "after top-level value"):
		if param != "" {
			return permatrix.Errorf(permatrix.EINVALID, "the %s parameter has data after the JSON value", param)
		}
		return permatrix.Errorf(permatrix.EINVALID, "request body has data after the JSON value")
	case errors.As(err, &syn):
		msg := fmt.Sprintf("malformed JSON at byte %d: %v", syn.ByteOffset, syn.Err)
		if syn.JSONPointer != "" || param != "" {
			msg += " (in " + where(syn.JSONPointer) + ")"
		}
		return permatrix.Errorf(permatrix.EINVALID, "%s", msg)
	case errors.As(err, &sem) && errors.Is(sem.Err, json.ErrUnknownName):
		return permatrix.Errorf(permatrix.EINVALID, "unknown key %q in %s%s",
			sem.JSONPointer.LastToken(), where(sem.JSONPointer.Parent()), knownKeysHint(sem.GoType, sem.JSONPointer.LastToken()))
	case errors.As(err, &sem) && errors.Is(sem.Err, errNullString):
		return permatrix.Errorf(permatrix.EINVALID, "%s: expected a string, got null (leave the key out instead)", field(sem.JSONPointer))
	case errors.As(err, &sem) && errors.Is(sem.Err, errNullObject):
		return permatrix.Errorf(permatrix.EINVALID, "%s: expected an object, got null (leave the key out instead)", field(sem.JSONPointer))
	case errors.As(err, &sem):
		return permatrix.Errorf(permatrix.EINVALID, "%s: expected %s, got JSON %s", field(sem.JSONPointer), typeName(sem.GoType), kindName(sem.JSONKind))
	default:
		return permatrix.Errorf(permatrix.EINVALID, "malformed JSON: %v", err)
	}
}

// field names a place in the body the way clients write it: "scope.type",
// "permissions[0]", "body" for the whole body.
func field(p jsontext.Pointer) string {
	var b strings.Builder
	for tok := range p.Tokens() {
		if _, err := strconv.ParseUint(tok, 10, 31); err == nil {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	if b.Len() == 0 {
		return "body"
	}
	return b.String()
}

// where is field for an object: "the body" or "object scope".
func where(p jsontext.Pointer) string {
	if p == "" {
		return "the body"
	}
	return "object " + field(p)
}

// knownKeysHint lists the keys an object of type t takes, and points out a
// case variant of one of them.
func knownKeysHint(t reflect.Type, key string) string {
	names := jsonNames(t)
	if len(names) == 0 {
		return ""
	}
	for _, n := range names {
		if strings.EqualFold(n, key) {
			return fmt.Sprintf(" (keys are case-sensitive: did you mean %q?)", n)
		}
	}
	return " (known keys: " + strings.Join(names, ", ") + ")"
}

// jsonNames are the JSON keys of struct type t, sorted, with the fields of
// embedded structs (which json v2 inlines) included.
func jsonNames(t reflect.Type) []string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	var names []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-" || (!f.IsExported() && !f.Anonymous):
		case f.Anonymous && name == "":
			names = append(names, jsonNames(f.Type)...)
		case name == "":
			names = append(names, f.Name)
		default:
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// typeName says what a Go type expects, in JSON words.
func typeName(t reflect.Type) string {
	if t == nil {
		return "another value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		if t == reflect.TypeFor[jsontext.Value]() {
			return "a JSON value"
		}
		return "an array of " + strings.TrimPrefix(strings.TrimPrefix(typeName(t.Elem()), "a "), "an ") + "s"
	case reflect.Map, reflect.Struct:
		return "an object"
	default:
		return "a JSON value"
	}
}

// kindName names a JSON kind as a client would.
func kindName(k jsontext.Kind) string {
	switch k {
	case 'n':
		return "null"
	case 't', 'f':
		return "boolean"
	case '"':
		return "string"
	case '0':
		return "number"
	case '{':
		return "object"
	case '[':
		return "array"
	default:
		return "value"
	}
}
