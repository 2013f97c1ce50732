// Package differential_test checks that the server and the stock opa binary,
// given the same policies, data and an export of the store, decide alike.
package differential_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/permatrix/permatrix/test/harness"
)

type system struct {
	ID          string   `json:"id"`
	ScopeTypes  []string `json:"scope_types"`
	Roles       map[string]struct{ Scopes []string }
	Permissions map[string]struct{ Scopes []string }
	Actions     map[string]struct{ Scopes []string }
}

func TestServerAgreesWithStockOPA(t *testing.T) {
	opaBin := harness.StockOPA(t)
	s := harness.Start(t, harness.Options{})
	rng := rand.New(rand.NewPCG(7, 42))

	var cat struct{ Systems []system }
	r := s.Do(http.MethodGet, "/v1/systems", nil, false)
	raw, _ := json.Marshal(r.Body)
	if err := json.Unmarshal(raw, &cat); err != nil {
		t.Fatal(err)
	}
	users := []string{"u0", "u1", "u2", "u3", "u4", "u5"}
	groups := []string{"g0", "g1", "administrators"}
	ids := []string{"p1", "p2", "p3"}
	pick := func(list []string) string { return list[rng.IntN(len(list))] }
	scopeFor := func(types []string) map[string]any {
		t := pick(types)
		if t == "service" {
			return map[string]any{"type": "service"}
		}
		return map[string]any{"type": t, "id": pick(ids)}
	}

	// Store: memberships, projects, and a few hundred assignment attempts
	// (the vendor rules refuse some; that is part of what is compared).
	for _, u := range users[:4] {
		s.Do(http.MethodPut, "/v1/groups/"+pick(groups)+"/members/"+u, nil, true)
	}
	for _, sys := range cat.Systems {
		if slices.Contains(sys.ScopeTypes, "project") {
			for _, p := range ids[:2] {
				s.Do(http.MethodPut, "/v1/systems/"+sys.ID+"/projects/"+p, map[string]any{"created_by": pick(users), "kind": pick([]string{"assisted", "unassisted"})}, true)
			}
		}
	}
	stored := 0
	for range 300 {
		sys := cat.Systems[rng.IntN(len(cat.Systems))]
		subject := "user:" + pick(users)
		if rng.IntN(4) == 0 {
			subject = "group:" + pick(groups)
		}
		a := map[string]any{"subject": subject, "system": sys.ID}
		kind, scopes := "permission", sys.Permissions
		if len(sys.Roles) > 0 && rng.IntN(2) == 0 {
			kind, scopes = "role", sys.Roles
		}
		keys := make([]string, 0, len(scopes))
		for k := range scopes {
			keys = append(keys, k)
		}
		if len(keys) == 0 {
			continue
		}
		slices.Sort(keys)
		k := pick(keys)
		a[kind] = k
		a["scope"] = scopeFor(scopes[k].Scopes)
		if s.Do(http.MethodPost, "/v1/assignments", a, true).Status == http.StatusCreated {
			stored++
		}
	}
	if stored < 50 {
		t.Fatalf("only %d assignments stored: the generator is off", stored)
	}

	// Checks: every system, random actions, subjects, scopes and groups.
	var checks []map[string]any
	for range 400 {
		sys := cat.Systems[rng.IntN(len(cat.Systems))]
		actions := make([]string, 0, len(sys.Actions))
		for a := range sys.Actions {
			actions = append(actions, a)
		}
		slices.Sort(actions)
		action := pick(actions)
		c := map[string]any{"subject": pick(users), "system": sys.ID, "action": action, "resource": scopeFor(sys.ScopeTypes)}
		if rng.IntN(5) == 0 {
			c["groups"] = []string{pick(groups)}
		}
		if rng.IntN(3) == 0 {
			c["context"] = map[string]any{"custom_project": rng.IntN(2) == 0, "space": pick(ids), "member_accepted_invite": rng.IntN(2) == 0,
				"role": pick([]string{"business_analyst", "recording_user", "project_admin"})}
		}
		checks = append(checks, c)
	}
	// Subjects at the id bounds (lib.valid_id: bytes, not characters; C0
	// and DEL refused), on a check a valid subject may be allowed.
	for _, subject := range []string{strings.Repeat("é", 128), strings.Repeat("é", 128) + "a", strings.Repeat("😀", 64) + "a",
		"u\x00", "u\x1f", "u\x7f", "u\u0080", ""} {
		checks = append(checks, map[string]any{"subject": subject, "system": "celonis-task-mining", "action": "edit_users"})
	}

	var server []any
	allowed := 0
	for _, c := range checks {
		r := s.Do(http.MethodPost, "/v1/data/permatrix/decision", map[string]any{"input": c}, false)
		if r.Status != 200 {
			t.Fatalf("data API: %d %s", r.Status, r.Raw)
		}
		server = append(server, r.Body["result"])
		if r.Body["result"].(map[string]any)["allow"] == true {
			allowed++
		}
	}
	if allowed < 20 || allowed > len(checks)-20 {
		t.Fatalf("%d of %d checks allowed: too one-sided to compare", allowed, len(checks))
	}

	dir := t.TempDir()
	export := s.Do(http.MethodGet, "/v1/export", nil, true).Raw
	writeFile(t, filepath.Join(dir, "export.json"), export)
	in, _ := json.Marshal(map[string]any{"checks": checks})
	writeFile(t, filepath.Join(dir, "input.json"), in)
	root := harness.Root()
	cmd := exec.Command(opaBin, "eval", "--format", "json", "--ignore", "*_test.rego",
		"-d", filepath.Join(root, "policies"), "-d", "systems:"+filepath.Join(root, "systems"), "-d", filepath.Join(dir, "export.json"),
		"-i", filepath.Join(dir, "input.json"),
		"[d | some c in input.checks; d := data.permatrix.decision with input as c]")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("stock opa eval: %v\n%s", err, out)
	}
	var res struct {
		Result []struct {
			Expressions []struct{ Value []any }
		}
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	stock := res.Result[0].Expressions[0].Value
	if len(stock) != len(server) {
		t.Fatalf("stock opa gave %d decisions for %d checks", len(stock), len(server))
	}
	diffs := 0
	for i := range server {
		if !reflect.DeepEqual(normalize(t, server[i]), normalize(t, stock[i])) {
			diffs++
			if diffs <= 5 {
				t.Errorf("check %v:\nserver %v\nstock  %v", checks[i], server[i], stock[i])
			}
		}
	}
	if diffs > 0 {
		t.Fatalf("%d of %d decisions differ", diffs, len(server))
	}
	t.Logf("%d checks (%d allowed) over %d assignments: server and stock opa agree", len(checks), allowed, stored)

	// The same requests to permatrix and to `opa run --server`.
	t.Run("REST API", func(t *testing.T) { compareREST(t, opaBin, s, filepath.Join(dir, "export.json"), checks) })
}

// normalize round-trips through JSON so that numbers compare alike.
func normalize(t *testing.T, v any) any {
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(fmt.Errorf("%s: %w", raw, err))
	}
	return out
}

func writeFile(t *testing.T, path string, b []byte) {
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
