package permatrix_test

import (
	"encoding/json"
	"io/fs"
	"reflect"
	"strings"
	"testing"

	"github.com/permatrix/permatrix"
)

func TestCheckInput(t *testing.T) {
	c := permatrix.Check{Subject: "alice", System: "blueprism", Action: "view_resource",
		Resource: &permatrix.Scope{Type: "resource_group", ID: "g1"},
		Context:  map[string]any{"k": "v"}, Groups: []string{"ops", "eu"}, MinRevision: 7}
	want := map[string]any{
		"subject": "alice", "system": "blueprism", "action": "view_resource",
		"resource": map[string]any{"type": "resource_group", "id": "g1"},
		"context":  map[string]any{"k": "v"},
		"groups":   []any{"ops", "eu"},
	}
	if got := c.Input(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Input() = %#v\nwant %#v", got, want)
	}
	// The consistency token is not the policies' business.
	if _, ok := c.Input()["min_revision"]; ok {
		t.Fatal("min_revision is in the input")
	}
	bare := permatrix.Check{Subject: "alice", System: "s", Action: "a"}.Input()
	for _, k := range []string{"resource", "context", "groups"} {
		if _, ok := bare[k]; ok {
			t.Errorf("a check without %s has %s in its input", k, k)
		}
	}
	svc := permatrix.Check{Resource: &permatrix.ServiceScope}.Input()["resource"]
	if !reflect.DeepEqual(svc, map[string]any{"type": "service"}) {
		t.Errorf("service resource = %#v, want no id key", svc)
	}
}

