package store

import (
	"bytes"
	"unicode/utf8"
)

// decodeGrantLeaf decodes a grant's leaf when it is in the form this
// package writes it (json.Marshal of a grantLeaf): one object, no
// whitespace, each key once and spelled exactly, string values without
// escapes. ok is false for anything else — which json.Unmarshal then
// decodes, so the two never differ on what this one accepts. The open
// check decodes every grant of the store: json.Unmarshal was 85 % of it
// (a 1M-assignment store took 5 s to be ready).
func decodeGrantLeaf(v []byte) (l grantLeaf, ok bool) {
	d := leafDecoder{b: v}
	var seen uint8
	ok = d.object(func(key []byte) bool {
		var bit uint8
		var dst *string
		switch string(key) {
		case "kind":
			bit, dst = 1, &l.Kind
		case "role":
			bit, dst = 2, &l.Role
		case "permission":
			bit, dst = 4, &l.Permission
		case "via":
			bit, dst = 8, &l.Via
		case "assignment":
			bit, dst = 16, &l.Assignment
		case "scope":
			bit = 32
		default:
			return false
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		if dst != nil {
			s, ok := d.str()
			*dst = s
			return ok
		}
		var scopeSeen uint8
		return d.object(func(key []byte) bool {
			var bit uint8
			var dst *string
			switch string(key) {
			case "type":
				bit, dst = 1, &l.Scope.Type
			case "id":
				bit, dst = 2, &l.Scope.ID
			default:
				return false
			}
			if scopeSeen&bit != 0 {
				return false
			}
			scopeSeen |= bit
			s, ok := d.str()
			*dst = s
			return ok
		})
	})
	return l, ok && d.i == len(v)
}

// leafDecoder reads the canonical JSON decodeGrantLeaf accepts.
type leafDecoder struct {
	b []byte
	i int
}

// object reads {"k":v,...}, calling member after each key's colon to read
// its value.
func (d *leafDecoder) object(member func(key []byte) bool) bool {
	if !d.byte('{') {
		return false
	}
	if d.byte('}') {
		return true
	}
	for {
		key, ok := d.raw()
		if !ok || !d.byte(':') || !member(key) {
			return false
		}
		if d.byte('}') {
			return true
		}
		if !d.byte(',') {
			return false
		}
	}
}

// str reads a string without escapes, of valid UTF-8.
func (d *leafDecoder) str() (string, bool) {
	raw, ok := d.raw()
	if !ok || !utf8.Valid(raw) {
		return "", false
	}
	return string(raw), true
}

// raw reads a string's bytes: none of them a backslash or a control
// character.
func (d *leafDecoder) raw() ([]byte, bool) {
	if !d.byte('"') {
		return nil, false
	}
	end := bytes.IndexByte(d.b[d.i:], '"')
	if end < 0 {
		return nil, false
	}
	s := d.b[d.i : d.i+end]
	for _, c := range s {
		if c == '\\' || c < 0x20 {
			return nil, false
		}
	}
	d.i += end + 1
	return s, true
}

func (d *leafDecoder) byte(c byte) bool {
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// appendGrantLeaf appends json.Marshal(l) to dst, byte for byte, without
// the encoder (an interface, its result's copy: two allocations an
// assignment created). ok is false, dst as given, where a string holds a
// byte json.Marshal escapes: the caller marshals that leaf.
func appendGrantLeaf(dst []byte, l grantLeaf) (_ []byte, ok bool) {
	for _, s := range [...]string{l.Kind, l.Role, l.Permission, l.Scope.Type, l.Scope.ID, l.Via, l.Assignment} {
		if !plainJSON(s) {
			return dst, false
		}
	}
	dst = append(append(append(dst, `{"kind":"`...), l.Kind...), '"')
	if l.Role != "" {
		dst = append(append(append(dst, `,"role":"`...), l.Role...), '"')
	}
	if l.Permission != "" {
		dst = append(append(append(dst, `,"permission":"`...), l.Permission...), '"')
	}
	dst = append(append(append(dst, `,"scope":{"type":"`...), l.Scope.Type...), '"')
	if l.Scope.ID != "" {
		dst = append(append(append(dst, `,"id":"`...), l.Scope.ID...), '"')
	}
	dst = append(append(append(dst, `},"via":"`...), l.Via...), '"')
	dst = append(append(append(dst, `,"assignment":"`...), l.Assignment...), `"}`...)
	return dst, true
}

// grantLeafLen is how many bytes appendGrantLeaf appends of l (when ok).
func grantLeafLen(l grantLeaf) int {
	n := len(`{"kind":"","scope":{"type":""},"via":"","assignment":""}`) + len(l.Kind) + len(l.Scope.Type) + len(l.Via) + len(l.Assignment)
	if l.Role != "" {
		n += len(`,"role":""`) + len(l.Role)
	}
	if l.Permission != "" {
		n += len(`,"permission":""`) + len(l.Permission)
	}
	if l.Scope.ID != "" {
		n += len(`,"id":""`) + len(l.Scope.ID)
	}
	return n
}

// plainJSON reports whether json.Marshal writes s as it is between its
// quotes: printable ASCII other than the quote, the backslash and the
// three it escapes for HTML (<, >, &).
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20, c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}
