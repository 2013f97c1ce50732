package opa

import (
	"context"
	"encoding/json"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/open-policy-agent/opa/v1/topdown/print"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// printed collects what print() writes, as file:row and text.
type printed struct {
	mu    sync.Mutex
	lines []string
}

func (p *printed) Print(ctx print.Context, msg string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	loc := "?"
	if ctx.Location != nil {
		loc = ctx.Location.String()
	}
	p.lines = append(p.lines, loc+" "+msg)
	return nil
}

func (p *printed) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.lines
	p.lines = nil
	return l
}

// print() in a bundle's Rego goes to the hook given to the engine, from
// the vm (which runs the plan: it does not fall back to topdown for it)
// and from topdown alike, with its location; the probe decisions of an
// activation print nothing. Without a hook print is compiled out, as
// before, and decides the same.
func TestPrintGoesToTheHook(t *testing.T) {
	ctx := context.Background()
	def, err := ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	b := withModule(t, def, "policies/celonis/storage_manager.rego", func(s string) string {
		return strings.Replace(s, "decision := celonis.grant_decision(\"celonis-storage-manager\", input.action, lib.scope)",
			"decision := d if {\n\tprint(\"deciding\", input.action, \"for\", input.subject, input.nothing)\n\td := celonis.grant_decision(\"celonis-storage-manager\", input.action, lib.scope)\n}", 1)
	})
	check := permatrix.Check{Subject: "alice", System: "celonis-storage-manager", Action: "get", Resource: &permatrix.Scope{Type: "bucket", ID: "b1"}}
	want := "policies/celonis/storage_manager.rego:18 deciding get for alice <undefined>"
	var decisions []*permatrix.Decision
	for _, ev := range []Evaluator{VM, Topdown} {
		var out printed
		p, err := NewEngine(nil, WithEvaluator(ev), WithPrintHook(&out)).Activate(ctx, b)
		if err != nil {
			t.Fatalf("%s: %v", ev, err)
		}
		if p.Evaluator() != ev {
			t.Errorf("%s: evaluated by %s", ev, p.Evaluator())
		}
		if l := out.take(); len(l) != 0 {
			t.Errorf("%s: the activation's probes printed %q", ev, l)
		}
		d, err := p.Decide(ctx, store.Empty(0), check)
		if err != nil {
			t.Fatalf("%s: %v", ev, err)
		}
		decisions = append(decisions, d)
		if l := out.take(); !reflect.DeepEqual(l, []string{want}) {
			t.Errorf("%s: printed %q, want %q", ev, l, want)
		}
		// The Data API (topdown) prints too.
		if _, _, err := p.Query(ctx, store.Empty(0), []string{"permatrix", "systems", "celonis_storage_manager", "decision"}, check.Input()); err != nil {
			t.Fatalf("%s: %v", ev, err)
		}
		if l := out.take(); !reflect.DeepEqual(l, []string{want}) {
			t.Errorf("%s: the Data API printed %q, want %q", ev, l, want)
		}
	}
	p, err := NewEngine(nil).Activate(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	d, err := p.Decide(ctx, store.Empty(0), check)
	if err != nil {
		t.Fatal(err)
	}
	decisions = append(decisions, d)
	for _, d := range decisions[1:] {
		if !reflect.DeepEqual(d.Allow, decisions[0].Allow) || !reflect.DeepEqual(d.Missing, decisions[0].Missing) {
			t.Errorf("decisions differ: %+v and %+v", decisions[0], d)
		}
	}
}

// PrintLog writes at most printBurst lines a window and cuts a line's text
// at printBytes, saying how long it was: print(input) prints what any
// caller sends.
func TestPrintLogBounded(t *testing.T) {
	var out strings.Builder
	hook := PrintLog(slog.New(slog.NewJSONHandler(&out, nil)))
	long := strings.Repeat("x", 1<<20)
	if err := hook.Print(print.Context{}, long); err != nil {
		t.Fatal(err)
	}
	var line struct {
		Text      string
		Truncated int
	}
	if err := json.Unmarshal([]byte(strings.SplitN(out.String(), "\n", 2)[0]), &line); err != nil {
		t.Fatal(err)
	}
	if len(line.Text) != printBytes || line.Truncated != 1<<20 {
		t.Errorf("a 1 MiB print logged %d bytes of text (truncated %d), want %d and the length", len(line.Text), line.Truncated, printBytes)
	}
	for range 2 * printBurst {
		_ = hook.Print(print.Context{}, "x")
	}
	if n := strings.Count(out.String(), "\n"); n > printBurst {
		t.Errorf("%d lines logged in one window, want at most %d", n, printBurst)
	}
}
