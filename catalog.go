package permatrix

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// System is one vendor system's catalog entry: systems/<id>/data.json,
// read by the policies as data.systems[id] and by the server to validate
// requests and to describe systems (GET /v1/systems). Systems may carry more
// keys (matrix tables, prerequisites); only these matter outside Rego.
type System struct {
	ID          string               `json:"id"`
	Name        string               `json:"name"`
	Vendor      string               `json:"vendor"`
	Package     string               `json:"package"`
	Documents   []string             `json:"documents"`
	ScopeTypes  []string             `json:"scope_types"`
	ContextKeys map[string]string    `json:"context_keys"`
	Roles       map[string]Grantable `json:"roles"`
	Permissions map[string]Grantable `json:"permissions"`
	Actions     map[string]Action    `json:"actions"`
	// CustomRoles is enabled where roles are defined at run time (Blue Prism).
	CustomRoles CustomRoles `json:"custom_roles"`
	// CreatorRole is the role a project's creator gets on it, if any.
	CreatorRole string `json:"creator_role,omitempty"`
}

// Grantable is a role or permission that can be assigned.
type Grantable struct {
	Name        string   `json:"name,omitempty"`
	Category    string   `json:"category,omitempty"`
	Scopes      []string `json:"scopes"`
	Description string   `json:"description,omitempty"`
}

// Action is what a check may ask for.
type Action struct {
	Scopes        []string `json:"scopes"`
	Description   string   `json:"description,omitempty"`
	Derived       bool     `json:"derived,omitempty"`
	NotAssignable string   `json:"not_assignable,omitempty"`
}

// CustomRoles says whether a system has run-time roles and at which scopes
// they may be assigned. In the catalog it is false or {"scopes": [...]}.
type CustomRoles struct {
	Enabled bool
	Scopes  []string
}

// UnmarshalJSON reads false/null (no custom roles) or {"scopes": [...]}.
func (c *CustomRoles) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "false", "null":
		*c = CustomRoles{}
		return nil
	}
	var v struct {
		Scopes []string `json:"scopes"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*c = CustomRoles{Enabled: true, Scopes: v.Scopes}
	return nil
}

// MarshalJSON writes the catalog form back.
func (c CustomRoles) MarshalJSON() ([]byte, error) {
	if !c.Enabled {
		return []byte("false"), nil
	}
	return json.Marshal(map[string][]string{"scopes": c.Scopes})
}

// Catalog is every known system by id.
type Catalog map[string]*System

// HasScopeType reports whether the system knows the scope type.
func (s *System) HasScopeType(t string) bool { return slices.Contains(s.ScopeTypes, t) }

// ActionIDs returns the system's action ids, sorted.
func (s *System) ActionIDs() []string {
	return slices.Sorted(maps.Keys(s.Actions))
}

// IDs returns the system ids, sorted.
func (c Catalog) IDs() []string { return slices.Sorted(maps.Keys(c)) }

// UnknownSystem is the error of a check's system or a query's ?system= (a
// listing's, the permissions') that is none of the catalog's: EINVALID
// naming the systems it has, so that a typo is seen at once (the list is
// public: GET /v1/systems). The policies word a check's the same
// (data.permatrix.errors, for the Data API and the stock opa:
// pdp.ValidateCheck).
func (c Catalog) UnknownSystem(id string) error {
	return Errorf(EINVALID, "%s", c.unknownSystem(id))
}

// NoSuchSystem is UnknownSystem's 404: a path that names a system the
// catalog does not have (no such resource).
func (c Catalog) NoSuchSystem(id string) error {
	return Errorf(ENOTFOUND, "%s", c.unknownSystem(id))
}

func (c Catalog) unknownSystem(id string) string {
	return fmt.Sprintf("unknown system %q: the systems are %s", id, strings.Join(c.IDs(), ", "))
}
