package http

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"sync"

	"github.com/permatrix/permatrix"
)

// appendDecision appends d as the JSON the server's encoder writes for it
// (jsonSerializer: encoding/json, no HTML escaping, a newline after), byte
// for byte, without reflection: the answer of every check. Its values are
// the policies' (strings, booleans, numbers, objects and arrays of them);
// a string that needs escaping and any other Go value are written by
// encoding/json itself, so the two cannot disagree on them.
func appendDecision(b []byte, d *permatrix.Decision) ([]byte, error) {
	b = append(b, `{"allow":`...)
	b = strconv.AppendBool(b, d.Allow)
	if d.DecisionID != "" {
		b = append(b, `,"decision_id":`...)
		b = appendJSONString(b, d.DecisionID)
	}
	b = append(b, `,"revision":`...)
	b = strconv.AppendUint(b, d.Revision, 10)
	var err error
	for _, f := range [2]struct {
		key  string
		list []map[string]any
	}{{`,"reasons":`, d.Reasons}, {`,"missing":`, d.Missing}} {
		b = append(b, f.key...)
		if f.list == nil {
			b = append(b, "null"...)
			continue
		}
		b = append(b, '[')
		for i, m := range f.list {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendJSONObject(b, m); err != nil {
				return nil, err
			}
		}
		b = append(b, ']')
	}
	if len(d.Errors) > 0 {
		b = append(b, `,"errors":[`...)
		for i, e := range d.Errors {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, e)
		}
		b = append(b, ']')
	}
	return append(b, "}\n"...), nil
}

// appendJSONObject appends m with its keys sorted, as encoding/json does.
func appendJSONObject(b []byte, m map[string]any) ([]byte, error) {
	if m == nil {
		return append(b, "null"...), nil
	}
	var buf [8]string
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	var err error
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		if b, err = appendJSONValue(b, m[k]); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

func appendJSONValue(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendJSONString(b, x), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case map[string]any:
		return appendJSONObject(b, x)
	case []any:
		if x == nil {
			return append(b, "null"...), nil
		}
		b = append(b, '[')
		var err error
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendJSONValue(b, e); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	}
	return appendEncoded(b, v) // json.Number included: encoding/json checks it
}

// appendJSONString appends s quoted; one that needs escaping is escaped
// by encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
			b, _ = appendEncoded(b, s) // a string always encodes
			return b
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendEncoded appends v as jsonSerializer's encoder writes it, without
// the newline.
func appendEncoded(b []byte, v any) ([]byte, error) {
	buf := bytes.NewBuffer(b)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	out := buf.Bytes()
	return out[:len(out)-1], nil
}

// decisionBuffers are the buffers decisions are encoded in.
var decisionBuffers = sync.Pool{New: func() any { return new([]byte) }}

// maxKeptDecisionBuffer is the largest buffer put back in the pool: a
// decision with thousands of reasons does not pin its buffer.
const maxKeptDecisionBuffer = 16 << 10