func TestCheckOfRoundTrip(t *testing.T) {
	for _, c := range []permatrix.Check{
		{Subject: "alice", System: "s", Action: "a"},
		{Subject: "bob", System: "s", Action: "a", Resource: &permatrix.Scope{Type: "project", ID: "p1"}},
		{Subject: "bob", System: "s", Action: "a", Resource: &permatrix.ServiceScope, Groups: []string{"g"},
			Context: map[string]any{"n": 1.5, "list": []any{"x"}}},
	} {
		// Through JSON, as a decision log line carries it.
		raw, err := json.Marshal(c.Input())
		if err != nil {
			t.Fatal(err)
		}
		var in map[string]any
		if err := json.Unmarshal(raw, &in); err != nil {
			t.Fatal(err)
		}
		got, err := permatrix.CheckOf(in)
		if err != nil {
			t.Fatalf("CheckOf(%s): %v", raw, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("CheckOf(%s) = %+v, want %+v", raw, got, c)
		}
	}
}

// CheckOf reads an input as the policies read it: input.subject is the key
// "subject", exactly. The Data API logs evaluations of
// data.permatrix.decision with whatever input was given; encoding/json
// would read {"Subject": "alice"} (which the policies decided as a check
// with no subject) as alice's check, and replay would re-decide a check
// nobody asked.
func TestCheckOfReadsKeysAsThePoliciesDo(t *testing.T) {
	for _, in := range []map[string]any{
		{"Subject": "alice", "System": "s", "Action": "a"},
		{"SUBJECT": "alice"},
		{"ſubject": "alice"}, // U+017F folds to "s" in encoding/json
		{"subject": "", "Subject": "alice"},
	} {
		c, err := permatrix.CheckOf(in)
		if err != nil {
			continue // refusing is fine too
		}
		if c.Subject != "" || c.System != "" || c.Action != "" {
			t.Errorf("CheckOf(%v) = %+v: read a key the policies do not", in, c)
		}
	}
	c, err := permatrix.CheckOf(map[string]any{"subject": "alice", "system": "s", "action": "a",
		"resource": map[string]any{"Type": "project", "type": "service"}})
	if err != nil || c.Resource == nil || c.Resource.Type != "service" {
		t.Fatalf("CheckOf: %+v, %v: the resource is input.resource.type", c, err)
	}
}

func TestCheckOfRefusesOtherShapes(t *testing.T) {
	for _, in := range []map[string]any{
		{"subject": 5},
		{"resource": "project:p1"},
		{"groups": "admins"},
		{"groups": []any{"a", 1}},
		{"context": []any{}},
		{"min_revision": -1},
	} {
		if c, err := permatrix.CheckOf(in); err == nil {
			t.Errorf("CheckOf(%v) = %+v, want an error", in, c)
		}
	}
	// Keys the check does not have are not its business (the policies
	// ignore them too).
	if c, err := permatrix.CheckOf(map[string]any{"subject": "a", "extra": true}); err != nil || c.Subject != "a" {
		t.Errorf("CheckOf with an extra key: %+v, %v", c, err)
	}
}

func TestValues(t *testing.T) {
	a := permatrix.Assignment{ID: "a1", Subject: "user:alice", System: "s", Permission: "p", Scope: permatrix.Scope{Type: "project", ID: "p1"}}
	want := map[string]any{"id": "a1", "subject": "user:alice", "system": "s", "permission": "p",
		"scope": map[string]any{"type": "project", "id": "p1"}}
	if got := a.Value(); !reflect.DeepEqual(got, want) {
		t.Errorf("Assignment.Value() = %#v", got)
	}
	if a.Kind() != "permission" {
		t.Errorf("Kind() = %q", a.Kind())
	}
	a.Role, a.Permission = "admin", ""
	if v := a.Value(); v["role"] != "admin" || v["permission"] != nil || a.Kind() != "role" {
		t.Errorf("role assignment: Value() = %#v, Kind() = %q", v, a.Kind())
	}
	if got := (permatrix.Role{Permissions: []string{"x", "y"}}).Value(); !reflect.DeepEqual(got, map[string]any{"permissions": []any{"x", "y"}}) {
		t.Errorf("Role.Value() = %#v", got)
	}
	if got := (permatrix.Role{}).Value(); !reflect.DeepEqual(got, map[string]any{"permissions": []any{}}) {
		t.Errorf("Role{}.Value() = %#v: the policies need an array, not null", got)
	}
	if got := (permatrix.Project{CreatedBy: "alice"}).Value(); !reflect.DeepEqual(got, map[string]any{"created_by": "alice", "kind": ""}) {
		t.Errorf("Project.Value() = %#v", got)
	}
	if got := (permatrix.Membership{Group: "g", User: "u"}).Value(); !reflect.DeepEqual(got, map[string]any{"group": "g", "user": "u"}) {
		t.Errorf("Membership.Value() = %#v", got)
	}
	if !permatrix.ServiceScope.IsService() || (permatrix.Scope{Type: "Service"}).IsService() {
		t.Error("IsService is exact")
	}
}

func TestAssignmentFilterMatch(t *testing.T) {
	a := permatrix.Assignment{Subject: "user:alice", System: "s", Role: "r", Scope: permatrix.Scope{Type: "project", ID: "p1"}}
	for f, want := range map[permatrix.AssignmentFilter]bool{
		{}:                                   true,
		{Subject: "user:alice"}:              true,
		{Subject: "user:Alice"}:              false,
		{Subject: "alice"}:                   false,
		{System: "s", ScopeType: "project"}:  true,
		{ScopeType: "service"}:               false,
		{ScopeID: "p1"}:                      true,
		{ScopeID: "p2"}:                      false,
		{System: "s", Limit: 1, Cursor: "z"}: true, // Limit and Cursor are not Match's
	} {
		if got := f.Match(a); got != want {
			t.Errorf("%+v.Match = %v, want %v", f, got, want)
		}
	}
}

func TestCustomRolesJSON(t *testing.T) {
	for in, want := range map[string]permatrix.CustomRoles{
		`false`:                            {},
		`null`:                             {},
		`{"scopes":["service","project"]}`: {Enabled: true, Scopes: []string{"service", "project"}},
		`{}`:                               {Enabled: true},
	} {
		var c permatrix.CustomRoles
		if err := json.Unmarshal([]byte(in), &c); err != nil || !reflect.DeepEqual(c, want) {
			t.Errorf("%s: %+v, %v; want %+v", in, c, err, want)
		}
	}
	// Inside a catalog (whitespace around the value is the decoder's).
	var s permatrix.System
	if err := json.Unmarshal([]byte(`{"custom_roles" :  false , "id":"x"}`), &s); err != nil || s.CustomRoles.Enabled {
		t.Errorf("custom_roles false in an object: %+v, %v", s.CustomRoles, err)
	}
	for _, in := range []string{`true`, `"yes"`, `[]`, `1`, `{"scopes":"service"}`} {
		var c permatrix.CustomRoles
		if err := json.Unmarshal([]byte(in), &c); err == nil {
			t.Errorf("%s: accepted as %+v", in, c)
		}
	}
	for _, c := range []permatrix.CustomRoles{{}, {Enabled: true, Scopes: []string{"project"}}} {
		raw, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var back permatrix.CustomRoles
		if err := json.Unmarshal(raw, &back); err != nil || !reflect.DeepEqual(back, c) {
			t.Errorf("%+v → %s → %+v, %v", c, raw, back, err)
		}
	}
	if raw, _ := json.Marshal(permatrix.CustomRoles{}); string(raw) != "false" {
		t.Errorf("disabled custom roles marshal to %s, want false (the catalog form)", raw)
	}
}

// Every embedded catalog reads as a System with what the server needs of
// it; the catalog helpers answer from it.
func TestEmbeddedCatalogs(t *testing.T) {
	dirs, err := fs.ReadDir(permatrix.DefaultBundle, "systems")
	if err != nil {
		t.Fatal(err)
	}
	cat := permatrix.Catalog{}
	for _, d := range dirs {
		raw, err := fs.ReadFile(permatrix.DefaultBundle, "systems/"+d.Name()+"/data.json")
		if err != nil {
			t.Fatal(err)
		}
		var s permatrix.System
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatalf("%s: %v", d.Name(), err)
		}
		s.ID = d.Name()
		if s.Package == "" || len(s.Actions) == 0 || len(s.ScopeTypes) == 0 || !s.HasScopeType("service") {
			t.Errorf("%s: package %q, %d actions, scope types %v", d.Name(), s.Package, len(s.Actions), s.ScopeTypes)
		}
		if s.HasScopeType("Service") || s.HasScopeType("") {
			t.Errorf("%s: HasScopeType is not exact", d.Name())
		}
		ids := s.ActionIDs()
		if len(ids) != len(s.Actions) || !sortedStrings(ids) {
			t.Errorf("%s: ActionIDs() = %v", d.Name(), ids)
		}
		cat[s.ID] = &s
	}
	if ids := cat.IDs(); len(ids) != 7 || !sortedStrings(ids) || ids[0] != "blueprism" {
		t.Fatalf("Catalog.IDs() = %v", ids)
	}
	if !cat["blueprism"].CustomRoles.Enabled || cat["celonis-task-mining"].CustomRoles.Enabled {
		t.Error("custom roles: Blue Prism has them, Celonis Task Mining does not")
	}
}

