package opa_test

import (
	"context"
	"strings"
	"testing"
)

// BenchmarkParts evaluates the rules a Celonis view_project decision is
// made of, one by one, to see where the time goes.
func BenchmarkParts(b *testing.B) {
	db := benchStore(b, 10000)
	p := compile(b, db)
	ctx := context.Background()
	in := benchCheck(7).Input()
	for _, q := range []string{"permatrix/lib/scope", "permatrix/lib/grants", "permatrix/errors", "permatrix/celonis/permission_grants", "permatrix/celonis/admin_reasons",
		"permatrix/systems/celonis_task_mining/reasons", "permatrix/systems/celonis_task_mining/missing", "permatrix/systems/celonis_task_mining/decision", "permatrix/system_verdict", "permatrix/decision"} {
		b.Run(q, func(b *testing.B) {
			for b.Loop() {
				snap, _ := db.View()
				if _, _, err := p.Query(ctx, snap, strings.Split(q, "/"), in); err != nil {
					b.Fatal(err)
				}
				snap.Close()
			}
		})
	}
}
