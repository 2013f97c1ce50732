package opa

// DecisionSteps is how many vm statements the policy's decision queries
// (data.permatrix.decision and each system's) have run: BenchmarkDecideStore's
// and BenchmarkCheck's steps/op, a decision's cost the same on any machine.
func (p *Policy) DecisionSteps() uint64 {
	var n uint64
	if p.decision.program != nil {
		n += p.decision.program.Steps()
	}
	for _, q := range p.systems {
		if q.program != nil {
			n += q.program.Steps()
		}
	}
	return n
}

// VerdictSteps is how many vm statements the policy's verdict query has
// run: BenchmarkVerdictImportLine's steps/op.
func (p *Policy) VerdictSteps() uint64 {
	if p.verdict.program == nil {
		return 0
	}
	return p.verdict.program.Steps()
}
