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
	p, err := opa.Compile(ctx, b, nil)
	if err != nil {
		return nil, err
	}
	return Of(ctx, p, system, o)
}

// Of computes the matrix of system under the compiled policy p (e.g. the
// one serving): p decides over a probe store of its own, never p's.
func Of(ctx context.Context, p *opa.Policy, system string, o Options) (*Matrix, error) {
	// The probe user's decisions are not traffic: print() says nothing.
	ctx = opa.Quiet(ctx)
	pr, err := newProbe(ctx, p, system, o)
	if err != nil {
		return nil, err
	}
	m := &Matrix{System: system, Name: pr.sys.Name, BundleRevision: p.BundleRevision(), Also: o.Also,
		HolderKind: pr.holders[0].kind, Actions: pr.actions, Scopes: pr.scopes, Notes: pr.notes}
	for _, h := range pr.holders {
		m.Holders = append(m.Holders, Holder{ID: h.id, Name: h.name, AssignedAt: h.at})
		err := pr.holding(ctx, h, func(snap store.Snapshot) error {
			for _, action := range m.Actions {
				for _, scope := range m.Scopes {
					check, ok := pr.check(h, action, scope)
					if !ok {
						continue
					}
					d, err := p.Decide(ctx, snap, check)
					if err != nil {
						return fmt.Errorf("%s %s %s at %s: %w", system, h.id, action, scope, err)
					}
					c, err := pr.cell(h, check, scope, d)
					if err != nil {
						return err
					}
					m.Cells = append(m.Cells, c)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Explain decides one cell of the matrix of system again, traced: the
// cell, as Of computes it, and the policy rules whose bodies held while it
// was decided (opa.Policy.Explain), the generic entrypoint and library
// packages left out. ok is false when the matrix has no such cell.
func Explain(ctx context.Context, p *opa.Policy, system, holderID, action, scope string, o Options) (c Cell, rules []opa.Rule, ok bool, err error) {
	pr, err := newProbe(ctx, p, system, o)
	if err != nil {
		return Cell{}, nil, false, err
	}
	i := slices.IndexFunc(pr.holders, func(h holder) bool { return h.id == holderID })
	if i < 0 || !slices.Contains(pr.actions, action) || !slices.Contains(pr.scopes, scope) {
		return Cell{}, nil, false, nil
	}
	h := pr.holders[i]
	check, ok := pr.check(h, action, scope)
	if !ok {
		return Cell{}, nil, false, nil
	}
	err = pr.holding(ctx, h, func(snap store.Snapshot) error {
		d, r, err := p.Explain(ctx, snap, check, systemRule)
		if err != nil {
			return fmt.Errorf("%s %s %s at %s: %w", system, h.id, action, scope, err)
		}
		c, rules = Cell{}, r
		c, err = pr.cell(h, check, scope, d)
		return err
	})
	if err != nil {
		return Cell{}, nil, false, err
	}
	return c, rules, true, nil
}

// systemRule keeps the rules of the vendors' packages; the packages that
// dispatch and build decisions for every system (policies/permatrix: the
// entrypoints, lib, admin) decide no cell themselves.
func systemRule(r opa.Rule) bool {
	switch {
	case r.Package == "data.permatrix",
		r.Package == "data.permatrix.lib", strings.HasPrefix(r.Package, "data.permatrix.lib."),
		r.Package == "data.permatrix.admin", strings.HasPrefix(r.Package, "data.permatrix.admin."):
		return false
	}
	return true
}

// probe is the empty store a matrix is decided in: the probe project
// registered, and the --also grants held.
type probe struct {
	mem     *store.Memory
	sys     *permatrix.System
	holders []holder
	actions []string
	scopes  []string
	notes   []string
	o       Options
}

func newProbe(ctx context.Context, p *opa.Policy, system string, o Options) (*probe, error) {
	sys, ok := p.Catalog[system]
	if !ok {
		return nil, p.Catalog.UnknownSystem(system)
	}
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
	// Every holder's assignment is stored, decided on, and removed again,
	// so every column starts from the same state: the probe project
	// registered (created by the probe user) and the --also grants.
	mem := store.NewMemory()
	if _, err := store.Update(ctx, mem, func(tx *store.Tx) error {
		return tx.PutProject(permatrix.Project{System: system, ID: ProbeResource, CreatedBy: ProbeUser})
	}); err != nil {
		return nil, err
	}
	if err := patch(ctx, mem, also, true); err != nil {
		return nil, err
	}
	holders, notes := holdersOf(sys, readStrings(p, "systems", system, "role_order"))
	if len(holders) == 0 {
		return nil, fmt.Errorf("system %q has neither roles nor assignable permissions: nothing to tabulate", system)
	}
	return &probe{mem: mem, sys: sys, holders: holders, actions: actionOrder(sys, p), scopes: scopeTypes(sys, o.Scopes),
		notes: notes, o: o}, nil
}

// holding runs fn over a snapshot of the probe store in which the probe
// user holds h (only), and removes it again.
func (pr *probe) holding(ctx context.Context, h holder, fn func(store.Snapshot) error) error {
	a := permatrix.Assignment{ID: "matrix-" + h.id, Subject: permatrix.UserPrefix + ProbeUser, System: pr.sys.ID, Scope: h.at}
	if h.kind == HolderRole {
		a.Role = h.id
	} else {
		a.Permission = h.id
	}
	if err := patch(ctx, pr.mem, []permatrix.Assignment{a}, true); err != nil {
		return err
	}
	snap, err := pr.mem.View()
	if err != nil {
		return err
	}
	ferr := fn(snap)
	snap.Close()
	if err := patch(ctx, pr.mem, []permatrix.Assignment{a}, false); err != nil {
		return err
	}
	return ferr
}

// check is the check of h's cell for action at scope, if the matrix has it.
func (pr *probe) check(h holder, action, scope string) (permatrix.Check, bool) {
	res, ok := checkAt(pr.sys, h.at, action, scope)
	if !ok {
		return permatrix.Check{}, false
	}
	return permatrix.Check{Subject: ProbeUser, System: pr.sys.ID, Action: action, Resource: &res, Context: pr.o.Contexts[action]}, true
}

// cell is the cell of decision d of check.
func (pr *probe) cell(h holder, check permatrix.Check, scope string, d *permatrix.Decision) (Cell, error) {
	if len(d.Errors) > 0 {
		return Cell{}, fmt.Errorf("%s %s %s at %s: %s", pr.sys.ID, h.id, check.Action, scope, strings.Join(d.Errors, "; "))
	}
	c := Cell{Role: h.id, Action: check.Action, Scope: scope, Resource: *check.Resource, Context: check.Context, Allow: d.Allow}
	if !d.Allow {
		c.Missing = d.Missing
	}
	return c, nil
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
			return nil, fmt.Errorf("--also %q: %s", spec, permatrix.ErrorMessage(c.UnknownSystem(sysID)))
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
