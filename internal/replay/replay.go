// Package replay re-decides logged decisions (internal/decisionlog) under
// a candidate bundle and reports those that would flip, so a policy change
// can be judged against real traffic before it is deployed.
//
// The log records each decision's input, result and the store revision it
// was made at, not the store's contents; so the decisions are re-made
// against one store state given by the caller (the current one: a db file
// or an export), and the report says which.
package replay

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/decisionlog"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/store"
)

// Store is the assignment store decisions are re-made against: a db file's
// or an export's (store.ReadDocument).
type Store struct {
	Backend store.Backend
	// Description says where it came from, for the report.
	Description string
}

// Options of a replay.
type Options struct {
	Candidate *opa.Bundle
	// Baseline, if set, is decided too: a decision flips when candidate
	// and baseline disagree, so changes of the store since the log was
	// written do not show up as flips.
	Baseline *opa.Bundle
	Store    Store
}

// Flip is one logged decision that the candidate decides otherwise.
type Flip struct {
	DecisionID string          `json:"decision_id"`
	System     string          `json:"system"`
	Action     string          `json:"action"`
	Subject    string          `json:"subject"`
	Resource   permatrix.Scope `json:"resource"`
	Was        bool            `json:"was"`
	Now        bool            `json:"now"`
	// Invalid is set when the candidate refuses the input itself (e.g. an
	// action it no longer has).
	Invalid string           `json:"invalid,omitempty"`
	Reasons []map[string]any `json:"reasons,omitempty"`
	Missing []map[string]any `json:"missing,omitempty"`
}

// Group counts the flips of one system and action.
type Group struct {
	System      string `json:"system"`
	Action      string `json:"action"`
	Flips       int    `json:"flips"`
	AllowToDeny int    `json:"allow_to_deny"`
	DenyToAllow int    `json:"deny_to_allow"`
	Invalid     int    `json:"invalid"`
	Examples    []Flip `json:"examples"`
}

// Report is the outcome of a replay.
type Report struct {
	Decisions         int       `json:"decisions"`
	Skipped           int       `json:"skipped"`
	CandidateRevision string    `json:"candidate_revision"`
	BaselineRevision  string    `json:"baseline_revision,omitempty"`
	LoggedRevisions   []string  `json:"logged_bundle_revisions"`
	LoggedStore       [2]uint64 `json:"logged_store_revisions"`
	Store             string    `json:"store"`
	StoreRevision     uint64    `json:"store_revision"`
	Flips             int       `json:"flips"`
	Groups            []Group   `json:"groups"`
}

// MaxExamples bounds the flips listed per group.
const MaxExamples = 20

// Run replays entries.
func Run(ctx context.Context, entries []decisionlog.Entry, o Options) (*Report, error) {
	cand, err := opa.Compile(ctx, o.Candidate, o.Store.Backend)
	if err != nil {
		return nil, fmt.Errorf("candidate bundle: %w", err)
	}
	var base *opa.Policy
	if o.Baseline != nil {
		if base, err = opa.Compile(ctx, o.Baseline, o.Store.Backend); err != nil {
			return nil, fmt.Errorf("baseline bundle: %w", err)
		}
	}
	rep := &Report{CandidateRevision: cand.BundleRevision(), Store: o.Store.Description}
	if base != nil {
		rep.BaselineRevision = base.BundleRevision()
	}
	snap, err := o.Store.Backend.View()
	if err != nil {
		return nil, err
	}
	defer snap.Close()
	rep.StoreRevision = snap.Revision()
	groups := map[[2]string]*Group{}
	first := true
	for _, e := range entries {
		// OPA notices a canceled context only now and then during an
		// evaluation: a short one may finish regardless.
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !e.IsCheck() {
			rep.Skipped++
			continue
		}
		// The Data API's evaluations of the same document are logged under
		// the same path with any input: only a check's is re-decided.
		check, err := e.Check()
		if err != nil {
			rep.Skipped++
			continue
		}
		rep.Decisions++
		if rev := e.BundleRevision(); rev != "" && !slices.Contains(rep.LoggedRevisions, rev) {
			rep.LoggedRevisions = append(rep.LoggedRevisions, rev)
		}
		if rev := e.StoreRevision(); first || rev < rep.LoggedStore[0] {
			rep.LoggedStore[0] = rev
		}
		if rev := e.StoreRevision(); first || rev > rep.LoggedStore[1] {
			rep.LoggedStore[1] = rev
		}
		first = false

		// was: the decision to compare with, the baseline's or the logged
		// one; wasInvalid: it refused the input too (an input the Data API
		// evaluated that is no valid check stays refused: no flip).
		var was, wasInvalid bool
		if base != nil {
			d, err := base.Decide(ctx, snap, check)
			if err != nil {
				return nil, fmt.Errorf("baseline, decision %s: %w", e.DecisionID, err)
			}
			was, wasInvalid = d.Allow, len(d.Errors) > 0
		} else {
			logged, err := e.Decision()
			if err != nil {
				return nil, err
			}
			was, wasInvalid = logged.Allow, len(logged.Errors) > 0
		}
		d, err := cand.Decide(ctx, snap, check)
		if err != nil {
			return nil, fmt.Errorf("candidate, decision %s: %w", e.DecisionID, err)
		}
		invalid := strings.Join(d.Errors, "; ")
		if d.Allow == was && (invalid == "" || wasInvalid) {
			continue
		}
		f := Flip{DecisionID: e.DecisionID, System: check.System, Action: check.Action, Subject: check.Subject,
			Was: was, Now: d.Allow, Invalid: invalid, Reasons: d.Reasons, Missing: d.Missing}
		f.Resource = permatrix.ServiceScope
		if check.Resource != nil {
			f.Resource = *check.Resource
		}
		key := [2]string{f.System, f.Action}
		g := groups[key]
		if g == nil {
			g = &Group{System: f.System, Action: f.Action}
			groups[key] = g
		}
		g.Flips++
		rep.Flips++
		switch {
		case invalid != "":
			g.Invalid++
		case was:
			g.AllowToDeny++
		default:
			g.DenyToAllow++
		}
		if len(g.Examples) < MaxExamples {
			g.Examples = append(g.Examples, f)
		}
	}
	for _, g := range groups {
		rep.Groups = append(rep.Groups, *g)
	}
	slices.SortFunc(rep.Groups, func(a, b Group) int {
		if a.Flips != b.Flips {
			return b.Flips - a.Flips
		}
		return strings.Compare(a.System+"/"+a.Action, b.System+"/"+b.Action)
	})
	return rep, nil
}
