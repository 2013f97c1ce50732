package opa

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/permatrix/permatrix"
)

// A bundle that loads but cannot work is refused, at startup and on
// reload, with every reason: a catalog (data.systems[id]) lacking a key the
// policies or the server read, naming a scope type it does not declare, or
// naming a package that has no decision rule; and a system package no
// catalog names — which is what deleting a catalog file looks like, and
// would silently drop the system.

// requiredKeys are the catalog keys read outside the system's own package:
// by the entrypoints (package, actions), the write rules (roles,
// permissions, custom_roles), the server's validation (scope_types,
// actions) and GET /v1/systems (name, vendor, documents, context_keys).
var requiredKeys = []string{"name", "vendor", "package", "documents", "scope_types", "context_keys", "roles", "permissions", "actions", "custom_roles"}

// systemsPackage is where the system packages live: data.permatrix.systems.<package>.
var systemsPackage = ast.MustParseRef("data.permatrix.systems")

func parseCatalog(v any) (permatrix.Catalog, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var keys map[string]map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		return nil, fmt.Errorf("data.systems: each system must be an object: %w", err)
	}
	if len(keys) == 0 {
		return nil, errors.New("bundle has no systems (data.systems is empty)")
	}
	var errs []error
	c := permatrix.Catalog{}
	for _, id := range slices.Sorted(maps.Keys(keys)) {
		var missing []string
		for _, k := range requiredKeys {
			if v, ok := keys[id][k]; !ok || string(v) == "null" {
				missing = append(missing, k)
			}
		}
		if len(missing) > 0 {
			errs = append(errs, fmt.Errorf("data.systems[%q] lacks %s", id, strings.Join(missing, ", ")))
			continue
		}
		raw, _ := json.Marshal(keys[id])
		var s permatrix.System
		// Members matched to fields exactly, as Rego reads them:
		// encoding/json matched them case-insensitively, with Unicode
		// folding ("ſcope_types", a long s, was scope_types to it, and
		// sorting after the real one replaced it).
		if err := jsonv2.Unmarshal(raw, &s); err != nil {
			errs = append(errs, fmt.Errorf("data.systems[%q]: %w", id, err))
			continue
		}
		s.ID = id
		errs = append(errs, checkScopes(&s)...)
		c[id] = &s
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// checkScopes: every scope a role, permission or action names is one of the
// system's scope types, and the package names a package.
func checkScopes(s *permatrix.System) []error {
	var errs []error
	if s.Package == "" || strings.ContainsAny(s.Package, ".[]\"") {
		errs = append(errs, fmt.Errorf("data.systems[%q].package %q is not a package name", s.ID, s.Package))
	}
	check := func(kind, name string, scopes []string) {
		for _, sc := range scopes {
			if !s.HasScopeType(sc) {
				errs = append(errs, fmt.Errorf("data.systems[%q].%s[%q] names scope type %q, not among scope_types %v", s.ID, kind, name, sc, s.ScopeTypes))
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.Roles)) {
		check("roles", name, s.Roles[name].Scopes)
	}
	for _, name := range slices.Sorted(maps.Keys(s.Permissions)) {
		check("permissions", name, s.Permissions[name].Scopes)
	}
	for _, name := range slices.Sorted(maps.Keys(s.Actions)) {
		check("actions", name, s.Actions[name].Scopes)
	}
	return errs
}

// checkPackages: each catalog's package has a decision rule, and each
// package under data.permatrix.systems is named by a catalog.
func checkPackages(c permatrix.Catalog, compiler *ast.Compiler) error {
	var errs []error
	named := map[string]bool{}
	for _, id := range c.IDs() {
		pkg := c[id].Package
		named[pkg] = true
		decision := systemsPackage.Append(ast.StringTerm(pkg)).Append(ast.StringTerm("decision"))
		if len(compiler.GetRulesExact(decision)) == 0 {
			errs = append(errs, fmt.Errorf("data.systems[%q] names package %q, but %s has no rules (no package permatrix.systems.%s with a decision rule)", id, pkg, decision, pkg))
		}
	}
	var orphans []string
	for _, m := range compiler.Modules {
		path := m.Package.Path
		if len(path) <= len(systemsPackage) || !path.HasPrefix(systemsPackage) {
			continue
		}
		str, ok := path[len(systemsPackage)].Value.(ast.String)
		pkg := string(str)
		if ok && !named[pkg] && !slices.Contains(orphans, pkg) {
			orphans = append(orphans, pkg)
			where := "a module"
			if m.Package.Location != nil {
				where = m.Package.Location.File
			}
			errs = append(errs, fmt.Errorf("%s: package permatrix.systems.%s is named by no catalog (systems/<id>/data.json with \"package\": %q); was its catalog deleted?", where, pkg, pkg))
		}
	}
	return errors.Join(errs...)
}
