package opa

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// A bundle whose Rego OPA's planner cannot plan (a rule body reading the
// path prefix its own rules share, which topdown and `opa test` evaluate)
// is evaluated by topdown, as a plan the vm cannot run is: the vm
// evaluator refused to activate it, though `--evaluator topdown` served
// it.
func TestActivatesWhatThePlannerCannotPlan(t *testing.T) {
	ctx := context.Background()
	def, err := ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	b := withModule(t, def, "policies/celonis/storage_manager.rego", func(s string) string {
		s = strings.Replace(s, "decision := celonis.grant_decision(\"celonis-storage-manager\", input.action, lib.scope)",
			"decision := d if {\n\tcount(needs.admin) == 2\n\td := celonis.grant_decision(\"celonis-storage-manager\", input.action, lib.scope)\n}", 1)
		return s + "\nneeds[r] := ps if some r, ps in {\"viewer\": {\"read\"}}\n\nneeds.admin := needs.viewer | {\"delete\"}\n"
	})
	check := permatrix.Check{Subject: "alice", System: "celonis-storage-manager", Action: "get", Resource: &permatrix.Scope{Type: "bucket", ID: "b1"}}
	var decisions []*permatrix.Decision
	for _, ev := range []Evaluator{VM, Topdown} {
		p, err := NewEngine(nil, WithEvaluator(ev)).Activate(ctx, b)
		if err != nil {
			t.Fatalf("%s: %v", ev, err)
		}
		d, err := p.Decide(ctx, store.Empty(0), check)
		if err != nil {
			t.Fatalf("%s: %v", ev, err)
		}
		decisions = append(decisions, d)
		// What runs on topdown under the vm is said (serve logs it).
		why := strings.Join(p.Topdown(), "\n")
		if ev == VM && !strings.Contains(why, "celonis_storage_manager.decision") || ev == Topdown && why != "" {
			t.Errorf("%s: Topdown() = %q", ev, why)
		}
	}
	if !reflect.DeepEqual(decisions[0], decisions[1]) {
		t.Fatalf("the evaluators decide differently:\nvm      %+v\ntopdown %+v", decisions[0], decisions[1])
	}
	if decisions[0].Allow || len(decisions[0].Missing) == 0 {
		t.Fatalf("a check nothing grants: %+v", decisions[0])
	}
}

// A partial object with two values for one key is a conflict where its
// value is needed whole; topdown reading one other key of it (needs.viewer)
// evaluates only the rules for that key and finds none, while the vm's plan
// builds the object whole and found it: every check of the system was an
// error under the vm (the default evaluator) and a decision under topdown
// and `opa test`. The vm's conflict is decided again by topdown, for checks
// and for the Data API.
func TestConflictOnlyWhereTopdownFindsOne(t *testing.T) {
	ctx := context.Background()
	def, err := ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	b := conflictAtAnUnreadKey(t, def)
	check := permatrix.Check{Subject: "alice", System: "celonis-storage-manager", Action: "get", Resource: &permatrix.Scope{Type: "bucket", ID: "b1"}}
	var input any
	raw, _ := json.Marshal(check.Input())
	_ = json.Unmarshal(raw, &input)
	var decisions []*permatrix.Decision
	var answers []*Evaluation
	for _, ev := range []Evaluator{VM, Topdown} {
		p, err := NewEngine(nil, WithEvaluator(ev)).Activate(ctx, b)
		if err != nil {
			t.Fatalf("%s: %v", ev, err)
		}
		d, err := p.Decide(ctx, store.Empty(0), check)
		if err != nil {
			t.Fatalf("%s: %v", ev, err)
		}
		decisions = append(decisions, d)
		// The vm runs the plan; only a conflict goes to topdown, which
		// Topdown does not report.
		if why := p.Topdown(); len(why) != 0 {
			t.Errorf("%s: Topdown() = %q", ev, why)
		}
		for _, path := range []string{"permatrix/decision", "permatrix/systems/celonis_storage_manager/decision"} {
			a, err := p.EvalData(ctx, store.Empty(0), strings.Split(path, "/"), &input, EvalOptions{})
			if err != nil {
				t.Fatalf("%s: data.%s: %v", ev, path, err)
			}
			answers = append(answers, a)
		}
		// The whole object is a conflict for both.
		if _, err := p.EvalData(ctx, store.Empty(0), strings.Split("permatrix/systems/celonis_storage_manager/needs", "/"), &input, EvalOptions{}); err == nil {
			t.Fatalf("%s: data.….needs: no conflict", ev)
		}
	}
	if !reflect.DeepEqual(decisions[0], decisions[1]) {
		t.Fatalf("the evaluators decide differently:\nvm      %+v\ntopdown %+v", decisions[0], decisions[1])
	}
	if !reflect.DeepEqual(answers[:2], answers[2:]) {
		t.Fatalf("the Data API answers differently:\nvm      %+v\ntopdown %+v", answers[:2], answers[2:])
	}
}

