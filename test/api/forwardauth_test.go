package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/permatrix/permatrix/test/harness"
)

func forward(s *harness.Server, method, path string, headers ...string) harness.Response {
	return s.Do(method, path, nil, false, headers...)
}

func TestForwardAuth(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": project("p1")})
	s.Assign(map[string]any{"subject": "group:ops", "system": tm, "permission": "edit_users", "scope": service})
	ask := []string{"X-Permatrix-System", tm, "X-Permatrix-Action", "edit_users", "X-Permatrix-Resource-Type", "project", "X-Permatrix-Resource-Id", "p1"}

	r := forward(s, http.MethodGet, "/v1/forward-auth", append(ask, "X-Forwarded-User", "ann")...)
	if r.Status != 200 || r.Body["allow"] != true {
		t.Fatalf("ann on p1: %d %s", r.Status, r.Raw)
	}
	// Envoy appends the original path and keeps the method.
	r = forward(s, http.MethodDelete, "/v1/forward-auth/api/projects/p1", append(ask, "X-Forwarded-User", "bob")...)
	if r.Status != 403 || r.Body["allow"] != false || !strings.Contains(string(r.Raw), `"missing"`) {
		t.Fatalf("bob on p1: %d %s", r.Status, r.Raw)
	}
	// X-Permatrix-Subject wins over X-Forwarded-User; X-Forwarded-Groups asserts groups.
	if r = forward(s, http.MethodPost, "/v1/forward-auth", append(ask, "X-Forwarded-User", "ann", "X-Permatrix-Subject", "bob")...); r.Status != 403 {
		t.Fatalf("X-Permatrix-Subject bob: %d %s", r.Status, r.Raw)
	}
	if r = forward(s, http.MethodGet, "/v1/forward-auth", append(ask, "X-Forwarded-User", "cy", "X-Forwarded-Groups", "dev, ops")...); r.Status != 200 {
		t.Fatalf("cy via asserted ops: %d %s", r.Status, r.Raw)
	}
	if r = forward(s, http.MethodGet, "/v1/forward-auth", ask...); r.Status != 401 {
		t.Fatalf("no subject: %d %s", r.Status, r.Raw)
	}
	if r = forward(s, http.MethodGet, "/v1/forward-auth", "X-Forwarded-User", "ann", "X-Permatrix-System", tm, "X-Permatrix-Action", "fly"); r.Status != 400 {
		t.Fatalf("unknown action: %d %s", r.Status, r.Raw)
	}
	m := string(s.Do(http.MethodGet, "/metrics", nil, false).Raw)
	if !strings.Contains(m, `permatrix_decisions_total{allow="false",system="celonis-task-mining"} 2`) {
		t.Fatalf("forward-auth decisions not counted:\n%s", m)
	}
}
