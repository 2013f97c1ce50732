package opa

import (
	"context"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"
)

// withModule is b with the module at path's source edited by edit.
func withModule(t *testing.T, b *Bundle, path string, edit func(string) string) *Bundle {
	t.Helper()
	c := *b.b
	c.Modules = append([]bundle.ModuleFile(nil), b.b.Modules...)
	for i, m := range c.Modules {
		if m.Path == path {
			src := edit(string(m.Raw))
			if src == string(m.Raw) {
				t.Fatalf("%s: the edit changed nothing", path)
			}
			c.Modules[i] = bundle.ModuleFile{URL: m.URL, Path: m.Path, Raw: []byte(src)}
			return &Bundle{&c}
		}
	}
	t.Fatalf("no module %s", path)
	return nil
}

// A bundle whose policies compile but fault on every check of a system
// (or of all of them) does not decide: activating it must fail and leave
// the last good policy serving. The probe used to decide only a check of
// an unknown system, which the entrypoint answers with an input error
// before any system's policy runs.
func TestActivateProbesEverySystem(t *testing.T) {
	ctx := context.Background()
	def, err := ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	const fault = "} else := lib.verdict(reasons, missing) if {\n\tto_number(\"x\") == 1\n}"
	for name, b := range map[string]*Bundle{
		// every deny of every system is an evaluation error
		"lib.verdict": withModule(t, def, "policies/permatrix/lib/lib.rego", func(s string) string {
			return strings.Replace(s, "} else := {\"allow\": false, \"reasons\": [], \"missing\": sort(missing)}",
				"} else := {\"allow\": false, \"reasons\": [], \"missing\": sort(missing)} if {\n\tto_number(\"x\") == 1\n}", 1)
		}),
		// every non-admin check of one system is an evaluation error
		"celonis-task-mining": withModule(t, def, "policies/celonis/task_mining.rego", func(s string) string {
			return strings.Replace(s, "} else := lib.verdict(reasons, missing)", fault, 1)
		}),
		// every check of one system is undefined
		"undefined": withModule(t, def, "policies/celonis/task_mining.rego", func(s string) string {
			return strings.Replace(strings.Replace(s, "} else := lib.verdict(reasons, missing)", "}", 1),
				"\tcelonis.is_admin\n", "\tcelonis.is_admin\n\tinput.subject == \"\"\n", 1)
		}),
	} {
		t.Run(name, func(t *testing.T) {
			for _, ev := range []Evaluator{VM, Topdown} {
				e := NewEngine(nil, WithEvaluator(ev))
				good, err := e.Activate(ctx, def)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := e.Activate(ctx, b); err == nil {
					t.Fatalf("%s: a bundle that cannot decide a check was activated", ev)
				} else if !strings.Contains(err.Error(), "probe") {
					t.Fatalf("%s: %v", ev, err)
				}
				if e.Current() != good {
					t.Fatalf("%s: a refused bundle replaced the serving policy", ev)
				}
			}
		})
	}
}

// A bundle whose write rules fault on every write (here a conflict: two
// values of data.permatrix.admin.verdict) cannot judge a write: activating
// it must fail, the last good policy serving, as for decisions. It was
// activated, and every write afterwards failed.
func TestActivateProbesTheWriteVerdict(t *testing.T) {
	ctx := context.Background()
	def, err := ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	b := withModule(t, def, "policies/permatrix/admin/admin.rego", func(s string) string {
		return s + "\nverdict := {\"violations\": [], \"forbidden\": [\"probe\"]} if input.op\n"
	})
	for _, ev := range []Evaluator{VM, Topdown} {
		e := NewEngine(nil, WithEvaluator(ev))
		good, err := e.Activate(ctx, def)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Activate(ctx, b); err == nil || !strings.Contains(err.Error(), "probe") {
			t.Fatalf("%s: a bundle whose write verdict faults: %v", ev, err)
		}
		if e.Current() != good {
			t.Fatalf("%s: a refused bundle replaced the serving policy", ev)
		}
	}
}
