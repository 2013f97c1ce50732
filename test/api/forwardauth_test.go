package api_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/permatrix/permatrix/internal/identity"
	"github.com/permatrix/permatrix/internal/routes"
	"github.com/permatrix/permatrix/test/harness"
)

func forward(s *harness.Server, method, path string, headers ...string) harness.Response {
	return s.Do(method, path, nil, false, headers...)
}

// ask names edit_users on project p1 in headers (a static proxy config).
var ask = []string{"X-Permatrix-System", tm, "X-Permatrix-Action", "edit_users", "X-Permatrix-Resource-Type", "project", "X-Permatrix-Resource-Id", "p1"}

func TestForwardAuth(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": project("p1")})
	s.Assign(map[string]any{"subject": "user:bob", "system": tm, "permission": "edit_users", "scope": project("p2")})
	s.Assign(map[string]any{"subject": "group:ops", "system": tm, "permission": "edit_users", "scope": service})

	r := forward(s, http.MethodGet, "/v1/forward-auth", append(ask, "X-Forwarded-User", "ann")...)
	if r.Status != 200 || r.Body["allow"] != true || r.Body["decision_id"] == "" {
		t.Fatalf("ann on p1: %d %s", r.Status, r.Raw)
	}
	r = forward(s, http.MethodDelete, "/v1/forward-auth/api/projects/p1", append(ask, "X-Forwarded-User", "bob")...)
	if r.Status != 403 || r.Body["allow"] != false || !strings.Contains(string(r.Raw), `"missing"`) {
		t.Fatalf("bob on p1: %d %s", r.Status, r.Raw)
	}
	// The client cannot choose the subject: X-Permatrix-Subject is not an
	// identity unless --allow-subject-header, and X-Forwarded-Groups is not
	// read unless --identity-groups-header names it.
	if r = forward(s, http.MethodGet, "/v1/forward-auth", append(ask, "X-Forwarded-User", "bob", "X-Permatrix-Subject", "ann")...); r.Status != 403 {
		t.Fatalf("bob sending X-Permatrix-Subject ann: %d %s", r.Status, r.Raw)
	}
	if r = forward(s, http.MethodGet, "/v1/forward-auth", append(ask, "X-Permatrix-Subject", "ann")...); r.Status != 401 {
		t.Fatalf("only X-Permatrix-Subject: %d %s", r.Status, r.Raw)
	}
	if r = forward(s, http.MethodGet, "/v1/forward-auth", append(ask, "X-Forwarded-User", "cy", "X-Forwarded-Groups", "ops")...); r.Status != 403 {
		t.Fatalf("cy asserting ops without --identity-groups-header: %d %s", r.Status, r.Raw)
	}
	if r = forward(s, http.MethodGet, "/v1/forward-auth", ask...); r.Status != 401 || !strings.Contains(string(r.Raw), "X-Forwarded-User") {
		t.Fatalf("no identity: %d %s", r.Status, r.Raw)
	}
	if r = forward(s, http.MethodGet, "/v1/forward-auth", "X-Forwarded-User", "ann", "X-Permatrix-System", tm, "X-Permatrix-Action", "fly"); r.Status != 400 {
		t.Fatalf("unknown action: %d %s", r.Status, r.Raw)
	}
	// A resource id without its type is a proxy configuration mistake (400),
	// as in a check's body, not a decision at service scope with the id
	// dropped (ann, who holds p1, was denied).
	if r = forward(s, http.MethodGet, "/v1/forward-auth", "X-Forwarded-User", "ann", "X-Permatrix-System", tm, "X-Permatrix-Action", "edit_users", "X-Permatrix-Resource-Id", "p1"); r.Status != 400 || !strings.Contains(string(r.Raw), "resource.type") {
		t.Fatalf("resource id without its type: %d %s", r.Status, r.Raw)
	}
	if r = forward(s, http.MethodGet, "/v1/forward-auth", "X-Forwarded-User", "ann"); r.Status != 403 || !strings.Contains(string(r.Raw), "no route matched") {
		t.Fatalf("nothing asked: %d %s", r.Status, r.Raw)
	}
	m := string(s.Do(http.MethodGet, "/metrics", nil, false).Raw)
	if !strings.Contains(m, `permatrix_decisions_total{allow="false",system="celonis-task-mining"} 3`) {
		t.Fatalf("forward-auth decisions not counted:\n%s", m)
	}

	// --identity-groups-header and --allow-subject-header, when configured.
	id, err := identity.New(context.Background(), identity.Config{GroupsHeader: "X-Forwarded-Groups", AllowSubjectHeader: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s2 := harness.Start(t, harness.Options{DBPath: "", Identity: id})
	s2.Assign(map[string]any{"subject": "group:ops", "system": tm, "permission": "edit_users", "scope": service})
	if r = forward(s2, http.MethodGet, "/v1/forward-auth", append(ask, "X-Forwarded-User", "cy", "X-Forwarded-Groups", "dev, ops")...); r.Status != 200 {
		t.Fatalf("cy via asserted ops: %d %s", r.Status, r.Raw)
	}
	if r = forward(s2, http.MethodGet, "/v1/forward-auth", append(ask, "X-Forwarded-User", "cy", "X-Permatrix-Subject", "dan")...); r.Status != 403 || r.Body["allow"] != false {
		t.Fatalf("X-Permatrix-Subject dan with --allow-subject-header: %d %s", r.Status, r.Raw)
	}
}

// rawRequest sends a request line as written (any method) and returns the
// status code and body.
func rawRequest(t *testing.T, base, method, path string, headers ...string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n", method, path)
	for i := 0; i+1 < len(headers); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", headers[i], headers[i+1])
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestForwardAuthEveryMethod: every method gets a decision or an error —
// no automatic 204 for OPTIONS, no 405.
func TestForwardAuthEveryMethod(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": project("p1")})
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND", "REPORT", "MKCOL", "CONNECT", "FOO"} {
		for _, path := range []string{"/v1/forward-auth", "/v1/forward-auth/x/y"} {
			code, body := rawRequest(t, s.URL, m, path, append(ask, "X-Forwarded-User", "ann")...)
			if code != 200 || m != "HEAD" && !strings.Contains(body, `"allow":true`) {
				t.Errorf("%s %s as ann: %d %s", m, path, code, body)
			}
			code, body = rawRequest(t, s.URL, m, path, append(ask, "X-Forwarded-User", "bob")...)
			if code != 403 || m != "HEAD" && !strings.Contains(body, `"allow":false`) {
				t.Errorf("%s %s as bob: %d %s", m, path, code, body)
			}
			if code, _ = rawRequest(t, s.URL, m, path, ask...); code != 401 {
				t.Errorf("%s %s without identity: %d", m, path, code)
			}
		}
	}
}

const testRoutes = `routes:
  - methods: [GET, HEAD]
    path: /projects/{id}/users
    system: celonis-task-mining
    action: view_project
    resource: {type: project, id: "{id}"}
  - methods: [POST, PUT, DELETE]
    path: /projects/{id}/users
    system: celonis-task-mining
    action: edit_users
    resource: {type: project, id: "{id}"}
  - methods: [OPTIONS]
    path: /projects/{id}/users
    system: celonis-task-mining
    action: edit_users
    resource: {type: project, id: "{id}"}
`

func TestForwardAuthRoutes(t *testing.T) {
	rt, err := routes.Parse("routes.yaml", []byte(testRoutes))
	if err != nil {
		t.Fatal(err)
	}
	s := harness.Start(t, harness.Options{Routes: rt})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": project("p1")})
	s.Assign(map[string]any{"subject": "user:bob", "system": tm, "permission": "edit_client_settings", "scope": project("p1")})
	ann := []string{"X-Forwarded-User", "ann"}
	bob := []string{"X-Forwarded-User", "bob"}

	for _, tc := range []struct {
		name, method, path string
		headers            []string
		status             int
		body               string
	}{
		// nginx: X-Original-URI/-Method.
		{"nginx ann POST p1", "GET", "/v1/forward-auth", append([]string{"X-Original-URI", "/projects/p1/users?x=1", "X-Original-Method", "POST"}, ann...), 200, `"allow":true`},
		{"nginx ann POST p2", "GET", "/v1/forward-auth", append([]string{"X-Original-URI", "/projects/p2/users", "X-Original-Method", "POST"}, ann...), 403, `"allow":false`},
		{"nginx bob GET p1", "GET", "/v1/forward-auth", append([]string{"X-Original-URI", "/projects/p1/users", "X-Original-Method", "GET"}, bob...), 200, `"allow":true`},
		{"nginx bob POST p1", "GET", "/v1/forward-auth", append([]string{"X-Original-URI", "/projects/p1/users", "X-Original-Method", "POST"}, bob...), 403, `"allow":false`},
		{"nginx method from the request", "POST", "/v1/forward-auth", append([]string{"X-Original-URI", "/projects/p1/users"}, bob...), 403, `"allow":false`},
		// Traefik: X-Forwarded-Uri/-Method.
		{"traefik ann DELETE p1", "GET", "/v1/forward-auth", append([]string{"X-Forwarded-Uri", "/projects/p1/users", "X-Forwarded-Method", "DELETE"}, ann...), 200, `"allow":true`},
		// Envoy HTTP: the path after /v1/forward-auth and the request's method.
		{"envoy ann PUT p1", "PUT", "/v1/forward-auth/projects/p1/users", ann, 200, `"allow":true`},
		{"envoy ann OPTIONS p1", "OPTIONS", "/v1/forward-auth/projects/p1/users", ann, 200, `"allow":true`},
		{"envoy bob PUT p1", "PUT", "/v1/forward-auth/projects/p1/users", bob, 403, `"allow":false`},
		// Unmapped: 403 saying so, nothing decided.
		{"unmapped path", "GET", "/v1/forward-auth/admin", ann, 403, "no route matches GET /admin"},
		{"unmapped method", "PATCH", "/v1/forward-auth/projects/p1/users", ann, 403, "no route matches PATCH /projects/p1/users"},
		// Routes win: the check-naming headers are ignored.
		{"headers ignored", "GET", "/v1/forward-auth/admin", append(append([]string{}, ask...), ann...), 403, "no route matches"},
		// The original request must be known and unambiguous.
		{"no original URI", "GET", "/v1/forward-auth", ann, 400, "URI is unknown"},
		{"two sources disagree", "GET", "/v1/forward-auth/projects/p1/users", append([]string{"X-Original-URI", "/projects/p2/users"}, bob...), 400, "ambiguous"},
		{"methods disagree", "GET", "/v1/forward-auth", append([]string{"X-Original-URI", "/projects/p1/users", "X-Original-Method", "GET", "X-Forwarded-Uri", "/projects/p1/users", "X-Forwarded-Method", "POST"}, bob...), 400, "ambiguous"},
		{"dot segments", "GET", "/v1/forward-auth", append([]string{"X-Original-URI", "/projects/p2/../p1/users", "X-Original-Method", "POST"}, ann...), 400, "dot segment"},
		{"encoded dot segments", "GET", "/v1/forward-auth/projects/p2/%2e%2e/p1/users", ann, 400, "dot segment"},
		// The identity is checked first: without one, a request that cannot
		// be read is 401 too, and the answer says nothing of how it is read.
		{"no identity", "GET", "/v1/forward-auth/admin", nil, 401, "X-Forwarded-User"},
		{"no identity, sources disagree", "GET", "/v1/forward-auth/projects/p1/users", []string{"X-Original-URI", "/projects/p2/users"}, 401, "X-Forwarded-User"},
		{"no identity, header twice", "GET", "/v1/forward-auth", []string{"X-Original-URI", "/projects/p1/users", "X-Original-URI", "/projects/p2/users"}, 401, "X-Forwarded-User"},
		{"no identity, no original URI", "GET", "/v1/forward-auth", nil, 401, "X-Forwarded-User"},
		{"header twice", "GET", "/v1/forward-auth", append([]string{"X-Original-URI", "/projects/p1/users", "X-Original-URI", "/projects/p2/users"}, ann...), 400, "sent 2 times"},
	} {
		code, body := rawRequest(t, s.URL, tc.method, tc.path, tc.headers...)
		if code != tc.status || !strings.Contains(body, tc.body) {
			t.Errorf("%s: %d %s, want %d with %q", tc.name, code, body, tc.status, tc.body)
		}
	}
	m := string(s.Do(http.MethodGet, "/metrics", nil, false).Raw)
	if !strings.Contains(m, `permatrix_decisions_total{allow="true",system="celonis-task-mining"} 5`) ||
		!strings.Contains(m, `permatrix_decisions_total{allow="false",system="celonis-task-mining"} 4`) {
		t.Fatalf("decisions counted:\n%s", m)
	}
}
