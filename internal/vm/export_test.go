package vm

// ConstantRules names the rules Constants keeps, in plan order: for the
// tests, which hold the classification to what they expect.
func (p *Program) ConstantRules() []string {
	var names []string
	for i, fn := range p.funcs {
		if p.constant != nil && p.constant[i] {
			names = append(names, fn.name)
		}
	}
	return names
}

// Concat is the vm's concat over topdown's (next): for the tests, which
// hold it to topdown's.
var Concat = concat

// ReadsClock says whether an evaluation of p makes its time (clock).
func (p *Program) ReadsClock() bool { return p.clock }
