package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/test/harness"
)

// TestEvaluatorsAnswerAlike holds the vm (the default evaluator) to OPA's
// topdown (--evaluator topdown) through the HTTP API with hostile input:
// two servers get the same writes — assignments, memberships, custom
// roles, projects, by the operator and by actors under delegation rules,
// with unicode and numeric ids, users that are also group names, refused
// writes — then the same checks (context values of every JSON type,
// numbers as 1 and 1.0 and beyond float64, duplicate and odd groups),
// batches, forward-auth requests and effective permissions. Every answer
// — status, decision, reasons and missing in their order, violations,
// refusals, error messages — is the same, but for decision ids and
// revisions.
func TestEvaluatorsAnswerAlike(t *testing.T) {
	vmSrv := harness.Start(t, harness.Options{})
	tdSrv := harness.Start(t, harness.Options{Evaluator: opa.Topdown})
	if got := vmSrv.Svc.Policy().Evaluator(); got != opa.VM {
		t.Fatalf("the default server evaluates with %s", got)
	}
	if got := tdSrv.Svc.Policy().Evaluator(); got != opa.Topdown {
		t.Fatalf("--evaluator topdown evaluates with %s", got)
	}
	h := hostile{rng: rand.New(rand.NewPCG(3, 5)), cat: vmSrv.Svc.Catalog()}
	h.systems = h.cat.IDs()
	statuses, allowed := map[int]int{}, 0
	same := func(what string, headers []string, method, path string, body any, admin bool) harness.Response {
		t.Helper()
		a := vmSrv.Do(method, path, body, admin, headers...)
		b := tdSrv.Do(method, path, body, admin, headers...)
		na, nb := normalized(t, a), normalized(t, b)
		if na != nb {
			t.Fatalf("%s %s %s %v %s:\n vm      %s\n topdown %s", what, method, path, headers, bodyText(body), na, nb)
		}
		statuses[a.Status]++
		if a.Body["allow"] == true {
			allowed++
		}
		return a
	}
	for i := range 300 {
		method, path, body, headers := h.write()
		r := same(fmt.Sprintf("write %d", i), headers, method, path, body, true)
		if id, ok := r.Body["id"].(string); ok {
			h.assignments = append(h.assignments, id)
		}
	}
	for i := range 300 {
		same(fmt.Sprintf("check %d", i), nil, http.MethodPost, "/v1/check", h.check(), false)
	}
	for i := range 10 {
		checks := make([]any, 25)
		for j := range checks {
			checks[j] = h.check()
		}
		same(fmt.Sprintf("batch %d", i), nil, http.MethodPost, "/v1/check/batch", map[string]any{"checks": checks}, false)
	}
	for i := range 100 {
		same(fmt.Sprintf("forward-auth %d", i), h.forward(), http.MethodGet, "/v1/forward-auth", nil, false)
	}
	for _, u := range h.users() {
		same("permissions", nil, http.MethodGet, "/v1/subjects/"+url.PathEscape(u)+"/permissions", nil, true)
	}
	// The corpus must reach the interesting answers, or the comparison
	// says little.
	t.Logf("statuses: %v, %d allowed", statuses, allowed)
	if allowed < 20 {
		t.Errorf("only %d checks allowed: the corpus is lopsided", allowed)
	}
	for _, status := range []int{200, 201, 400, 403, 422} {
		if statuses[status] < 10 {
			t.Errorf("only %d answers %d: the corpus is lopsided (%v)", statuses[status], status, statuses)
		}
	}
}

// normalized is an answer without what differs between two servers that
// answer alike: decision ids and revisions.
func normalized(t *testing.T, r harness.Response) string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(r.Raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return fmt.Sprintf("%d %q", r.Status, r.Raw)
	}
	var strip func(any)
	strip = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			delete(x, "decision_id")
			delete(x, "revision")
			for _, e := range x {
				strip(e)
			}
		case []any:
			for _, e := range x {
				strip(e)
			}
		}
	}
	strip(v)
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d %s", r.Status, raw)
}

