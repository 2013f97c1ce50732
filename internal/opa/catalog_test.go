package opa

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// withSystems is the default bundle with its catalogs changed by edit (on
// a deep copy).
func withSystems(t *testing.T, edit func(systems map[string]map[string]any)) *Bundle {
	t.Helper()
	b, err := ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(b.b.Data["systems"])
	var systems map[string]map[string]any
	if err := json.Unmarshal(raw, &systems); err != nil {
		t.Fatal(err)
	}
	edit(systems)
	var data map[string]any
	raw, _ = json.Marshal(systems)
	_ = json.Unmarshal(raw, &data)
	c := *b.b
	c.Data = map[string]any{"systems": data}
	return &Bundle{&c}
}

// Bundles that load but cannot work are refused, saying why.
func TestCompileRefusesBundlesThatCannotWork(t *testing.T) {
	cases := []struct {
		name string
		edit func(map[string]map[string]any)
		want []string
	}{
		{"package names no Rego package", func(s map[string]map[string]any) { s["blueprism"]["package"] = "no_such_package" },
			[]string{`data.systems["blueprism"] names package "no_such_package"`, "no package permatrix.systems.no_such_package with a decision rule",
				"package permatrix.systems.blueprism is named by no catalog"}},
		{"roles removed", func(s map[string]map[string]any) { delete(s["celonis-studio"], "roles") },
			[]string{`data.systems["celonis-studio"] lacks roles`}},
		{"several keys removed", func(s map[string]map[string]any) {
			delete(s["uipath-orchestrator"], "actions")
			delete(s["uipath-orchestrator"], "scope_types")
			s["uipath-orchestrator"]["permissions"] = nil
		}, []string{`data.systems["uipath-orchestrator"] lacks scope_types, permissions, actions`}},
		{"catalog deleted", func(s map[string]map[string]any) { delete(s, "celonis-task-mining") },
			[]string{"package permatrix.systems.celonis_task_mining is named by no catalog", "was its catalog deleted?"}},
		{"undeclared scope type", func(s map[string]map[string]any) {
			s["celonis-studio"]["scope_types"] = []any{"service"}
		}, []string{`data.systems["celonis-studio"]`, "not among scope_types [service]"}},
		{"roles of the wrong type", func(s map[string]map[string]any) { s["blueprism"]["roles"] = []any{"x"} },
			[]string{`data.systems["blueprism"]`, "roles"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Compile(context.Background(), withSystems(t, c.edit), nil)
			if err == nil {
				t.Fatal("compiled")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
	// The unedited copy compiles: the edits are what is refused.
	if _, err := Compile(context.Background(), withSystems(t, func(map[string]map[string]any) {}), nil); err != nil {
		t.Fatal(err)
	}
}
