package permatrix

import "encoding/json"

// A check's context carries the few facts some actions need beside who,
// what and where (the catalogs' context_keys, GET /v1/systems): today at
// most four keys in one system (blueprism), the deepest a list of kinds
// under one key (depth 2), a dozen values in all. Its shape is bounded
// far above that — 8 times the keys, twice the depth, 20 times the
// values — because it is what a client sends the most of for the least:
// each value costs the server ~100 bytes as a Go value and again as an
// OPA term, and every rule that iterates it runs once per value, so a
// 1 MiB context of 330,000 {} was ~30 MB and seconds of evaluation
// (docs/security.md). data.permatrix.errors holds the same bounds, in the
// same words, for the Data API.
const (
	// MaxContextKeys bounds the keys of a check's context.
	MaxContextKeys = 32
	// MaxContextDepth bounds how deep a context nests: a key's value is at
	// depth 1, an element or member of it at depth 2, and so on.
	MaxContextDepth = 4
	// MaxContextValues bounds the values a context holds at every depth:
	// each key's value, and each element and member inside it.
	MaxContextValues = 256
	// MaxNumberLength bounds a number of a context, or of the Data API's
	// input without the admin token, as written (its digits, sign, point
	// and exponent). No context declares a number; a uint64 is 20
	// characters, a float64 written exactly about 24. The rules that
	// compare or print a number make it a big.Int or big.Float at a cost
	// quadratic in its digits: one number of a million digits was 2 GiB
	// and seconds of evaluation.
	MaxNumberLength = 64
)

// NumberTooLong is the refusal of a number longer than MaxNumberLength
// in what (the context, the input).
func NumberTooLong(what string) error {
	return Errorf(EINVALID, "%s holds a number of more than %d characters", what, MaxNumberLength)
}

// ContextShape counts a check's context as it is read, token by token (the
// HTTP API, before any value is built), or walked (ValidateContext): the
// one rule wherever a context comes from. The zero value is an empty
// context.
type ContextShape struct{ keys, values int }

// Add counts one value of the context at depth (1: a key's value) and
// refuses the first past a bound (EINVALID).
func (s *ContextShape) Add(depth int) error {
	if depth == 1 {
		s.keys++
	}
	s.values++
	switch {
	case s.keys > MaxContextKeys:
		return Errorf(EINVALID, "context holds more than %d keys", MaxContextKeys)
	case depth > MaxContextDepth:
		return Errorf(EINVALID, "context nests deeper than %d levels", MaxContextDepth)
	case s.values > MaxContextValues:
		return Errorf(EINVALID, "context holds more than %d values", MaxContextValues)
	}
	return nil
}

// ValidateContext checks a context already built (a Go caller's check, a
// route's) against the bounds; past more than one, the keys are named
// first, then the depth, then the values.
func ValidateContext(ctx map[string]any) error {
	if len(ctx) > MaxContextKeys {
		return Errorf(EINVALID, "context holds more than %d keys", MaxContextKeys)
	}
	var s ContextShape
	var tooDeep, tooMany error
	var walk func(v any, depth int)
	walk = func(v any, depth int) {
		if tooDeep != nil {
			return
		}
		if err := s.Add(depth); err != nil {
			if depth > MaxContextDepth {
				tooDeep = err
				return
			}
			if tooMany == nil {
				tooMany = err
			}
		}
		switch v := v.(type) {
		case json.Number:
			if len(v) > MaxNumberLength && tooMany == nil {
				tooMany = NumberTooLong("context")
			}
		case map[string]any:
			for _, e := range v {
				walk(e, depth+1)
			}
		case []any:
			for _, e := range v {
				walk(e, depth+1)
			}
		}
	}
	for _, v := range ctx {
		walk(v, 1)
	}
	if tooDeep != nil {
		return tooDeep
	}
	return tooMany
}