func sortedStrings(s []string) bool {
	for i := 1; i < len(s); i++ {
		if strings.Compare(s[i-1], s[i]) >= 0 {
			return false
		}
	}
	return true
}

// FuzzCheckOf: any JSON object read as a check never panics, and a check
// read back from its own input is the same check.
func FuzzCheckOf(f *testing.F) {
	for _, s := range []string{
		`{"subject":"alice","system":"s","action":"a"}`,
		`{"subject":"alice","system":"s","action":"a","resource":{"type":"project","id":"p"},"groups":["g"],"context":{"k":[1,{"x":null}]}}`,
		`{"Subject":"alice"}`,
		`{"subject":"a","subject":"b"}`,
		`{"resource":null,"groups":null,"context":null}`,
		`{"min_revision":1e400}`,
		`{"subject":"\ud800"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var in map[string]any
		if json.Unmarshal([]byte(s), &in) != nil {
			return
		}
		c, err := permatrix.CheckOf(in)
		if err != nil {
			return
		}
		c.MinRevision = 0 // not part of the input
		raw, err := json.Marshal(c.Input())
		if err != nil {
			t.Fatalf("Input() of %+v: %v", c, err)
		}
		var again map[string]any
		if err := json.Unmarshal(raw, &again); err != nil {
			t.Fatal(err)
		}
		back, err := permatrix.CheckOf(again)
		if err != nil {
			t.Fatalf("CheckOf(%s) of its own input: %v", raw, err)
		}
		if len(c.Groups) == 0 {
			c.Groups = nil
		}
		b1, _ := json.Marshal(c)
		b2, _ := json.Marshal(back)
		if string(b1) != string(b2) {
			t.Fatalf("round trip: %s → %s", b1, b2)
		}
	})
}
