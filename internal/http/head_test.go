package http_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// Every GET route answers HEAD as GET would — the same status and
// Content-Type, behind the same authentication — with no body; the
// profiles alone answer 405 (they would run to send nothing).
func TestHeadAnswersAsGet(t *testing.T) {
	srv := newDocTestServer(t) // pprof on
	base := serveOn(t, srv)
	fill := strings.NewReplacer(":system", "blueprism", ":user", "ann", ":document", "celonis-task-mining-permissions.txt",
		":id", "p1", ":group", "ops", ":role", "r1", "*", "permatrix/allow")
	do := func(method, path, token string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return res, body
	}
	n := 0
	for _, r := range srv.Routes() {
		method, route, _ := strings.Cut(r, " ")
		if method != http.MethodGet {
			continue
		}
		path := fill.Replace(route)
		for _, token := range []string{docTestToken, ""} {
			get, _ := do(http.MethodGet, path, token)
			head, body := do(http.MethodHead, path, token)
			if strings.HasPrefix(route, "/debug/pprof") {
				if head.StatusCode != http.StatusMethodNotAllowed && head.StatusCode != get.StatusCode {
					t.Errorf("HEAD %s: %d, want 405", path, head.StatusCode)
				}
				continue
			}
			if head.StatusCode != get.StatusCode || head.Header.Get("Content-Type") != get.Header.Get("Content-Type") || len(body) != 0 {
				t.Errorf("HEAD %s (token %v): %d %q, %d body bytes; GET: %d %q", path, token != "", head.StatusCode,
					head.Header.Get("Content-Type"), len(body), get.StatusCode, get.Header.Get("Content-Type"))
			}
			n++
		}
	}
	if n < 40 {
		t.Fatalf("%d GET routes tried with HEAD", n/2)
	}
	if c, _ := httpMetric(t, srv.Metrics().Registry, "permatrix_http_requests_total", "200", "HEAD", "/health"); c != 2 {
		t.Errorf("permatrix_http_requests_total{method=HEAD,url=/health} = %v, want 2", c)
	}
}