func bodyText(body any) string {
	raw, _ := json.Marshal(body)
	return string(raw)
}

// hostile draws writes and checks from a catalog, with ids that are
// unicode, numeric, names of groups and users both, and the like.
type hostile struct {
	rng         *rand.Rand
	cat         permatrix.Catalog
	systems     []string
	assignments []string
}

var (
	hostileUsers    = []string{"ann", "bob", "ü-ser", "0", "1.0", "ops", "administrators", "x:y", "a b", "\u202eevil"}
	hostileGroups   = []string{"ops", "administrators", "0", "ann", "dev team"}
	hostileProjects = []string{"p1", "p2", "0", "ü"}
)

func (h *hostile) pick(list []string) string { return list[h.rng.IntN(len(list))] }

func (h *hostile) users() []string { return hostileUsers }

func (h *hostile) scope(types []string) map[string]any {
	t := h.pick(types)
	if t == "service" {
		return map[string]any{"type": t}
	}
	return map[string]any{"type": t, "id": h.pick(hostileProjects)}
}

// assignment is a role, custom role or permission of a system at one of
// the scopes it has, and now and then one the rules refuse.
func (h *hostile) assignment() map[string]any {
	sys := h.cat[h.pick(h.systems)]
	a := map[string]any{"system": sys.ID, "subject": "user:" + h.pick(hostileUsers)}
	if h.rng.IntN(3) == 0 {
		a["subject"] = "group:" + h.pick(hostileGroups)
	}
	switch {
	case sys.CustomRoles.Enabled && h.rng.IntN(4) == 0:
		a["role"] = h.pick([]string{"custom-a", "custom-b", "0"})
		a["scope"] = h.scope(sys.CustomRoles.Scopes)
	case len(sys.Permissions) > 0 && (len(sys.Roles) == 0 || h.rng.IntN(3) == 0):
		p := h.pick(slices.Sorted(maps.Keys(sys.Permissions)))
		a["permission"] = p
		a["scope"] = h.scope(sys.Permissions[p].Scopes)
	default:
		r := h.pick(slices.Sorted(maps.Keys(sys.Roles)))
		a["role"] = r
		a["scope"] = h.scope(sys.Roles[r].Scopes)
	}
	if h.rng.IntN(8) == 0 {
		a["scope"] = h.scope(sys.ScopeTypes) // maybe a scope the rules refuse
	}
	if h.rng.IntN(20) == 0 {
		a["permission"], a["role"] = nil, "no-such-role"
		delete(a, "permission")
	}
	return a
}

// write is a write request: method, path, body and headers.
func (h *hostile) write() (string, string, any, []string) {
	var headers []string
	actor := ""
	if h.rng.IntN(2) == 0 {
		actor = h.pick(hostileUsers)
	}
	withActor := func(body map[string]any) map[string]any {
		if actor != "" {
			body["actor"] = actor
		}
		return body
	}
	if actor != "" && h.rng.IntN(2) == 0 {
		headers = []string{"X-Permatrix-Actor", actor}
		withActor = func(body map[string]any) map[string]any { return body }
	}
	sys := h.cat[h.pick(h.systems)]
	member := "/v1/groups/" + url.PathEscape(h.pick(hostileGroups)) + "/members/" + url.PathEscape(h.pick(hostileUsers))
	switch n := h.rng.IntN(10); {
	case n < 4:
		return http.MethodPost, "/v1/assignments", withActor(h.assignment()), headers
	case n == 4 && len(h.assignments) > 0:
		return http.MethodDelete, "/v1/assignments/" + url.PathEscape(h.pick(h.assignments)), withActor(map[string]any{}), headers
	case n == 5:
		return http.MethodPut, member, withActor(map[string]any{}), headers
	case n == 6:
		return http.MethodDelete, member, withActor(map[string]any{}), headers
	case n == 7:
		perms := []string{}
		for _, p := range append(slices.Sorted(maps.Keys(sys.Permissions)), "no-such-permission") {
			if h.rng.IntN(3) == 0 {
				perms = append(perms, p)
			}
		}
		path := "/v1/systems/" + sys.ID + "/roles/" + url.PathEscape(h.pick([]string{"custom-a", "custom-b", "0", "ü"}))
		if h.rng.IntN(4) == 0 {
			return http.MethodDelete, path, withActor(map[string]any{}), headers
		}
		return http.MethodPut, path, withActor(map[string]any{"permissions": perms}), headers
	default:
		path := "/v1/systems/" + sys.ID + "/projects/" + url.PathEscape(h.pick(hostileProjects))
		body := map[string]any{"created_by": h.pick(hostileUsers), "kind": h.pick([]string{"assisted", "unassisted", ""})}
		return http.MethodPut, path, withActor(body), headers
	}
}

