package matrix

import "slices"

// Diff is what changes from one matrix of a system to another: the same
// system under two bundles (the one serving and a candidate).
type Diff struct {
	System            string `json:"system"`
	BaseRevision      string `json:"base_revision"`
	CandidateRevision string `json:"candidate_revision"`
	// Cells is how many cells the two matrices have together.
	Cells int `json:"cells"`
	// Changes are the cells decided otherwise, or present in one only, in
	// the candidate's order (then the base's cells it no longer has).
	Changes []Change `json:"changes"`
	// Holders and actions that one matrix has and the other has not.
	AddedHolders   []string `json:"added_holders"`
	RemovedHolders []string `json:"removed_holders"`
	AddedActions   []string `json:"added_actions"`
	RemovedActions []string `json:"removed_actions"`
}

// Change is one cell that differs. Was or Now is nil where that matrix has
// no such cell (a new or removed role, action or scope).
type Change struct {
	Role   string `json:"role"`
	Action string `json:"action"`
	Scope  string `json:"scope"`
	Was    *bool  `json:"was"`
	Now    *bool  `json:"now"`
	// Missing is what the candidate finds lacking where it denies.
	Missing []map[string]any `json:"missing,omitempty"`
}

// Compare lists the cells of base and candidate (two matrices of one
// system) that differ.
func Compare(base, candidate *Matrix) *Diff {
	d := &Diff{System: candidate.System, BaseRevision: base.BundleRevision, CandidateRevision: candidate.BundleRevision,
		Changes: []Change{}}
	was := base.index()
	seen := map[[3]string]bool{}
	for _, c := range candidate.Cells {
		k := [3]string{c.Role, c.Action, c.Scope}
		seen[k] = true
		now := c.Allow
		old, ok := was[k]
		switch {
		case !ok:
			d.Changes = append(d.Changes, Change{Role: c.Role, Action: c.Action, Scope: c.Scope, Now: &now, Missing: c.Missing})
		case old.Allow != c.Allow:
			prev := old.Allow
			d.Changes = append(d.Changes, Change{Role: c.Role, Action: c.Action, Scope: c.Scope, Was: &prev, Now: &now, Missing: c.Missing})
		}
	}
	d.Cells = len(candidate.Cells)
	for _, c := range base.Cells {
		if !seen[[3]string{c.Role, c.Action, c.Scope}] {
			prev := c.Allow
			d.Changes = append(d.Changes, Change{Role: c.Role, Action: c.Action, Scope: c.Scope, Was: &prev})
			d.Cells++
		}
	}
	ids := func(m *Matrix) []string {
		out := make([]string, len(m.Holders))
		for i, h := range m.Holders {
			out[i] = h.ID
		}
		return out
	}
	d.AddedHolders, d.RemovedHolders = added(ids(base), ids(candidate)), added(ids(candidate), ids(base))
	d.AddedActions, d.RemovedActions = added(base.Actions, candidate.Actions), added(candidate.Actions, base.Actions)
	return d
}

// added is what b has that a has not, in b's order.
func added(a, b []string) []string {
	out := []string{}
	for _, x := range b {
		if !slices.Contains(a, x) {
			out = append(out, x)
		}
	}
	return out
}
