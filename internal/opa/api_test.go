package opa

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/permatrix/permatrix/internal/store"
)

// The Data API's evaluations keep the query cache bounded as Query does:
// only paths the rule tree defines are cached, strict ones apart; paths
// clients choose (with any option) add nothing.
func TestEvalDataCacheBounded(t *testing.T) {
	ctx := context.Background()
	p := compileDefault(t, nil)
	in := any(map[string]any{"subject": "ann", "system": "celonis-task-mining", "action": "edit_users"})
	eval := func(path []string, o EvalOptions) *Evaluation {
		t.Helper()
		ev, err := p.EvalData(ctx, store.Empty(0), path, &in, o)
		if err != nil {
			t.Fatalf("%v %+v: %v", path, o, err)
		}
		return ev
	}
	if ev := eval(split("permatrix/allow"), EvalOptions{Metrics: true}); !ev.Defined || ev.Result != false || ev.Metrics["counter_server_query_cache_hit"] != uint64(0) {
		t.Fatalf("first evaluation: %+v", ev)
	}
	if ev := eval(split("permatrix/allow"), EvalOptions{Metrics: true}); ev.Metrics["counter_server_query_cache_hit"] != uint64(1) {
		t.Fatalf("second evaluation is no cache hit: %+v", ev.Metrics)
	}
	eval(split("permatrix/allow"), EvalOptions{StrictBuiltinErrors: true})
	base := p.CachedQueries()
	if base != 2 {
		t.Fatalf("%d cached queries after one path, non-strict and strict", base)
	}
	for i := range 30 {
		for _, o := range []EvalOptions{{}, {StrictBuiltinErrors: true}, {Explain: ExplainFull}} {
			for _, path := range [][]string{{fmt.Sprintf("q%d", i), "x"}, {"permatrix", "decision", fmt.Sprintf("k%d", i)}, {"systems", fmt.Sprintf("s%d", i)}} {
				if ev := eval(path, o); ev.Defined {
					t.Fatalf("%v: defined %v", path, ev.Result)
				}
			}
		}
	}
	if n := p.CachedQueries(); n != base {
		t.Fatalf("%d cached queries after 270 undefined evaluations, want %d", n, base)
	}
}

// Explanations: only asked ones; an undefined document only in full mode.
func TestEvalDataExplain(t *testing.T) {
	p := compileDefault(t, nil)
	ctx := context.Background()
	if ev, _ := p.EvalData(ctx, store.Empty(0), split("permatrix/allow"), nil, EvalOptions{}); ev.Explanation != nil || ev.Metrics != nil {
		t.Fatalf("unasked: %+v", ev)
	}
	ev, err := p.EvalData(ctx, store.Empty(0), split("permatrix/allow"), nil, EvalOptions{Explain: ExplainFails, Pretty: true})
	if err != nil || len(ev.Explanation) < 10 || ev.Explanation[0] != '[' {
		t.Fatalf("fails: %v %s", err, ev.Explanation)
	}
	for mode, want := range map[string]bool{ExplainNotes: false, ExplainFails: false, ExplainFull: true, ExplainDebug: false} {
		ev, err := p.EvalData(ctx, store.Empty(0), split("permatrix/nope"), nil, EvalOptions{Explain: mode})
		if err != nil || ev.Defined || (ev.Explanation != nil) != want {
			t.Errorf("undefined, explain=%s: %v %+v", mode, err, ev)
		}
	}
}

// The Query and Compile APIs' errors are OPA's, with its codes.
func TestAPIErrors(t *testing.T) {
	p := compileDefault(t, nil)
	ctx := context.Background()
	for q, code := range map[string]string{"1 ==": CodeInvalidParameter, "": CodeInvalidParameter, "x := y": CodeInvalidParameter,
		`http.send({"method": "get", "url": "http://127.0.0.1:1"})`: CodeInvalidParameter} {
		_, err := p.EvalQuery(ctx, store.Empty(0), q, nil, EvalOptions{})
		var ae *APIError
		if !errors.As(err, &ae) || ae.Code != code {
			t.Errorf("query %q: %v", q, err)
		}
	}
	for _, r := range []CompileRequest{{Query: ""}, {Query: "1 =="}, {Query: "x == 1", Unknowns: []string{"["}}} {
		_, err := p.Compile(ctx, store.Empty(0), r, EvalOptions{})
		var ae *APIError
		if !errors.As(err, &ae) || ae.Code != CodeInvalidParameter {
			t.Errorf("compile %+v: %v", r, err)
		}
	}
	if e := p.Undefined(split("permatrix/allow")); e.Message != "document undefined: data.permatrix.allow" {
		t.Errorf("undefined with rules: %v", e)
	}
	if e := p.Undefined(split("a/0/b")); e.Message != "document missing: data.a[0].b" || e.Code != CodeUndefinedDocument {
		t.Errorf("undefined without rules: %v", e)
	}
	// An evaluation the request's deadline stops is the context's error,
	// not a policy fault.
	dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := p.EvalQuery(dctx, store.Empty(0), "x := count([i | some i in numbers.range(1, 100000000)])", nil, EvalOptions{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("past the deadline: %v", err)
	}
}