// contextValue is a context value of any JSON type, numbers written as
// clients write them.
func (h *hostile) contextValue(depth int) any {
	switch h.rng.IntN(9) {
	case 0:
		return nil
	case 1:
		return h.rng.IntN(2) == 0
	case 2:
		return json.Number(h.pick([]string{"1", "1.0", "0", "-0", "1e400", "123456789012345678901234567890", "0.1", "-1", "2"}))
	case 3:
		return h.pick([]string{"", "process", "business_object", "skill", "true", "business_analyst", "administrator", "p1", "ü", "0"})
	case 4, 5:
		if depth > 2 {
			return "x"
		}
		out := []any{}
		for range h.rng.IntN(4) {
			out = append(out, h.contextValue(depth+1))
		}
		return out
	case 6:
		if depth > 2 {
			return nil
		}
		m := map[string]any{}
		for range h.rng.IntN(3) {
			m[h.pick([]string{"a", "process", "role", "0", "id"})] = h.contextValue(depth + 1)
		}
		return m
	case 7:
		return []any{"process", "business_object", "process"}
	}
	return true
}

// check is a check body a client may send: valid but odd most of the
// time, sometimes one the server refuses.
func (h *hostile) check() map[string]any {
	sys := h.cat[h.pick(h.systems)]
	c := map[string]any{"subject": h.pick(hostileUsers), "system": sys.ID, "action": h.pick(slices.Sorted(maps.Keys(sys.Actions)))}
	if h.rng.IntN(3) > 0 {
		c["resource"] = h.scope(sys.ScopeTypes)
	}
	if h.rng.IntN(2) == 0 {
		ctx := map[string]any{}
		for range h.rng.IntN(4) {
			ctx[h.pick(append(slices.Sorted(maps.Keys(sys.ContextKeys)), "role", "space", "extra"))] = h.contextValue(0)
		}
		c["context"] = ctx
	}
	if h.rng.IntN(3) == 0 {
		groups := []any{}
		for range h.rng.IntN(5) {
			groups = append(groups, h.pick(append([]string{c["subject"].(string), "ops"}, hostileGroups...)))
		}
		c["groups"] = groups
	}
	switch h.rng.IntN(25) {
	case 0:
		c["action"] = "no-such-action"
	case 1:
		c["resource"] = map[string]any{"type": "no-such-type", "id": "x"}
	case 2:
		c["groups"] = []any{""}
	}
	return c
}

// forward is a forward-auth request's headers.
func (h *hostile) forward() []string {
	sys := h.cat[h.pick(h.systems)]
	headers := []string{"X-Forwarded-User", h.pick(hostileUsers), "X-Permatrix-System", sys.ID, "X-Permatrix-Action", h.pick(slices.Sorted(maps.Keys(sys.Actions)))}
	if s := h.scope(sys.ScopeTypes); s["type"] != "service" || h.rng.IntN(2) == 0 {
		headers = append(headers, "X-Permatrix-Resource-Type", s["type"].(string))
		if id, ok := s["id"].(string); ok {
			headers = append(headers, "X-Permatrix-Resource-Id", id)
		}
	}
	return headers
}
