package opa_test

import (
	"context"
	"strings"
	"testing"
)

func BenchmarkParts(b *testing.B) {
	e := load(b, benchState(10000))
	p := e.Current()
	ctx := context.Background()
	in := benchCheck(7)
	for _, q := range []string{"permatrix/lib/scope", "permatrix/lib/grants", "permatrix/errors", "permatrix/celonis/permission_grants", "permatrix/celonis/admin_reasons",
		"permatrix/systems/celonis_task_mining/reasons", "permatrix/systems/celonis_task_mining/missing", "permatrix/systems/celonis_task_mining/decision", "permatrix/system_verdict", "permatrix/decision"} {
		b.Run(q, func(b *testing.B) {
			for b.Loop() {
				if _, _, err := p.Query(ctx, strings.Split(q, "/"), in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
