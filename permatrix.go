// Package permatrix holds the domain types of the permatrix policy decision
// point: who holds what (assignments, group memberships, custom roles,
// projects), the check a client asks and the decision it gets back.
//
// Everything else depends on this package and it depends on nothing of the
// project's own: internal/bolt persists these types, internal/opa evaluates
// the Rego policies over them, internal/http serves them, cmd/ wires them.
package permatrix

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Scope is where an assignment holds or where a check asks: the whole
// system ("service") or one resource of a system-specific type.
type Scope struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`
}

// ServiceScope is the whole system: every project, the tenant.
var ServiceScope = Scope{Type: "service"}

// IsService reports whether s is the whole-system scope.
func (s Scope) IsService() bool { return s.Type == "service" }

// Subject prefixes in assignments: "user:<id>" or "group:<id>".
const (
	UserPrefix  = "user:"
	GroupPrefix = "group:"
)

// MaxIDBytes bounds user, group, project and role ids (contract §2).
const MaxIDBytes = 256

// MaxAssertedGroups bounds the groups one check may assert (a check's
// groups, a header or a token's claim): each is a principal whose grants a
// decision looks up, so a 1 MiB body of groups cost a second of CPU to
// anyone who may ask. data.permatrix.errors holds the same bound.
const MaxAssertedGroups = 256

// Assignment gives a subject a role or a single permission of a system at a
// scope. Exactly one of Role and Permission is set.
type Assignment struct {
	ID         string `json:"id"`
	Subject    string `json:"subject"`
	System     string `json:"system"`
	Role       string `json:"role,omitempty"`
	Permission string `json:"permission,omitempty"`
	Scope      Scope  `json:"scope"`
}

// Kind is "role" or "permission": what the assignment grants.
func (a Assignment) Kind() string {
	if a.Role != "" {
		return "role"
	}
	return "permission"
}

// Role is a custom role: a named permission set defined at run time
// (Blue Prism's roles are such sets).
type Role struct {
	System      string   `json:"system"`
	Name        string   `json:"name"`
	Permissions []string `json:"permissions"`
}

// Project is a registered project of a system. Some vendors give its creator
// a role on it, and some rules depend on its kind ("assisted"/"unassisted").
type Project struct {
	System    string `json:"system"`
	ID        string `json:"id"`
	CreatedBy string `json:"created_by,omitempty"`
	Kind      string `json:"kind,omitempty"`
}

// Membership puts a user in a group.
type Membership struct {
	Group string `json:"group"`
	User  string `json:"user"`
}

// AssignmentFilter selects assignments for listing; empty fields match all.
type AssignmentFilter struct {
	Subject   string
	System    string
	ScopeType string
	ScopeID   string
	Limit     int
	Cursor    string // list assignments with an id greater than this
	// WithGroups, with a user Subject, lists the assignments of the groups
	// the user is stored in as well as the user's own.
	WithGroups bool
}

// Page sizes of a listing, of assignments or of a group's members
// (contract §4: limit 1..1000).
const (
	DefaultPageLimit = 100
	MaxPageLimit     = 1000
)

// ParsePageLimit reads a listing's limit parameter (1 to MaxPageLimit).
func ParsePageLimit(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, errPageLimit()
	}
	return PageLimit(n)
}

// PageLimit is the size of a listing's page asked for with limit:
// DefaultPageLimit for 0 (none given). Every listing pages with it.
func PageLimit(limit int) (int, error) {
	switch {
	case limit == 0:
		return DefaultPageLimit, nil
	case limit < 0 || limit > MaxPageLimit:
		return 0, errPageLimit()
	}
	return limit, nil
}

// PageLimit is the page size the filter asks for (PageLimit of f.Limit).
func (f AssignmentFilter) PageLimit() (int, error) { return PageLimit(f.Limit) }

func errPageLimit() error {
	return Errorf(EINVALID, "limit must be a whole number from 1 to %d", MaxPageLimit)
}

// Match reports whether a passes the filter (Limit and Cursor aside).
// With WithGroups, the subject is not compared: whose grants are read
// decides.
func (f AssignmentFilter) Match(a Assignment) bool {
	return (f.Subject == "" || f.WithGroups || f.Subject == a.Subject) &&
		(f.System == "" || f.System == a.System) &&
		(f.ScopeType == "" || f.ScopeType == a.Scope.Type) &&
		(f.ScopeID == "" || f.ScopeID == a.Scope.ID)
}

// ValidSubject reports whether s is "user:<id>" or "group:<id>" with a
// non-empty id of at most MaxIDBytes.
func ValidSubject(s string) bool {
	for _, p := range []string{UserPrefix, GroupPrefix} {
		if id, ok := strings.CutPrefix(s, p); ok {
			return ValidID(id)
		}
	}
	return false
}

// CheckID is the one check of an id a client sends — user, group,
// resource, project, role: nil if it is a ValidID, else an EINVALID error
// naming the field. Checks, batch items, forward-auth and the permissions
// endpoint validate ids with it, exactly as the store does before keeping
// them.
func CheckID(field, id string) error {
	if ValidID(id) {
		return nil
	}
	if id == "" {
		return Errorf(EINVALID, "%s is required", field)
	}
	return Errorf(EINVALID, "%s must be 1 to %d bytes without control characters", field, MaxIDBytes)
}

// ValidID reports whether id is a usable identifier: non-empty, at most
// MaxIDBytes, valid UTF-8, no control characters (C0 or DEL: ids are bbolt
// keys and log fields). Invalid UTF-8 is refused because JSON cannot carry
// it: every encoder writes it as U+FFFD, so two such ids would be one key
// in GET /v1/export and in what the policies and the stock opa read.
func ValidID(id string) bool {
	if id == "" || len(id) > MaxIDBytes || !utf8.ValidString(id) {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x20 || id[i] == 0x7f {
			return false
		}
	}
	return true
}
