package http_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

// headPath is a request path for an Echo route: a parameter becomes a
// value (a known system, so that some answer 200), the wildcard "x".
func headPath(route string) string {
	segs := strings.Split(route, "/")
	for i, s := range segs {
		switch {
		case s == ":system":
			segs[i] = "blueprism"
		case s == "*" || strings.HasPrefix(s, ":"):
			segs[i] = "x"
		}
	}
	return strings.Join(segs, "/")
}

// exchange sends method to url with token (none if "") and returns the
// response with its body read.
func exchange(t *testing.T, method, url, token string) (*http.Response, []byte) {
	t.Helper()
	return exchangeBody(t, method, url, token, nil)
}

// sameHeadAsGet fails unless HEAD url answers as GET url does: the same
// status and headers (but those that differ per response), and no body.
func sameHeadAsGet(t *testing.T, url, token string) int {
	t.Helper()
	get, _ := exchange(t, http.MethodGet, url, token)
	head, body := exchange(t, http.MethodHead, url, token)
	who := "with the token"
	if token == "" {
		who = "without a token"
	}
	if head.StatusCode != get.StatusCode {
		t.Errorf("HEAD %s %s: %d, GET %d", url, who, head.StatusCode, get.StatusCode)
		return get.StatusCode
	}
	if len(body) != 0 {
		t.Errorf("HEAD %s %s: a body of %d bytes", url, who, len(body))
	}
	// A short GET answer's length is known before it is sent; HEAD then
	// carries it too (a long one is chunked, a HEAD without a length).
	if cl := head.Header.Get("Content-Length"); cl != "" && cl != get.Header.Get("Content-Length") {
		t.Errorf("HEAD %s %s: Content-Length %s, GET %q", url, who, cl, get.Header.Get("Content-Length"))
	}
	for _, h := range []http.Header{get.Header, head.Header} {
		for _, k := range []string{"Date", "X-Request-Id", "Content-Length"} {
			h.Del(k)
		}
	}
	for k := range get.Header {
		if g, h := strings.Join(get.Header.Values(k), ", "), strings.Join(head.Header.Values(k), ", "); g != h {
			t.Errorf("HEAD %s %s: %s: %q, GET %q", url, who, k, h, g)
		}
	}
	for k := range head.Header {
		if get.Header.Get(k) == "" {
			t.Errorf("HEAD %s %s: header %s that GET has not", url, who, k)
		}
	}
	return get.StatusCode
}

// getOnly are the GET routes without HEAD (405), as api.yaml's description
// says: a HEAD would run a profile, or a query (logged as a decision), to
// send nothing.
var getOnly = []string{"/debug/pprof", "/debug/pprof/*", "/v1/query", "/v1/data", "/v1/data/*"}

// api.yaml names each GET route that does not answer HEAD.
func TestAPIDocNamesGETOnlyRoutes(t *testing.T) {
	desc, _ := loadAPIDoc(t)["info"].(map[string]any)["description"].(string)
	_, head, _ := strings.Cut(desc, "**HEAD.**")
	head, _, _ = strings.Cut(head, "\n\n")
	for _, r := range getOnly {
		if !strings.Contains(head, "`"+r+"`") {
			t.Errorf("api.yaml's HEAD paragraph does not name %s, which answers HEAD with 405", r)
		}
	}
}

// Every GET route answers HEAD as GET (RFC 9110 §9.3.2), through the same
// middleware: the admin token is asked for as for GET (401 without it),
// and the metrics count the request as a HEAD of its route. Also on the
// diagnostic listener. A HEAD on a path without GET stays 405.
func TestHEADWhereverGET(t *testing.T) {
	srv := newDocTestServer(t)
	diag, err := srv.ListenDiagnostic("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := serveOn(t, srv)
	var gets []string
	for _, r := range srv.Routes() {
		if path, ok := strings.CutPrefix(r, "GET "); ok {
			gets = append(gets, path)
		}
	}
	if len(gets) < 20 {
		t.Fatalf("only %d GET routes: %v", len(gets), gets)
	}
	got := map[string]int{}
	for _, route := range gets {
		url := base + headPath(route)
		if slices.Contains(getOnly, route) {
			if res, _ := exchange(t, http.MethodHead, url, docTestToken); res.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("HEAD %s: %d, want 405", route, res.StatusCode)
			}
			continue
		}
		got[route] = sameHeadAsGet(t, url, docTestToken)
		sameHeadAsGet(t, url, "")
	}
	for _, route := range []string{"/health", "/health/live", "/health/ready", "/metrics", "/v1/export", "/v1/backup", "/v1/assignments",
		"/v1/systems", "/v1/systems/:system", "/v1/status", "/v1/config", "/v1/policies"} {
		if got[route] != http.StatusOK {
			t.Errorf("GET %s with the token: %d, want 200 (for HEAD to be compared with)", route, got[route])
		}
	}
	// The operator's reads need the token for HEAD as for GET.
	for _, p := range []string{"/v1/export", "/v1/backup", "/v1/assignments", "/v1/status"} {
		res, _ := exchange(t, http.MethodHead, base+p, "")
		if res.StatusCode != http.StatusUnauthorized || res.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("HEAD %s without a token: %d (WWW-Authenticate %q), want 401", p, res.StatusCode, res.Header.Get("WWW-Authenticate"))
		}
	}
	for _, p := range []string{"/health", "/health/live", "/health/ready", "/metrics"} {
		sameHeadAsGet(t, "http://"+diag.String()+p, "")
		if res, _ := exchange(t, http.MethodHead, "http://"+diag.String()+p, ""); res.StatusCode != http.StatusOK {
			t.Errorf("HEAD %s on the diagnostic listener: %d", p, res.StatusCode)
		}
	}
	for _, p := range []string{"/v1/check", "/v1/import"} {
		res, _ := exchange(t, http.MethodHead, base+p, docTestToken)
		if res.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(res.Header.Get("Allow"), "POST") {
			t.Errorf("HEAD %s (POST only): %d, Allow %q; want 405", p, res.StatusCode, res.Header.Get("Allow"))
		}
	}

	reg := srv.Metrics().Registry
	// /health/ready: one HEAD with the token, one without.
	if n, _ := httpMetric(t, reg, "permatrix_http_requests_total", "200", "HEAD", "/health/ready"); n != 2 {
		t.Errorf("permatrix_http_requests_total{code=200,method=HEAD,url=/health/ready} = %v, want 2", n)
	}
	if n, _ := httpMetric(t, reg, "permatrix_http_requests_total", "401", "HEAD", "/v1/export"); n != 2 {
		t.Errorf("permatrix_http_requests_total{code=401,method=HEAD,url=/v1/export} = %v, want 2", n)
	}
	if n, sum := httpMetric(t, reg, "permatrix_http_response_size_bytes", "200", "HEAD", "/v1/systems"); n != 2 || sum != 0 {
		t.Errorf("permatrix_http_response_size_bytes{code=200,method=HEAD,url=/v1/systems}: %v responses, %v bytes; want 2 and 0", n, sum)
	}
	if n := abortedCount(t, reg, "HEAD", "/v1/export"); n != 0 {
		t.Errorf("HEAD /v1/export counted as aborted (%v)", n)
	}
}
