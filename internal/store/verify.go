package store

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Problem is one inconsistency found by Verify.
type Problem struct {
	Where string `json:"where"`
	What  string `json:"what"`
}

// Verify walks every key of a snapshot and checks the layout's invariants:
// every key belongs to the layout, every value decodes, and every record and
// its indexes agree (doc.go). It reports at most max problems.
func Verify(s Snapshot, max int) []Problem {
	var out []Problem
	add := func(k []byte, format string, args ...any) error {
		out = append(out, Problem{Where: fmt.Sprintf("%q", Segments(k)), What: fmt.Sprintf(format, args...)})
		if len(out) >= max {
			return ErrStop
		}
		return nil
	}
	has := func(k []byte) bool { v, err := s.Get(k); return err == nil && v != nil }
	err := s.Scan(nil, nil, func(k, v []byte) error {
		segs := Segments(k)
		if len(segs) < 2 {
			return add(k, "key outside the layout")
		}
		switch segs[0] + " " + segs[1] {
		case "d grants":
			a, err := assignmentOf(k, v)
			if err != nil {
				return add(k, "%v", err)
			}
			if err := a.Validate(); err != nil {
				return add(k, "invalid assignment: %v", err)
			}
			if dk, err := s.Get(assignmentKey(a.ID)); err != nil || !bytes.Equal(dk, k) {
				return add(k, "assignment %s has no index entry pointing at it", a.ID)
			}
			if a.Role != "" && !has(roleUseKey(a.System, a.Role, a.ID)) {
				return add(k, "assignment %s is missing from the role-uses index", a.ID)
			}
			if !a.Scope.IsService() && !has(scopeUseKey(a.System, a.Scope, a.ID)) {
				return add(k, "assignment %s is missing from the scopes index", a.ID)
			}
		case "d memberships":
			if len(segs) != 4 || string(v) != "true" {
				return add(k, "not a membership")
			}
			if !has(Key(nsIndex, ixMembers, segs[3], segs[2])) {
				return add(k, "membership missing from the members index")
			}
		case "d roles":
			var rv roleValue
			if len(segs) != 4 || json.Unmarshal(v, &rv) != nil || rv.Permissions == nil {
				return add(k, "not a role")
			}
		case "d projects":
			var pv projectValue
			if len(segs) != 4 || json.Unmarshal(v, &pv) != nil {
				return add(k, "not a project")
			}
		case "i assignments":
			if len(segs) != 3 {
				return add(k, "not an assignment index entry")
			}
			if _, err := Assignment(s, segs[2]); err != nil {
				return add(k, "%v", err)
			}
		case "i members":
			if len(segs) != 4 || !has(Key(nsDoc, ixMemberships, segs[3], segs[2])) {
				return add(k, "members index entry without its membership")
			}
		case "i role_uses", "d scopes":
			if len(segs) != 5 {
				return add(k, "not an index entry")
			}
			if a, err := Assignment(s, segs[4]); err != nil || a.System != segs[2] {
				return add(k, "index entry names no assignment of system %s", segs[2])
			}
		default:
			return add(k, "key outside the layout")
		}
		return nil
	})
	if err != nil {
		out = append(out, Problem{Where: "scan", What: err.Error()})
	}
	return out
}
