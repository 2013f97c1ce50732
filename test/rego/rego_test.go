// Package rego_test runs the policies' Rego tests (policies/**/*_test.rego)
// from `go test ./...`, in-process through OPA's tester (internal/regotest):
// one subtest per Rego test, so a failing Rego test is a failing Go test
// with its name, file:line and the failing expression's values.
package rego_test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/tester"

	"github.com/permatrix/permatrix/internal/regotest"
	"github.com/permatrix/permatrix/test/harness"
)

func TestRego(t *testing.T) {
	ctx := context.Background()
	root := harness.Root()
	// The repository root, as `opa test .` loads it (the catalogs are
	// systems/<id>/data.json).
	rep, err := regotest.Run(ctx, regotest.Options{Paths: []string{root}})
	if err != nil {
		t.Fatalf("the policies and their tests do not compile:\n%v", err)
	}
	if len(rep.Results) == 0 {
		t.Fatal("no Rego tests found under policies/")
	}
	var explained map[string]*tester.Result
	if !rep.OK() {
		if explained, err = rep.Explain(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, tr := range rep.Results {
		name := strings.TrimPrefix(regotest.Name(tr), "data.")
		t.Run(name, func(t *testing.T) {
			where := ""
			if tr.Location != nil {
				where = rel(root, tr.Location.File) + ":" + strconv.Itoa(tr.Location.Row) + ": "
			}
			switch {
			case tr.Skip:
				t.Skip(where + "todo_ test")
			case tr.Error != nil:
				t.Fatalf("%serror: %v", where, tr.Error)
			case tr.Fail:
				var b strings.Builder
				if x, ok := explained[regotest.Name(tr)]; ok {
					_ = regotest.FailureLines(&b, x)
				}
				t.Fatalf("%sfailed\n%s", where, b.String())
			}
		})
	}
}

func rel(root, file string) string {
	if r, err := filepath.Rel(root, file); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return file
}
