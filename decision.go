package permatrix

import (
	"encoding/json"

	jsonv2 "github.com/go-json-experiment/json"
)

// Check is one question: may Subject do Action on Resource in System?
type Check struct {
	Subject  string         `json:"subject"`
	System   string         `json:"system"`
	Action   string         `json:"action"`
	Resource *Scope         `json:"resource,omitempty"`
	Context  map[string]any `json:"context,omitempty"`
	// Groups are memberships an upstream identity provider asserted, on
	// top of the stored ones.
	Groups []string `json:"groups,omitempty"`
	// MinRevision, a consistency token, asks for a decision at this store
	// revision or later (e.g. the revision a write returned): the decision
	// point waits until it has applied it. Not part of the policies' input.
	MinRevision uint64 `json:"min_revision,omitempty"`
}

// Input is the check as the policies' input document.
func (c Check) Input() map[string]any {
	in := map[string]any{"subject": c.Subject, "system": c.System, "action": c.Action}
	if c.Resource != nil {
		in["resource"] = c.Resource.Value()
	}
	if c.Context != nil {
		in["context"] = c.Context
	}
	if len(c.Groups) > 0 {
		gs := make([]any, len(c.Groups))
		for i, g := range c.Groups {
			gs[i] = g
		}
		in["groups"] = gs
	}
	return in
}

// Decision is the answer to a Check. Reasons name the assignments that
// granted it (empty on deny); Missing names what is lacking (empty on allow).
type Decision struct {
	Allow      bool             `json:"allow"`
	DecisionID string           `json:"decision_id,omitempty"`
	Revision   uint64           `json:"revision"`
	Reasons    []map[string]any `json:"reasons"`
	Missing    []map[string]any `json:"missing"`
	// Errors say why the input itself was not a valid check.
	Errors []string `json:"errors,omitempty"`
}

// CheckOf reads a check back from its input document (Check.Input), e.g. a
// logged decision's input. Keys match exactly, as input.subject does in
// Rego: encoding/json's case-insensitive matching would read {"Subject":
// "alice"} — which the policies decided as a check without a subject — as
// alice's check.
func CheckOf(input map[string]any) (Check, error) {
	raw, err := json.Marshal(input)
	if err != nil {
		return Check{}, err
	}
	var c Check
	if err := jsonv2.Unmarshal(raw, &c); err != nil {
		return Check{}, err
	}
	return c, nil
}
