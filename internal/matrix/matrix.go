// Package matrix computes a system's permission matrix from its policies —
// what each role allows, action by action, at each scope type — and
// renders it as a table, Markdown, CSV, JSON or HTML.
//
// The matrix is not read from the catalog's tables: every cell is a real
// decision of data.permatrix.decision, made for a probe user that holds
// exactly one thing (one role, or for systems without built-in roles one
// permission) in an otherwise empty store. So it shows what the Rego
// actually does, and a golden test can hold it to the vendor's document.
package matrix

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/store"
)

// Probe names used in the probe store.
const (
	// ProbeUser is the user who holds the role under test.
	ProbeUser = "matrix-probe"
	// ProbeResource is the id of the resource (project, bucket, …) checked
	// at non-service scopes. It is registered as a project of the system
	// created by ProbeUser, so creator-only rights (UiPath's はい*) show.
	ProbeResource = "p1"
)

// Holder kinds: what a column holds.
const (
	HolderRole       = "role"
	HolderPermission = "permission"
)

// Options tune Build.
type Options struct {
	// Scopes keeps only checks at these scope types (default: all).
	Scopes []string
	// Contexts gives the check context per action (e.g. UiPath's
	// assign_roles {"role": "business_analyst"}); default none.
	Contexts map[string]map[string]any
	// Also are grants the probe holds besides the role under test, as
	// "system:permission" ("system:*" for all of that system's
	// permissions), at service scope: to show role capabilities with the
	// prerequisites in other systems met.
	Also []string
}

// Matrix is one system's matrix.
type Matrix struct {
	System         string   `json:"system"`
	Name           string   `json:"name"`
	BundleRevision string   `json:"bundle_revision"`
	HolderKind     string   `json:"holder_kind"`
	Holders        []Holder `json:"holders"`
	Actions        []string `json:"actions"`
	Scopes         []string `json:"scopes"`
	Cells          []Cell   `json:"cells"`
	Also           []string `json:"also,omitempty"`
	Notes          []string `json:"notes,omitempty"`
}

// Holder is a role (or permission) under test and where the probe holds it.
type Holder struct {
	ID         string          `json:"id"`
	Name       string          `json:"name,omitempty"`
	AssignedAt permatrix.Scope `json:"assigned_at"`
}

// Cell is one decision: may the holder of Role do Action at Scope?
type Cell struct {
	Role     string           `json:"role"`
	Action   string           `json:"action"`
	Scope    string           `json:"scope"`
	Resource permatrix.Scope  `json:"resource"`
	Context  map[string]any   `json:"context,omitempty"`
	Allow    bool             `json:"allow"`
	Missing  []map[string]any `json:"missing,omitempty"`
}

// Get returns the cell of role × action at scope type, if it was checked.
func (m *Matrix) Get(role, action, scope string) (Cell, bool) {
	for _, c := range m.Cells {
		if c.Role == role && c.Action == action && c.Scope == scope {
			return c, true
		}
	}
	return Cell{}, false
}

