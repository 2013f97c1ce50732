package opa_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/permatrix/permatrix"
)

// oldGrants are the library's grant helpers as they were before the
// system policies read one system's grants by direct lookup (commit
// 6a3230d): every system's grants of a principal, filtered by system.
const oldGrants = `package old

import data.permatrix.lib

assignments_of(p) := {a |
	some sys, kinds in data.store.grants[p]
	some kind, names in kinds
	some name, scopes in names
	some r in scopes
	a := {"id": r.assignment, "subject": p, "system": sys, kind: name, "scope": r.scope, "via": p}
}

grants_of(user, asserted) := {a |
	some p in lib.principals_of(user, asserted)
	some a in assignments_of(p)
}

system_grants_of(user, asserted, sys) := {g |
	some g in grants_of(user, asserted)
	g.system == sys
}

grants := grants_of(input.subject, lib.asserted_groups)
`

// The direct lookups (lib.system_grants, lib.system_grants_of,
// lib.assignments_of through system_assignments_of) answer what the
// filtered reads they replaced answered, over random stores holding what
// no write would store: non-objects at every level, odd kinds, systems
// named like others, numeric-looking keys. Each pair is evaluated by
// topdown over the same data; values and errors must match.
func TestSystemGrantsAsBefore(t *testing.T) {
	systems := []string{"celonis-task-mining", "uipath-orchestrator", "blueprism", "celonis-task-mining ", "Celonis-Task-Mining", "", "1", "uipath"}
	pairs := []pair{
		{"system_grants", "lib.system_grants(input.sys)", "{g | some g in data.old.grants; g.system == input.sys}"},
		{"system_grants_of", "lib.system_grants_of(input.actor, lib.asserted_groups, input.sys)",
			"data.old.system_grants_of(input.actor, lib.asserted_groups, input.sys)"},
		{"assignments_of", "lib.assignments_of(input.p)", "data.old.assignments_of(input.p)"},
	}
	comparePairs(t, pairs, func(rng *rand.Rand) map[string]any { return hostileStore(rng, systems) }, systems)
}

// pair is a helper as it is now and as it was, each a query binding x.
type pair struct{ name, new, old string }

// roles_of — the role names under data.store.grants[principal][system].role
// — answers as the assignments built one by one and filtered did, where
// the Celonis write rules used them (members are granted nothing; only an
// admin grants), over random stores a write could make: grants of kind
// role or permission only, each leaf a reason with its assignment and
// scope (internal/store: GrantKey, leafOf). Over stores no write makes
// they differ, and need not: a role whose leaves lack an assignment id
// counts here, not there.
func TestRolesOfAsBefore(t *testing.T) {
	systems := []string{"celonis-task-mining", "uipath-orchestrator", "blueprism", "Celonis-Task-Mining", ""}
	pairs := []pair{
		{"roles_of", "lib.roles_of(input.actor, lib.asserted_groups, input.sys)",
			"{g.role | some g in data.old.system_grants_of(input.actor, lib.asserted_groups, input.sys); g.system == input.sys; g.role}"},
		{"member_violations", `is_string(input.actor); x := data.permatrix.celonis.member_violations with input as {"op": "assign", "assignment": {"subject": concat("", ["user:", input.actor]), "permission": "p"}}`,
			`is_string(input.actor); x := {sprintf("%s is a Celonis member: members can be granted no permission", [concat("", ["user:", input.actor])]) |
				{g.role | some g in data.old.grants_of(input.actor, []); g.system == "celonis-task-mining"; g.role} == {"member"}}`},
		{"actor_is_admin (celonis)", "x := data.permatrix.celonis.actor_is_admin",
			`x := true; some g in data.old.grants_of(input.actor, lib.asserted_groups); g.system == "celonis-task-mining"; g.role == "admin"`},
	}
	comparePairs(t, pairs, func(rng *rand.Rand) map[string]any { return storeOfWrites(rng, systems) }, systems)
}