// conflictAtAnUnreadKey is def with Celonis Storage Manager's decision
// reading one key (viewer) of a partial object whose other key (admin) has
// two values: a conflict the vm's plan finds and topdown does not.
func conflictAtAnUnreadKey(t *testing.T, def *Bundle) *Bundle {
	t.Helper()
	return withModule(t, def, "policies/celonis/storage_manager.rego", func(s string) string {
		s = strings.Replace(s, "decision := celonis.grant_decision(\"celonis-storage-manager\", input.action, lib.scope)",
			"decision := d if {\n\tneeds.viewer == {\"read\"}\n\td := celonis.grant_decision(\"celonis-storage-manager\", input.action, lib.scope)\n}", 1)
		return s + "\nneeds[r] := ps if some r, ps in {\"viewer\": {\"read\"}, \"admin\": {\"all\"}}\n\nneeds[r] := ps if some r, ps in {\"admin\": {\"other\"}}\n"
	})
}

// The vm's conflict decided again by topdown over a check's pooled input
// (a check without context or groups: checkInputs). Topdown is handed a
// copy, and the input is given back after the decision is read: eight
// goroutines deciding checks of other subjects and buckets at once each
// get their own check's decision, topdown's alone.
func TestConflictFallbackOverPooledInputsConcurrently(t *testing.T) {
	ctx := context.Background()
	def, err := ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	b := conflictAtAnUnreadKey(t, def)
	vmPolicy, err := NewEngine(nil, WithEvaluator(VM)).Activate(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	topdown, err := NewEngine(nil, WithEvaluator(Topdown)).Activate(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	sys := vmPolicy.Catalog["celonis-storage-manager"]
	var checks []permatrix.Check
	var want []*permatrix.Decision
	for i, action := range sys.ActionIDs() {
		for j := range 4 {
			c := permatrix.Check{Subject: fmt.Sprintf("user%d", i*4+j), System: sys.ID, Action: action, Resource: &permatrix.Scope{Type: "bucket", ID: fmt.Sprintf("b%d-%d", i, j)}}
			d, err := topdown.Decide(ctx, store.Empty(0), c)
			if err != nil {
				t.Fatal(err)
			}
			checks, want = append(checks, c), append(want, d)
		}
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for n := range 300 {
				k := (g*7 + n*3) % len(checks)
				d, err := vmPolicy.Decide(ctx, store.Empty(0), checks[k])
				if err != nil {
					t.Error(err)
					return
				}
				if !reflect.DeepEqual(d, want[k]) {
					t.Errorf("%+v: the vm's fallback decided %+v, topdown %+v", checks[k], d, want[k])
					return
				}
			}
		})
	}
	wg.Wait()
}

// OPA's planner skips a rule body's naked term that is not a boolean, a
// variable or a reference — as true, whatever it is. A comprehension there
// is evaluated by topdown, and fails the evaluation on a conflict or (strict)
// a builtin error in its body; under the vm, the same check was a
// decision. A bundle with such a term is evaluated by topdown.
func TestNakedComprehensionFailsAsTopdowns(t *testing.T) {
	ctx := context.Background()
	def, err := ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	b := withModule(t, def, "policies/celonis/storage_manager.rego", func(s string) string {
		return strings.Replace(s, "decision := celonis.grant_decision(\"celonis-storage-manager\", input.action, lib.scope)",
			"decision := d if {\n\t{k: v | some v in object.get(input, [\"context\", \"vs\"], []); k := \"a\"}\n\td := celonis.grant_decision(\"celonis-storage-manager\", input.action, lib.scope)\n}", 1)
	})
	check := permatrix.Check{Subject: "alice", System: "celonis-storage-manager", Action: "get", Resource: &permatrix.Scope{Type: "bucket", ID: "b1"},
		Context: map[string]any{"vs": []any{1, 2}}}
	for _, ev := range []Evaluator{VM, Topdown} {
		p, err := NewEngine(nil, WithEvaluator(ev)).Activate(ctx, b)
		if err != nil {
			t.Fatalf("%s: %v", ev, err)
		}
		if p.Evaluator() != Topdown {
			t.Errorf("%s: evaluated by %s", ev, p.Evaluator())
		}
		if why := strings.Join(p.Topdown(), "\n"); ev == VM && !strings.Contains(why, "storage_manager.rego:") || ev == Topdown && why != "" {
			t.Errorf("%s: Topdown() = %q", ev, why)
		}
		if d, err := p.Decide(ctx, store.Empty(0), check); err == nil || !strings.Contains(err.Error(), "object keys must be unique") {
			t.Errorf("%s: a check whose comprehension conflicts: %+v, %v", ev, d, err)
		}
		check := check
		check.Context = nil
		if _, err := p.Decide(ctx, store.Empty(0), check); err != nil {
			t.Errorf("%s: a check without: %v", ev, err)
		}
	}
}

// The shipped bundle runs on the vm throughout: nothing to say.
func TestShippedBundleAllOnTheVM(t *testing.T) {
	def, err := ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewEngine(nil, WithEvaluator(VM)).Activate(context.Background(), def)
	if err != nil {
		t.Fatal(err)
	}
	if why := p.Topdown(); len(why) != 0 || p.Evaluator() != VM {
		t.Errorf("the shipped bundle: evaluator %s, Topdown() = %q", p.Evaluator(), why)
	}
}
