// Package proxy_test puts permatrix behind a real reverse proxy: nginx's
// auth_request asks /v1/forward-auth before passing a request on.
package proxy_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/permatrix/permatrix/test/harness"
)

const nginxConf = `
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
  # The project id of the original request, for the sub-request.
  map $request_uri $project {
    ~^/projects/(?<id>[^/?]+) $id;
  }
  server {
    listen 127.0.0.1:{{port}};
    location /projects/ {
      auth_request /_permatrix;
      proxy_pass {{backend}};
    }
    location = /_permatrix {
      internal;
      proxy_pass {{permatrix}}/v1/forward-auth;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Permatrix-System celonis-task-mining;
      proxy_set_header X-Permatrix-Action edit_users;
      proxy_set_header X-Permatrix-Resource-Type project;
      proxy_set_header X-Permatrix-Resource-Id $project;
    }
  }
}
`

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestNginxAuthRequest(t *testing.T) {
	nginx := harness.Nginx(t)
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:ann", "system": "celonis-task-mining", "permission": "edit_users",
		"scope": map[string]any{"type": "project", "id": "p1"}})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "backend saw %s", r.URL.Path)
	}))
	defer backend.Close()

	dir := t.TempDir()
	port := freePort(t)
	conf := strings.NewReplacer("{{dir}}", dir, "{{port}}", fmt.Sprint(port), "{{backend}}", backend.URL, "{{permatrix}}", s.URL).Replace(nginxConf)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginx, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", filepath.Join(dir, "nginx.conf"))
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not start: %s\n%s", out, log)
		}
		time.Sleep(50 * time.Millisecond)
	}

	get := func(path, user string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, url+path, nil)
		if user != "" {
			req.Header.Set("X-Forwarded-User", user)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("/projects/p1/settings", "ann"); code != 200 || body != "backend saw /projects/p1/settings" {
		t.Fatalf("ann on p1 through nginx: %d %q", code, body)
	}
	if code, body := get("/projects/p2/settings", "ann"); code != 403 || strings.Contains(body, "backend") {
		t.Fatalf("ann on p2 through nginx: %d %q", code, body)
	}
	if code, _ := get("/projects/p1/settings", "bob"); code != 403 {
		t.Fatalf("bob on p1 through nginx: %d", code)
	}
	if code, _ := get("/projects/p1/settings", ""); code != 401 {
		t.Fatalf("no user through nginx: %d", code)
	}
	m := string(s.Do(http.MethodGet, "/metrics", nil, false).Raw)
	if !strings.Contains(m, `permatrix_decisions_total{allow="true",system="celonis-task-mining"} 1`) ||
		!strings.Contains(m, `permatrix_decisions_total{allow="false",system="celonis-task-mining"} 2`) {
		t.Fatalf("the proxy's sub-requests were not decided by permatrix:\n%s", m)
	}
}