// Build computes the matrix of system under bundle b.
func Build(ctx context.Context, b *opa.Bundle, system string, o Options) (*Matrix, error) {
	// One policy over an in-memory store with the probe project registered;
	// each holder's assignment is stored, decided on, and removed again, so
	// every column starts from the same empty state.
	mem := store.NewMemory()
	if _, err := store.Update(ctx, mem, func(tx *store.Tx) error {
		return tx.PutProject(permatrix.Project{System: system, ID: ProbeResource, CreatedBy: ProbeUser})
	}); err != nil {
		return nil, err
	}
	p, err := opa.Compile(ctx, b, mem)
	if err != nil {
		return nil, err
	}
	sys, ok := p.Catalog[system]
	if !ok {
		return nil, fmt.Errorf("unknown system %q (known: %s)", system, strings.Join(p.Catalog.IDs(), ", "))
	}
	m := &Matrix{System: system, Name: sys.Name, BundleRevision: p.BundleRevision(), Also: o.Also}
	for _, s := range o.Scopes {
		if !sys.HasScopeType(s) {
			return nil, fmt.Errorf("system %q has no scope type %q (has: %s)", system, s, strings.Join(sys.ScopeTypes, ", "))
		}
	}
	for a := range o.Contexts {
		if _, ok := sys.Actions[a]; !ok {
			return nil, fmt.Errorf("--context: unknown action %q for system %q", a, system)
		}
	}
	also, err := alsoGrants(p.Catalog, system, o.Also)
	if err != nil {
		return nil, err
	}
	if err := patch(ctx, mem, also, true); err != nil {
		return nil, err
	}

	holders, notes := holdersOf(sys, readStrings(p, "systems", system, "role_order"))
	m.Notes = append(m.Notes, notes...)
	if len(holders) == 0 {
		return nil, fmt.Errorf("system %q has neither roles nor assignable permissions: nothing to tabulate", system)
	}
	m.HolderKind = holders[0].kind
	m.Actions = actionOrder(sys, p)
	m.Scopes = scopeTypes(sys, o.Scopes)

	for _, h := range holders {
		m.Holders = append(m.Holders, Holder{ID: h.id, Name: h.name, AssignedAt: h.at})
		a := permatrix.Assignment{ID: "matrix-" + h.id, Subject: permatrix.UserPrefix + ProbeUser, System: system, Scope: h.at}
		if h.kind == HolderRole {
			a.Role = h.id
		} else {
			a.Permission = h.id
		}
		if err := patch(ctx, mem, []permatrix.Assignment{a}, true); err != nil {
			return nil, err
		}
		snap, err := mem.View()
		if err != nil {
			return nil, err
		}
		for _, action := range m.Actions {
			for _, scope := range m.Scopes {
				res, ok := checkAt(sys, h.at, action, scope)
				if !ok {
					continue
				}
				check := permatrix.Check{Subject: ProbeUser, System: system, Action: action, Resource: &res, Context: o.Contexts[action]}
				d, err := p.Decide(ctx, snap, check)
				if err != nil {
					return nil, fmt.Errorf("%s %s %s at %s: %w", system, h.id, action, scope, err)
				}
				if len(d.Errors) > 0 {
					return nil, fmt.Errorf("%s %s %s at %s: %s", system, h.id, action, scope, strings.Join(d.Errors, "; "))
				}
				c := Cell{Role: h.id, Action: action, Scope: scope, Resource: res, Context: o.Contexts[action], Allow: d.Allow}
				if !d.Allow {
					c.Missing = d.Missing
				}
				m.Cells = append(m.Cells, c)
			}
		}
		snap.Close()
		if err := patch(ctx, mem, []permatrix.Assignment{a}, false); err != nil {
			return nil, err
		}
	}
	return m, nil
}

type holder struct {
	kind, id, name string
	at             permatrix.Scope
}

// holdersOf lists what the columns hold: the system's roles, or, for
// systems whose roles are defined at run time (Blue Prism) or that have
// none (UiPath Orchestrator's permissions), each permission held alone.
func holdersOf(sys *permatrix.System, order []string) ([]holder, []string) {
	var out []holder
	var notes []string
	if len(sys.Roles) > 0 {
		for _, id := range roleOrder(sys, order) {
			r := sys.Roles[id]
			out = append(out, holder{kind: HolderRole, id: id, name: r.Name, at: assignAt(r.Scopes)})
		}
		notes = append(notes, fmt.Sprintf("each column: a user who holds only that role, in an empty store (project %q registered as created by that user)", ProbeResource))
		return out, notes
	}
	for _, id := range slices.Sorted(maps.Keys(sys.Permissions)) {
		p := sys.Permissions[id]
		out = append(out, holder{kind: HolderPermission, id: id, name: p.Name, at: assignAt(p.Scopes)})
	}
	why := "it has no built-in roles"
	if sys.CustomRoles.Enabled {
		why = "its roles are defined at run time (custom roles)"
	}
	notes = append(notes, fmt.Sprintf("%s: %s, so each column is one permission held alone, in an empty store", sys.ID, why))
	return out, notes
}

// assignAt is where the probe holds a role: at service scope when the role
// may be held there (it then covers every resource), else on the probe
// resource of the role's first scope type.
func assignAt(scopes []string) permatrix.Scope {
	if len(scopes) == 0 || slices.Contains(scopes, "service") {
		return permatrix.ServiceScope
	}
	return permatrix.Scope{Type: scopes[0], ID: ProbeResource}
}

