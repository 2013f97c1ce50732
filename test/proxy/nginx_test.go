// Package proxy_test puts permatrix behind a real reverse proxy: nginx's
// auth_request asks /v1/forward-auth before passing a request on, with the
// configuration docs/forward-auth.md documents.
package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/permatrix/permatrix/internal/identity"
	"github.com/permatrix/permatrix/internal/routes"
	"github.com/permatrix/permatrix/test/harness"
)

// nginxMain wraps the documented server block with what a test run needs
// (no daemon, temporary paths, a socket that says it serves).
const nginxMain = `
daemon off;
master_process off;
worker_processes 1;
pid {{dir}}/nginx.pid;
error_log {{dir}}/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path {{dir}}/body;
  proxy_temp_path {{dir}}/proxy;
  fastcgi_temp_path {{dir}}/fastcgi;
  uwsgi_temp_path {{dir}}/uwsgi;
  scgi_temp_path {{dir}}/scgi;
  {{readiness}}
{{server}}
}
`

// documented returns docs/forward-auth.md's tested nginx block and the
// routes file the same page shows.
func documented(t *testing.T) (server, routesYAML string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(harness.Root(), "docs", "forward-auth.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	_, rest, ok := strings.Cut(doc, "<!-- nginx-test: begin -->")
	block, _, ok2 := strings.Cut(rest, "<!-- nginx-test: end -->")
	if !ok || !ok2 {
		t.Fatal("docs/forward-auth.md has no nginx-test block")
	}
	server = strings.TrimSpace(block)
	server = strings.TrimSuffix(strings.TrimPrefix(server, "```nginx"), "```")
	_, rest, _ = strings.Cut(doc, "```yaml\nroutes:")
	routesYAML, _, _ = strings.Cut(rest, "```")
	return server, "routes:" + routesYAML
}

// startNginx runs nginx with the documented server block, its
// placeholders replaced (harness.StartNginx: on a port of its own).
func startNginx(t *testing.T, server string, replace ...string) string {
	t.Helper()
	return harness.StartNginx(t, func(dir, addr, readiness string) string {
		block := strings.NewReplacer(append(replace, "listen 8080;", "listen "+addr+";")...).Replace(server)
		return strings.NewReplacer("{{dir}}", dir, "{{readiness}}", readiness, "{{server}}", block).Replace(nginxMain)
	})
}

func backend(t *testing.T) *httptest.Server {
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "backend saw %s %s", r.Method, r.URL.Path)
	}))
	t.Cleanup(b.Close)
	return b
}

