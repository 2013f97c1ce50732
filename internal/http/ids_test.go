package http_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// checkRefusal is a check as a JSON object and what POST /v1/check
// answers it: "" a decision, else the message of its 400. data is the
// Data API's wording where it differs from /v1/check's ("" the same).
type checkRefusal struct {
	name, check, refusal, data string
}

// withCheck is the JSON of a check of celonis-task-mining's edit_users by
// alice, with the given members added or replaced (raw JSON values).
func withCheck(members ...string) string {
	fields := map[string]string{"subject": `"alice"`, "system": `"celonis-task-mining"`, "action": `"edit_users"`}
	order := []string{"subject", "system", "action"}
	for i := 0; i+1 < len(members); i += 2 {
		if _, ok := fields[members[i]]; !ok {
			order = append(order, members[i])
		}
		fields[members[i]] = members[i+1]
	}
	parts := []string{}
	for _, k := range order {
		if v := fields[k]; v != "-" { // "-": the member left out
			parts = append(parts, `"`+k+`":`+v)
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// jsonString is s as a JSON string.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// subjectRefusals are the subjects permatrix.ValidID takes and refuses:
// over 256 bytes, counted in bytes; a C0 control character or DEL.
func subjectRefusals() []checkRefusal {
	const invalid = "subject must be 1 to 256 bytes without control characters"
	ids := map[string]string{ // id: refusal
		"alice":                        "",
		strings.Repeat("a", 256):       "",
		strings.Repeat("a", 257):       invalid,
		strings.Repeat("é", 128):       "",      // 256 bytes, 128 characters
		strings.Repeat("é", 128) + "a": invalid, // 257 bytes, 129 characters
		strings.Repeat("é", 127) + "a": "",      // 255 bytes
		strings.Repeat("€", 85) + "a":  "",      // 256 bytes, 86 characters
		strings.Repeat("€", 85) + "ab": invalid, // 257 bytes
		strings.Repeat("😀", 64):        "",      // 256 bytes, 64 characters
		strings.Repeat("😀", 64) + "a":  invalid,
		"a\u0080b":                     "", // a C1 control is two bytes, neither one Go refuses
		"a b~":                         "",
		"":                             "subject is required",
	}
	for c := 0; c < 0x20; c++ {
		ids["a"+string(rune(c))+"b"] = invalid
	}
	ids["a\x7fb"] = invalid
	var out []checkRefusal
	for id, refusal := range ids {
		out = append(out, checkRefusal{name: "subject " + jsonString(id), check: withCheck("subject", jsonString(id)), refusal: refusal})
	}
	return out
}

// nameRefusals: a check's subject, system and action, left out, empty or
// not strings, and a system or action the catalog does not have.
var nameRefusals = []checkRefusal{
	{"no subject", withCheck("subject", "-"), "subject is required", ""},
	{"subject null", withCheck("subject", "null"), "subject: expected a string, got null (leave the key out instead)", ""},
	{"subject a number", withCheck("subject", "7"), "subject: expected a string, got JSON number", ""},
	{"no system", withCheck("system", "-"), "system is required", ""},
	{"system empty", withCheck("system", `""`), "system is required", ""},
	{"system a number", withCheck("system", "7"), "system: expected a string, got JSON number", ""},
	{"system unknown", withCheck("system", `"nope"`), `unknown system "nope": the systems are blueprism, celonis-storage-manager, celonis-studio, celonis-task-mining, uipath-orchestrator, uipath-task-mining-cloud, uipath-task-mining-suite`, ""},
	{"no action", withCheck("action", "-"), "action is required", ""},
	{"action empty", withCheck("action", `""`), "action is required", ""},
	{"action an array", withCheck("action", `["x"]`), "action: expected a string, got JSON array", ""},
	{"action null", withCheck("action", "null"), "action: expected a string, got null (leave the key out instead)", ""},
	{"action unknown", withCheck("action", `"fly"`), `unknown action "fly" for system "celonis-task-mining"`, ""},
}

// resourceRefusals: a check's resource (permatrix.Scope.Validate and
// pdp.validScope): not an object, its type left out, not a string or one
// the system does not have (a colon in it too), its id missing, invalid or
// given with the service scope.
var resourceRefusals = []checkRefusal{
	{"resource null", withCheck("resource", "null"), "", ""},
	{"resource at service", withCheck("resource", `{"type":"service"}`), "", ""},
	{"resource at service, empty id", withCheck("resource", `{"type":"service","id":""}`), "", ""},
	{"resource a project", withCheck("resource", `{"type":"project","id":"p1"}`), "", ""},
	{"resource a 256-byte id", withCheck("resource", `{"type":"project","id":"`+strings.Repeat("é", 128)+`"}`), "", ""},
	{"resource a string", withCheck("resource", `"p1"`), "resource: expected an object, got JSON string", ""},
	{"resource false", withCheck("resource", "false"), "resource: expected an object, got JSON boolean", ""},
	{"resource an array", withCheck("resource", `[]`), "resource: expected an object, got JSON array", ""},
	{"resource empty", withCheck("resource", "{}"), "resource.type is required", ""},
	{"resource without a type", withCheck("resource", `{"id":"p"}`), "resource.type is required", ""},
	{"resource.type empty", withCheck("resource", `{"type":"","id":"p"}`), "resource.type is required", ""},
	{"resource.type null", withCheck("resource", `{"type":null}`), "resource.type: expected a string, got null (leave the key out instead)", ""},
	{"resource.type a number", withCheck("resource", `{"type":3}`), "resource.type: expected a string, got JSON number", ""},
	{"resource.type with a colon", withCheck("resource", `{"type":"project:p","id":"x"}`),
		`system "celonis-task-mining" has no resource type "project:p" (has: [service project bucket])`, ""},
	{"resource.type unknown", withCheck("resource", `{"type":"galaxy","id":"x"}`),
		`system "celonis-task-mining" has no resource type "galaxy" (has: [service project bucket])`, ""},
	{"resource.type of another system", withCheck("resource", `{"type":"space","id":"x"}`),
		`system "celonis-task-mining" has no resource type "space" (has: [service project bucket])`, ""},
	{"resource.type unknown, at service", withCheck("system", `"uipath-orchestrator"`, "action", `"ml_logs_view"`, "resource", `{"type":"project","id":"x"}`),
		`system "uipath-orchestrator" has no resource type "project" (has: [service])`, ""},
	{"resource.id left out", withCheck("resource", `{"type":"project"}`),
		`resource.id is required for resource.type "project": 1 to 256 bytes without control characters`, ""},
	{"resource.id empty", withCheck("resource", `{"type":"project","id":""}`),
		`resource.id is required for resource.type "project": 1 to 256 bytes without control characters`, ""},
	{"resource.id over 256 bytes", withCheck("resource", `{"type":"bucket","id":"`+strings.Repeat("é", 128)+`a"}`),
		`resource.id is required for resource.type "bucket": 1 to 256 bytes without control characters`, ""},
	{"resource.id with a control character", withCheck("resource", `{"type":"project","id":"a\u0001"}`),
		`resource.id is required for resource.type "project": 1 to 256 bytes without control characters`, ""},
	{"resource.id with DEL", withCheck("resource", `{"type":"project","id":"a\u007f"}`),
		`resource.id is required for resource.type "project": 1 to 256 bytes without control characters`, ""},
	{"resource.id null", withCheck("resource", `{"type":"project","id":null}`), "resource.id: expected a string, got null (leave the key out instead)", ""},
	{"resource.id a number", withCheck("resource", `{"type":"project","id":5}`), "resource.id: expected a string, got JSON number", ""},
	{"resource.id null at service", withCheck("resource", `{"type":"service","id":null}`), "resource.id: expected a string, got null (leave the key out instead)", ""},
	{"resource.id at service", withCheck("resource", `{"type":"service","id":"p1"}`),
		`resource.id is not allowed with resource.type "service" (the whole system has no id)`, ""},
}

// groupRefusals: a check's asserted groups (pdp.ValidateCheck): an array of
// at most 256 ids, each as a subject's.
func groupRefusals() []checkRefusal {
	groups := func(n int, id string) string {
		b, _ := json.Marshal(slices.Repeat([]string{id}, n))
		return string(b)
	}
	return []checkRefusal{
		{"groups null", withCheck("groups", "null"), "", ""},
		{"groups empty", withCheck("groups", "[]"), "", ""},
		{"256 groups", withCheck("groups", groups(256, "g")), "", ""},
		{"257 groups", withCheck("groups", groups(257, "g")), "groups holds 257 group ids, over the limit of 256", ""},
		{"groups a string", withCheck("groups", `"g"`), "groups: expected an array of strings, got JSON string", ""},
		{"groups an object", withCheck("groups", `{}`), "groups: expected an array of strings, got JSON object", ""},
		{"a group empty", withCheck("groups", `[""]`), "groups[0] is required", ""},
		{"a group null", withCheck("groups", `["g",null]`), "groups[1]: expected a string, got null (leave the key out instead)", ""},
		{"a group a number", withCheck("groups", `["g",1]`), "groups[1]: expected a string, got JSON number", ""},
		{"a group with DEL", withCheck("groups", `["g","a\u007f"]`), "groups[1] must be 1 to 256 bytes without control characters", ""},
		{"a group over 256 bytes", withCheck("groups", `["g","g","`+strings.Repeat("€", 85)+`ab"]`), "groups[2] must be 1 to 256 bytes without control characters", ""},
		{"a group of 256 bytes", withCheck("groups", `["`+strings.Repeat("€", 85)+`a"]`), "", ""},
		{"the first bad group", withCheck("groups", `["g","","a\u0000"]`), "groups[1] is required", ""},
	}
}

// shapeRefusals: a check that is no object, and its context and
// consistency token of the wrong kinds (the strict decoding of the body).
// The Data API's input is the check: its words say "the input" where
// /v1/check's say "the body". (No check: an empty body, no input.)
var shapeRefusals = []checkRefusal{
	{"no check", "", "request body is empty: a JSON object is required", "an input is required: a JSON object"},
	{"a string", `"alice"`, "the body must be a JSON object, got string", "the input must be a JSON object, got string"},
	{"an array", `[1,2]`, "the body must be a JSON object, got array", "the input must be a JSON object, got array"},
	{"a number", `42`, "the body must be a JSON object, got number", "the input must be a JSON object, got number"},
	{"null", `null`, "the body must be a JSON object, got null", "an input is required: a JSON object"}, // OPA: {"input":null} is no input
	{"context null", withCheck("context", "null"), "", ""},
	{"context empty", withCheck("context", "{}"), "", ""},
	{"context a string", withCheck("context", `"x"`), "context: expected an object, got JSON string", ""},
	{"context an array", withCheck("context", `[]`), "context: expected an object, got JSON array", ""},
	// The context's shape: 32 keys, depth 4, 256 values at most
	// (permatrix.ContextShape), refused as it is read.
	{"context of 32 keys", withCheck("context", contextKeys(32)), "", ""},
	{"context of 33 keys", withCheck("context", contextKeys(33)), "context holds more than 32 keys", ""},
	{"context 4 deep", withCheck("context", `{"a":[{"b":[true]}]}`), "", ""},
	{"context 5 deep", withCheck("context", `{"a":[{"b":[[true]]}]}`), "context nests deeper than 4 levels", ""},
	{"context of 256 values", withCheck("context", `{"a":[`+strings.Repeat("{},", 254)+`{}]}`), "", ""},
	{"context of 257 values", withCheck("context", `{"a":[`+strings.Repeat("{},", 255)+`{}]}`), "context holds more than 256 values", ""},
	{"context of 257 values in objects", withCheck("context", `{"a":{`+contextMembers(256)+`}}`), "context holds more than 256 values", ""},
	// A number as long as a context may hold (the Data API's input holds
	// it too); a longer one is refused by both (TestFreeFormBodiesBounded).
	{"context number of 64 characters", withCheck("context", `{"a":[`+strings.Repeat("9", 64)+`]}`), "", ""},
	// false and null are values like any other, at every depth.
	{"context 5 deep to false", withCheck("context", `{"a":[{"b":[[false]]}]}`), "context nests deeper than 4 levels", ""},
	{"context 5 deep to null", withCheck("context", `{"a":[[[[null]]]]}`), "context nests deeper than 4 levels", ""},
	{"context of 257 false", withCheck("context", `{"a":[`+strings.Repeat("false,", 255)+`false]}`), "context holds more than 256 values", ""},
	{"context of 257 values 4 deep", withCheck("context", `{"a":[[[`+strings.Repeat("null,", 254)+`null]]]}`), "context holds more than 256 values", ""},
	// Past the depth, the refusal is the one /v1/check meets first.
	{"context 4,000 deep", withCheck("context", `{"a":`+strings.Repeat("[", 4000)+strings.Repeat("]", 4000)+`}`), "context nests deeper than 4 levels", ""},
	{"min_revision null", withCheck("min_revision", "null"), "", ""},
	{"min_revision 0", withCheck("min_revision", "0"), "", ""},
	{"min_revision 1", withCheck("min_revision", "1"), "", ""},
	{"min_revision a string", withCheck("min_revision", `"1"`), "min_revision: expected a whole number, got JSON string", ""},
	{"min_revision negative", withCheck("min_revision", `-1`), "min_revision: expected a whole number, got JSON number", ""},
	{"min_revision -0", withCheck("min_revision", `-0`), "min_revision: expected a whole number, got JSON number", ""},
	{"min_revision a fraction", withCheck("min_revision", `1.5`), "min_revision: expected a whole number, got JSON number", ""},
	{"min_revision 1.0", withCheck("min_revision", `1.0`), "min_revision: expected a whole number, got JSON number", ""},
	{"min_revision 1e0", withCheck("min_revision", `1e0`), "min_revision: expected a whole number, got JSON number", ""},
	{"min_revision 2^64", withCheck("min_revision", `18446744073709551616`), "min_revision: expected a whole number, got JSON number", ""},
}

// contextKeys is a context of n keys.
func contextKeys(n int) string {
	return "{" + contextMembers(n) + "}"
}

// contextMembers are n members "k0":0, "k1":1, ….
func contextMembers(n int) string {
	ms := make([]string, n)
	for i := range ms {
		ms[i] = fmt.Sprintf("%q:%d", fmt.Sprint("k", i), i)
	}
	return strings.Join(ms, ",")
}

// keyRefusals: a key a check does not have, in the check or its resource
// (the strict decoding: keys are case-sensitive). A misspelt "resource"
// was a check at the service scope.
var keyRefusals = []checkRefusal{
	{"a misspelt resource", withCheck("resourse", `{"type":"project","id":"p"}`),
		`unknown key "resourse" in the body (known keys: action, context, groups, min_revision, resource, subject, system)`,
		`unknown key "resourse" in the input (known keys: action, context, groups, min_revision, resource, subject, system)`},
	{"Resource", withCheck("Resource", `{"type":"project","id":"p"}`),
		`unknown key "Resource" in the body (keys are case-sensitive: did you mean "resource"?)`,
		`unknown key "Resource" in the input (keys are case-sensitive: did you mean "resource"?)`},
	{"an input in the input", withCheck("input", "1"),
		`unknown key "input" in the body (known keys: action, context, groups, min_revision, resource, subject, system)`,
		`unknown key "input" in the input (known keys: action, context, groups, min_revision, resource, subject, system)`},
	{"a key in the resource", withCheck("resource", `{"type":"project","id":"p","x":1}`),
		`unknown key "x" in object resource (known keys: id, type)`, ""},
	{"Type in the resource", withCheck("resource", `{"Type":"project","id":"p"}`),
		`unknown key "Type" in object resource (keys are case-sensitive: did you mean "type"?)`, ""},
	{"ID in the resource", withCheck("resource", `{"type":"service","ID":"p"}`),
		`unknown key "ID" in object resource (keys are case-sensitive: did you mean "id"?)`, ""},
	{"two keys", withCheck("aa", "1", "zz", "1"),
		`unknown key "aa" in the body (known keys: action, context, groups, min_revision, resource, subject, system)`,
		`unknown key "aa" in the input (known keys: action, context, groups, min_revision, resource, subject, system)`},
	{"any key in the context", withCheck("context", `{"x":1,"Resource":{}}`), "", ""},
}

// TestDataAPIRefusesTheIdsCheckRefuses: every check POST /v1/check
// refuses with 400 — pdp.ValidateCheck, what it calls, and the strict
// decoding of its body — POST /v1/data/permatrix/decision, which takes any
// input, decides with the refusal in its errors, worded alike, and allow
// false (the policies' data.permatrix.errors); every check /v1/check
// decides, the Data API decides alike, without errors.
func TestDataAPIRefusesTheIdsCheckRefuses(t *testing.T) {
	base := serveOn(t, newDocTestServer(t))
	// alice may edit users: a check /v1/check allows is allowed by the
	// Data API too, not only denied by both.
	if code, raw := post(t, base+"/v1/assignments", docTestToken,
		`{"subject":"user:alice","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"service"}}`); code != http.StatusCreated {
		t.Fatalf("assigning: %d %s", code, raw)
	}
	cases := slices.Concat(subjectRefusals(), nameRefusals, resourceRefusals, groupRefusals(), shapeRefusals, keyRefusals)
	allowed := 0
	for _, c := range cases {
		code, raw := post(t, base+"/v1/check", "", c.check)
		var checked struct {
			Allow bool `json:"allow"`
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(raw, &checked); err != nil {
			t.Fatalf("%s: /v1/check: %d %s", c.name, code, raw)
		}
		switch {
		case c.refusal == "" && code != http.StatusOK:
			t.Errorf("%s: /v1/check: %d %s, want 200", c.name, code, raw)
		case c.refusal != "" && (code != http.StatusBadRequest || checked.Error.Message != c.refusal):
			t.Errorf("%s: /v1/check: %d %s, want 400 %q", c.name, code, raw, c.refusal)
		}
		body := `{"input":` + c.check + `}`
		if c.check == "" {
			body = `{}`
		}
		code, raw = post(t, base+"/v1/data/permatrix/decision", "", body)
		var got struct {
			Result struct {
				Allow  *bool    `json:"allow"`
				Errors []string `json:"errors"`
			} `json:"result"`
		}
		if code != http.StatusOK || json.Unmarshal(raw, &got) != nil || got.Result.Allow == nil {
			t.Errorf("%s: Data API: %d %s", c.name, code, raw)
			continue
		}
		if c.refusal == "" {
			if len(got.Result.Errors) > 0 || *got.Result.Allow != checked.Allow {
				t.Errorf("%s: Data API %s, /v1/check allow %v", c.name, raw, checked.Allow)
			}
			if checked.Allow {
				allowed++
			}
			continue
		}
		want := c.refusal
		if c.data != "" {
			want = c.data
		}
		if *got.Result.Allow || !slices.Contains(got.Result.Errors, want) {
			t.Errorf("%s: Data API %s, want allow false and the error %q", c.name, raw, want)
		}
	}
	if allowed == 0 {
		t.Error("no check was allowed: the comparison of decisions compared denies only")
	}
}