// checkAt is the resource a holder assigned at `at` is checked on for
// action at scope type `scope`, and whether that cell exists. A holder
// assigned on one resource is checked on it; at service scope only for
// actions that are not tied to a resource (e.g. UiPath's download page,
// which a project role allows).
func checkAt(sys *permatrix.System, at permatrix.Scope, action, scope string) (permatrix.Scope, bool) {
	act := sys.Actions[action]
	if !slices.Contains(act.Scopes, scope) {
		return permatrix.Scope{}, false
	}
	if scope == "service" {
		if !at.IsService() && slices.Contains(act.Scopes, at.Type) {
			return permatrix.Scope{}, false
		}
		return permatrix.ServiceScope, true
	}
	if !at.IsService() && at.Type != scope {
		return permatrix.Scope{}, false
	}
	return permatrix.Scope{Type: scope, ID: ProbeResource}, true
}

// roleOrder is the catalog's role_order (where it has one), then service
// roles before resource roles, each by id.
func roleOrder(sys *permatrix.System, order []string) []string {
	var ids, rest []string
	for _, id := range order {
		if _, ok := sys.Roles[id]; ok && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	for id := range sys.Roles {
		if !slices.Contains(ids, id) {
			rest = append(rest, id)
		}
	}
	slices.SortFunc(rest, func(a, b string) int {
		sa := slices.Contains(sys.Roles[a].Scopes, "service")
		sb := slices.Contains(sys.Roles[b].Scopes, "service")
		if sa != sb {
			if sa {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	return append(ids, rest...)
}

// readStrings reads a list of strings from the policy's data, nil if absent.
func readStrings(p *opa.Policy, path ...string) []string {
	list, _ := p.BundleData(path...).([]any)
	var out []string
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// actionOrder is the document's row order where the catalog records it
// ("rows" of {"action": …}), then every other action by id.
func actionOrder(sys *permatrix.System, p *opa.Policy) []string {
	var out []string
	if rows := p.BundleData("systems", sys.ID, "rows"); rows != nil {
		list, _ := rows.([]any)
		for _, r := range list {
			var id string
			switch v := r.(type) {
			case string:
				id = v
			case map[string]any:
				id, _ = v["action"].(string)
			}
			if _, ok := sys.Actions[id]; ok && !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	for _, id := range sys.ActionIDs() {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// scopeTypes are the scope types checked: service first, then the
// system's others, restricted to only if given.
func scopeTypes(sys *permatrix.System, only []string) []string {
	var out []string
	for _, s := range append([]string{"service"}, sys.ScopeTypes...) {
		if !slices.Contains(out, s) && sys.HasScopeType(s) && (len(only) == 0 || slices.Contains(only, s)) {
			out = append(out, s)
		}
	}
	return out
}

// alsoGrants resolves "system:permission" and "system:*" to assignments of
// the probe user at the permission's scope (service where allowed).
func alsoGrants(c permatrix.Catalog, system string, specs []string) ([]permatrix.Assignment, error) {
	var out []permatrix.Assignment
	for _, spec := range specs {
		sysID, perm, ok := strings.Cut(spec, ":")
		other, known := c[sysID]
		switch {
		case !ok || sysID == "" || perm == "":
			return nil, fmt.Errorf("--also %q: want SYSTEM:PERMISSION or SYSTEM:*", spec)
		case !known:
			return nil, fmt.Errorf("--also %q: unknown system %q", spec, sysID)
		case sysID == system:
			return nil, fmt.Errorf("--also %q: only other systems' permissions (the column is the only grant in %s)", spec, system)
		}
		perms := []string{perm}
		if perm == "*" {
			perms = perms[:0]
			for id := range other.Permissions {
				perms = append(perms, id)
			}
			slices.Sort(perms)
			if len(perms) == 0 {
				return nil, fmt.Errorf("--also %q: system %q has no assignable permissions", spec, sysID)
			}
		}
		for _, id := range perms {
			g, ok := other.Permissions[id]
			if !ok {
				return nil, fmt.Errorf("--also %q: system %q has no permission %q", spec, sysID, id)
			}
			out = append(out, permatrix.Assignment{
				ID: "matrix-also-" + sysID + "-" + id, Subject: permatrix.UserPrefix + ProbeUser,
				System: sysID, Permission: id, Scope: assignAt(g.Scopes),
			})
		}
	}
	return out, nil
}

// patch stores (or removes) the probe's assignments.
func patch(ctx context.Context, b store.Backend, as []permatrix.Assignment, add bool) error {
	_, err := store.Update(ctx, b, func(tx *store.Tx) error {
		for _, a := range as {
			if add {
				if err := tx.CreateAssignment(&a); err != nil {
					return err
				}
			} else if _, err := tx.DeleteAssignment(a.ID); err != nil {
				return err
			}
		}
		return nil
	})
	return err
}