// comparePairs evaluates each pair by topdown over stores from gen and
// fails on the first input where the two differ (value or error).
func comparePairs(t *testing.T, pairs []pair, gen func(*rand.Rand) map[string]any, systems []string) {
	t.Helper()
	opts := []func(*rego.Rego){rego.Module("old.rego", oldGrants)}
	err := fs.WalkDir(permatrix.DefaultBundle, "policies", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".rego") || strings.HasSuffix(p, "_test.rego") {
			return err
		}
		b, err := fs.ReadFile(permatrix.DefaultBundle, p)
		opts = append(opts, rego.Module(p, string(b)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	prepared := map[string][2]rego.PreparedEvalQuery{}
	ctx := context.Background()
	db := inmem.NewFromObject(map[string]any{"store": map[string]any{}})
	opts = append(opts, rego.Store(db))
	for _, pr := range pairs {
		var pq [2]rego.PreparedEvalQuery
		for i, q := range []string{pr.new, pr.old} {
			body := "x := " + q
			if strings.Contains(q, "x := ") {
				body = q
			}
			body = strings.ReplaceAll(body, "lib.", "data.permatrix.lib.")
			var err error
			pq[i], err = rego.New(append(opts, rego.Query(body))...).PrepareForEval(ctx)
			if err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		prepared[pr.name] = pq
	}
	rng := rand.New(rand.NewPCG(5, 9))
	defined, errored := 0, 0
	for i := range 150 {
		hostile := gen(rng)
		if err := storage.WriteOne(ctx, db, storage.ReplaceOp, storage.MustParsePath("/store"), hostile); err != nil {
			t.Fatal(err)
		}
		users := []any{"u0", "u1", 7, nil}
		input := map[string]any{"subject": users[rng.IntN(len(users))], "actor": users[rng.IntN(len(users))]}
		if rng.IntN(3) == 0 {
			input["groups"] = []any{"g0", "g1", 3}[:rng.IntN(4)]
		}
		for _, pr := range pairs {
			for _, sys := range systems {
				for _, p := range []string{"user:u0", "group:g0", "user:u1"} {
					in := map[string]any{"sys": sys, "p": p}
					for k, v := range input {
						in[k] = v
					}
					var got [2]string
					for j, pq := range prepared[pr.name] {
						rs, err := pq.Eval(ctx, rego.EvalInput(in))
						switch {
						case err != nil:
							got[j] = "error"
						case len(rs) == 0:
							got[j] = "undefined"
						default:
							raw, _ := json.Marshal(rs[0].Bindings["x"])
							got[j] = string(raw)
						}
					}
					if got[0] != got[1] {
						t.Fatalf("store %d, %s, input %v:\n new %s\n old %s\nstore %v", i, pr.name, in, got[0], got[1], hostile)
					}
					switch got[0] {
					case "error":
						errored++
					case "undefined", "[]":
					default:
						defined++
					}
				}
			}
		}
	}
	t.Logf("%d answers with grants, %d errors", defined, errored)
	if defined == 0 {
		t.Fatal("no store held a grant: the comparison says little")
	}
}

// hostileStore is a data.store of grants and memberships, mostly of the
// layout's shape, now and then anything else at any level.
func hostileStore(rng *rand.Rand, systems []string) map[string]any {
	odd := func() any { return []any{"s", 1, nil, true, []any{"x"}, map[string]any{}}[rng.IntN(6)] }
	// Kinds besides role and permission, which no write stores (keys.go:
	// KindRole, KindPermission). Not "system": its name overrides the
	// assignment's system, so the filter found it under any system and a
	// direct lookup finds it under its own only; no lookup by system can
	// answer as a scan of every system did there.
	kinds := []string{"role", "permission", "id", "scope", "via", "subject", "x", "0"}
	leaf := func() any {
		if rng.IntN(8) == 0 {
			return odd()
		}
		r := map[string]any{"assignment": fmt.Sprint(rng.IntN(100)), "scope": map[string]any{"type": "service"}}
		if rng.IntN(6) == 0 {
			delete(r, "assignment")
		}
		return r
	}
	level := func(keys []string, child func() any) any {
		if rng.IntN(10) == 0 {
			return odd()
		}
		obj := map[string]any{}
		for range rng.IntN(3) + 1 {
			obj[keys[rng.IntN(len(keys))]] = child()
		}
		return obj
	}
	scopes := func() any { return level([]string{"service", "project:p1", "0"}, leaf) }
	names := func() any { return level([]string{"admin", "member", "analyst", "r1", "1"}, scopes) }
	kindsOf := func() any {
		if rng.IntN(12) == 0 {
			return level(kinds, names)
		}
		return level(kinds[:2], names)
	}
	grants := map[string]any{}
	for _, p := range []string{"user:u0", "user:u1", "group:g0", "group:g1", "user:7"} {
		if rng.IntN(4) > 0 {
			grants[p] = level(systems, kindsOf)
		}
	}
	return map[string]any{
		"revision":    1,
		"grants":      grants,
		"memberships": map[string]any{"u0": level([]string{"g0", "g1"}, func() any { return true }), "u1": odd()},
	}
}

// storeOfWrites is a data.store of grants and memberships as writes make
// them (internal/store): kinds role and permission, each leaf a reason
// naming its assignment, scope and principal.
func storeOfWrites(rng *rand.Rand, systems []string) map[string]any {
	n := 0
	grants := map[string]any{}
	for _, p := range []string{"user:u0", "user:u1", "group:g0", "group:g1", "user:7"} {
		if rng.IntN(4) == 0 {
			continue
		}
		bySystem := map[string]any{}
		for range rng.IntN(3) + 1 {
			kinds := map[string]any{}
			for range rng.IntN(3) + 1 {
				kind := []string{"role", "permission"}[rng.IntN(2)]
				name := []string{"admin", "member", "analyst", "r1"}[rng.IntN(4)]
				scope := []string{"service", "project:p1"}[rng.IntN(2)]
				names, _ := kinds[kind].(map[string]any)
				if names == nil {
					names = map[string]any{}
					kinds[kind] = names
				}
				scopes, _ := names[name].(map[string]any)
				if scopes == nil {
					scopes = map[string]any{}
					names[name] = scopes
				}
				n++
				s := map[string]any{"type": "service"}
				if scope != "service" {
					s = map[string]any{"type": "project", "id": "p1"}
				}
				scopes[scope] = map[string]any{"kind": kind, kind: name, "scope": s, "via": p, "assignment": fmt.Sprintf("a%d", n)}
			}
			bySystem[systems[rng.IntN(len(systems))]] = kinds
		}
		grants[p] = bySystem
	}
	memberships := map[string]any{}
	for _, u := range []string{"u0", "u1", "7"} {
		groups := map[string]any{}
		for _, g := range []string{"g0", "g1"} {
			if rng.IntN(3) == 0 {
				groups[g] = true
			}
		}
		if len(groups) > 0 {
			memberships[u] = groups
		}
	}
	return map[string]any{"revision": 1, "grants": grants, "memberships": memberships}
}
