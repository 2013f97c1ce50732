package pdp_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/pdp"
)

// analysts is an import of n Celonis analysts: a role and a project grant each.
func analysts(from, n int) []pdp.ImportLine {
	var lines []pdp.ImportLine
	for i := from; i < from+n; i++ {
		u := fmt.Sprintf("user:u%d", i)
		lines = append(lines,
			pdp.ImportLine{Line: len(lines) + 1, Assignment: permatrix.Assignment{Subject: u, System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope}},
			pdp.ImportLine{Line: len(lines) + 2, Assignment: permatrix.Assignment{Subject: u, System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.Scope{Type: "project", ID: fmt.Sprintf("p%d", i%50)}}})
	}
	return lines
}

func BenchmarkImport(b *testing.B) {
	ctx := context.Background()
	svc := newService(b)
	const chunk = 1000 // users: 2,000 assignments
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, _, err := svc.Import(ctx, analysts(i*chunk, chunk)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(2*chunk*b.N)/b.Elapsed().Seconds(), "assignments/s")
}