// request sends a request through nginx: user/password for basic auth,
// then header pairs.
func request(t *testing.T, method, url, user string, headers ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if user != "" {
		req.SetBasicAuth(user, user+"-password")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestNginxDocumentedConfig runs docs/forward-auth.md's nginx block and
// routes file: nginx authenticates the user (basic auth, $remote_user),
// permatrix decides the original method and path by the routes, and a
// client that names another subject in any header is still decided as the
// user nginx authenticated.
func TestNginxDocumentedConfig(t *testing.T) {
	server, routesYAML := documented(t)
	rt, err := routes.Parse("docs/forward-auth.md", []byte(routesYAML))
	if err != nil {
		t.Fatalf("the documented routes file: %v\n%s", err, routesYAML)
	}
	s := harness.Start(t, harness.Options{Routes: rt})
	// ann may edit users of p1; bob may edit users everywhere.
	s.Assign(map[string]any{"subject": "user:ann", "system": "celonis-task-mining", "permission": "edit_users",
		"scope": map[string]any{"type": "project", "id": "p1"}})
	s.Assign(map[string]any{"subject": "user:bob", "system": "celonis-task-mining", "permission": "edit_users",
		"scope": map[string]any{"type": "service"}})
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(htpasswd, []byte("ann:{PLAIN}ann-password\nbob:{PLAIN}bob-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := backend(t)
	url := startNginx(t, server, "http://backend", b.URL, "http://127.0.0.1:8181", s.URL, "/etc/nginx/htpasswd", htpasswd)

	forged := []string{"X-Permatrix-Subject", "bob", "X-Forwarded-User", "bob", "X-Forwarded-Groups", "admins",
		"X-Forwarded-Uri", "/projects/p1/users", "X-Forwarded-Method", "GET"}
	for _, tc := range []struct {
		name, method, path, user string
		headers                  []string
		status                   int
		body                     string
	}{
		{"ann edits p1's users", "POST", "/projects/p1/users", "ann", nil, 200, "backend saw POST /projects/p1/users"},
		{"ann reads p1's users", "GET", "/projects/p1/users", "ann", nil, 200, "backend saw GET /projects/p1/users"},
		{"ann edits p2's users", "PUT", "/projects/p2/users", "ann", nil, 403, ""},
		{"ann on p2 claiming to be bob", "PUT", "/projects/p2/users", "ann", forged, 403, ""},
		{"bob edits p2's users", "PUT", "/projects/p2/users", "bob", nil, 200, "backend saw PUT /projects/p2/users"},
		{"no user claiming to be bob", "GET", "/projects/p1/users", "", forged, 401, ""},
		{"ann on an unmapped path", "GET", "/projects/p1/secrets", "ann", nil, 403, ""},
		{"ann with an unmapped method", "PATCH", "/projects/p1/users", "ann", nil, 403, ""},
		{"ann's OPTIONS", "OPTIONS", "/projects/p1/users", "ann", nil, 403, ""},
		// nginx passes the client's headers to the sub-request: an override
		// is seen and refused (400, which auth_request turns into 500).
		{"ann's POST overridden as DELETE", "POST", "/projects/p1/users", "ann", []string{"X-HTTP-Method-Override", "DELETE"}, 500, ""},
	} {
		code, body := request(t, tc.method, url+tc.path, tc.user, tc.headers...)
		if code != tc.status || !strings.Contains(body, tc.body) || tc.status != 200 && strings.Contains(body, "backend") {
			t.Errorf("%s: %d %q, want %d %q", tc.name, code, body, tc.status, tc.body)
		}
	}
	m := string(s.Do(http.MethodGet, "/metrics", nil, false).Raw)
	if !strings.Contains(m, `permatrix_decisions_total{allow="true",system="celonis-task-mining"} 3`) ||
		!strings.Contains(m, `permatrix_decisions_total{allow="false",system="celonis-task-mining"} 2`) {
		t.Fatalf("the proxy's sub-requests were not decided by permatrix as expected:\n%s", m)
	}
}

// TestNginxJWT: the same block for --identity jwt, as docs/forward-auth.md
// describes it (no auth_basic, no X-Forwarded-User): the client's bearer
// token reaches permatrix with the sub-request, and identity headers are
// not an identity.
func TestNginxJWT(t *testing.T) {
	server, routesYAML := documented(t)
	server = strings.NewReplacer(
		"    auth_basic \"projects\";\n", "",
		"    auth_basic_user_file /etc/nginx/htpasswd;\n", "",
		"    proxy_set_header X-Forwarded-User $remote_user;\n", "",
	).Replace(server)
	if strings.Contains(server, "auth_basic ") || strings.Contains(server, "X-Forwarded-User $remote_user") {
		t.Fatalf("the documented block changed; update the JWT variant:\n%s", server)
	}
	rt, err := routes.Parse("docs/forward-auth.md", []byte(routesYAML))
	if err != nil {
		t.Fatal(err)
	}
	idp := harness.NewIssuer(t)
	id, err := identity.New(t.Context(), idp.Config(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(id.Close)
	s := harness.Start(t, harness.Options{Routes: rt, Identity: id})
	s.Assign(map[string]any{"subject": "user:bob", "system": "celonis-task-mining", "permission": "edit_users",
		"scope": map[string]any{"type": "service"}})
	b := backend(t)
	url := startNginx(t, server, "http://backend", b.URL, "http://127.0.0.1:8181", s.URL)

	forged := []string{"X-Permatrix-Subject", "bob", "X-Forwarded-User", "bob"}
	if code, body := request(t, "POST", url+"/projects/p1/users", "", "Authorization", "Bearer "+idp.Token(t, "bob", nil)); code != 200 {
		t.Fatalf("bob's token: %d %s", code, body)
	}
	if code, body := request(t, "POST", url+"/projects/p1/users", "", append([]string{"Authorization", "Bearer " + idp.Token(t, "ann", nil)}, forged...)...); code != 403 {
		t.Fatalf("ann's token with bob's headers: %d %s", code, body)
	}
	if code, body := request(t, "POST", url+"/projects/p1/users", "", forged...); code != 401 {
		t.Fatalf("bob's headers without a token: %d %s", code, body)
	}
}

// TestNginxWithoutOriginalMethod: nginx's auth_request sub-request is a GET
// whatever the original method, so a block that sends X-Original-URI but
// not X-Original-Method (nginx's own auth_request example does) leaves the
// original method unknown. It is refused (400, which auth_request turns
// into 500), not taken as the sub-request's GET: carol, who may only view
// p1 (she edits its data configuration), would otherwise have her PUT and
// DELETE of p1's users decided by the GET route, view_project, and let
// through.
func TestNginxWithoutOriginalMethod(t *testing.T) {
	server, routesYAML := documented(t)
	const methodLine = "    proxy_set_header X-Original-Method $request_method;\n"
	if !strings.Contains(server, methodLine) {
		t.Fatalf("the documented block changed; update this variant:\n%s", server)
	}
	server = strings.Replace(server, methodLine, "", 1)
	rt, err := routes.Parse("docs/forward-auth.md", []byte(routesYAML))
	if err != nil {
		t.Fatal(err)
	}
	s := harness.Start(t, harness.Options{Routes: rt})
	s.Assign(map[string]any{"subject": "user:carol", "system": "celonis-task-mining", "permission": "edit_data_configuration",
		"scope": map[string]any{"type": "project", "id": "p1"}})
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(htpasswd, []byte("carol:{PLAIN}carol-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := backend(t)
	url := startNginx(t, server, "http://backend", b.URL, "http://127.0.0.1:8181", s.URL, "/etc/nginx/htpasswd", htpasswd)
	for _, method := range []string{"GET", "PUT", "DELETE"} {
		if code, body := request(t, method, url+"/projects/p1/users", "carol"); code != 500 || strings.Contains(body, "backend") {
			t.Errorf("carol's %s of p1's users without X-Original-Method: %d %q", method, code, body)
		}
	}
}

// TestNginxWithoutOriginalMethodClientHeaders: nginx's own auth_request
// example sets X-Original-URI alone and clears no other header, so the
// sub-request carries the client's X-Forwarded-Uri and X-Forwarded-Method
// (Traefik's). A client that sends them with the same path and GET must
// not have its PUT or DELETE decided by the GET route: a method-less
// header source takes no method from another header, which a client
// writes.
func TestNginxWithoutOriginalMethodClientHeaders(t *testing.T) {
	server, routesYAML := documented(t)
	for _, line := range []string{
		"    proxy_set_header X-Original-Method $request_method;\n",
		"    proxy_set_header X-Forwarded-Uri \"\";\n",
		"    proxy_set_header X-Forwarded-Method \"\";\n",
	} {
		if !strings.Contains(server, line) {
			t.Fatalf("the documented block changed; update this variant (%q):\n%s", line, server)
		}
		server = strings.Replace(server, line, "", 1)
	}
	rt, err := routes.Parse("docs/forward-auth.md", []byte(routesYAML))
	if err != nil {
		t.Fatal(err)
	}
	s := harness.Start(t, harness.Options{Routes: rt})
	// carol may view p1 (an edit permission other than edit_users), not
	// edit its users.
	s.Assign(map[string]any{"subject": "user:carol", "system": "celonis-task-mining", "permission": "edit_data_configuration",
		"scope": map[string]any{"type": "project", "id": "p1"}})
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(htpasswd, []byte("carol:{PLAIN}carol-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := backend(t)
	url := startNginx(t, server, "http://backend", b.URL, "http://127.0.0.1:8181", s.URL, "/etc/nginx/htpasswd", htpasswd)
	for _, method := range []string{"PUT", "DELETE"} {
		code, body := request(t, method, url+"/projects/p1/users", "carol",
			"X-Forwarded-Uri", "/projects/p1/users", "X-Forwarded-Method", "GET")
		if code != 500 || strings.Contains(body, "backend") {
			t.Errorf("carol's %s of p1's users, naming GET in X-Forwarded-Method: %d %q", method, code, body)
		}
	}
}

// TestNginxRequestTargets: what real clients send that docs/forward-auth.md
// says passes does pass the documented block — an absolute-form target
// (nginx's $request_uri is its origin form, as the backend gets it), a
// query, "{" and "}" sent literally or encoded, OData's "(1)", "+", "%2B",
// "%40", raw UTF-8 — and what it says is refused is: a Latin-1 escape (400,
// which auth_request turns into 500), a lower-case method (nginx's own 400).
func TestNginxRequestTargets(t *testing.T) {
	server, routesYAML := documented(t)
	rt, err := routes.Parse("docs/forward-auth.md", []byte(routesYAML))
	if err != nil {
		t.Fatal(err)
	}
	s := harness.Start(t, harness.Options{Routes: rt})
	s.Assign(map[string]any{"subject": "user:bob", "system": "celonis-task-mining", "permission": "edit_users",
		"scope": map[string]any{"type": "service"}})
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(htpasswd, []byte("bob:{PLAIN}bob-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "backend saw %s %s", r.Method, r.RequestURI)
	}))
	t.Cleanup(b.Close)
	url := startNginx(t, server, "http://backend", b.URL, "http://127.0.0.1:8181", s.URL, "/etc/nginx/htpasswd", htpasswd)
	for _, tc := range []struct {
		line   string // the request line as the client sends it
		status int
		body   string
	}{
		{"POST http://example.com/projects/p1/users?x=1 HTTP/1.1", 200, "backend saw POST /projects/p1/users?x=1"},
		{"POST /projects/p1/users?next=%2Fadmin HTTP/1.1", 200, "backend saw POST /projects/p1/users?next=%2Fadmin"},
		{"POST /projects/{id}/users HTTP/1.1", 200, "backend saw POST /projects/{id}/users"},
		{"POST /projects/%7Bid%7D/users HTTP/1.1", 200, "backend saw POST /projects/%7Bid%7D/users"},
		{"POST /projects/Products(1)/users HTTP/1.1", 200, "backend saw POST /projects/Products(1)/users"},
		{"POST /projects/a+b%2B%40/users HTTP/1.1", 200, "backend saw POST /projects/a+b%2B%40/users"},
		{"POST /projects/caf\xc3\xa9/users HTTP/1.1", 200, "backend saw POST /projects/caf\xc3\xa9/users"},
		{"POST /projects/caf%e9/users HTTP/1.1", 500, ""},
		{"post /projects/p1/users HTTP/1.1", 400, ""},
	} {
		c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "%s\r\nHost: example.com\r\nAuthorization: Basic Ym9iOmJvYi1wYXNzd29yZA==\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", tc.line)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			c.Close()
			t.Fatalf("%q: %v", tc.line, err)
		}
		body, _ := io.ReadAll(resp.Body)
		c.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.body) || tc.status != 200 && strings.Contains(string(body), "backend") {
			t.Errorf("%q: %d %q, want %d %q", tc.line, resp.StatusCode, body, tc.status, tc.body)
		}
	}
}
