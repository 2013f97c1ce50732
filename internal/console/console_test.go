package console_test

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/permatrix/permatrix/internal/console"
)

func get(t *testing.T, h http.Handler, method, path string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// TestHeaders: every answer under /ui — a page, a module, a redirect, a
// 404, a refused method — carries the security headers; files have their
// type and an ETag, and revalidate.
func TestHeaders(t *testing.T) {
	h := console.Handler()
	for _, tc := range []struct {
		method, path string
		code         int
		ctype        string
	}{
		{"GET", "/ui/", 200, "text/html; charset=utf-8"},
		{"GET", "/ui/index.html", 200, "text/html; charset=utf-8"},
		{"GET", "/ui/app.js", 200, "text/javascript; charset=utf-8"},
		{"GET", "/ui/style.css", 200, "text/css; charset=utf-8"},
		{"GET", "/ui/favicon.svg", 200, "image/svg+xml"},
		{"HEAD", "/ui/app.js", 200, "text/javascript; charset=utf-8"},
		{"GET", "/ui", 301, ""},
		{"GET", "/ui/nope.js", 404, "application/json"},
		{"GET", "/ui/../internal/console/console.go", 404, "application/json"},
		{"GET", "/ui/assets/app.js", 404, "application/json"},
		{"POST", "/ui/app.js", 405, "application/json"},
	} {
		w := get(t, h, tc.method, tc.path)
		if w.Code != tc.code {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, w.Code, tc.code)
		}
		if tc.ctype != "" && w.Header().Get("Content-Type") != tc.ctype {
			t.Errorf("%s %s: Content-Type %q, want %q", tc.method, tc.path, w.Header().Get("Content-Type"), tc.ctype)
		}
		for k, v := range map[string]string{
			"Content-Security-Policy": console.ContentSecurityPolicy,
			"X-Frame-Options":         "DENY",
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "no-referrer",
		} {
			if got := w.Header().Get(k); got != v {
				t.Errorf("%s %s: %s = %q, want %q", tc.method, tc.path, k, got, v)
			}
		}
		if tc.method == "HEAD" && w.Body.Len() != 0 {
			t.Errorf("HEAD has a body")
		}
	}
	if loc := get(t, h, "GET", "/ui").Header().Get("Location"); loc != "/ui/" {
		t.Errorf("redirect to %q", loc)
	}
	w := get(t, h, "GET", "/ui/app.js")
	etag := w.Header().Get("ETag")
	if etag == "" || w.Header().Get("Cache-Control") != "no-cache" {
		t.Fatalf("app.js: ETag %q, Cache-Control %q", etag, w.Header().Get("Cache-Control"))
	}
	if w := get(t, h, "GET", "/ui/app.js", "If-None-Match", etag); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Errorf("If-None-Match: %d", w.Code)
	}
	// The CSP itself: no inline script or style, no eval, no other origin,
	// no framing, Trusted Types.
	for _, part := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
		"frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'", "require-trusted-types-for 'script'"} {
		if !strings.Contains(console.ContentSecurityPolicy, part) {
			t.Errorf("the CSP lacks %s", part)
		}
	}
	if strings.Contains(console.ContentSecurityPolicy, "unsafe") || strings.Contains(console.ContentSecurityPolicy, "http") {
		t.Errorf("the CSP allows too much: %s", console.ContentSecurityPolicy)
	}
}

// TestAssetsStayInTheirLane reads the console's sources for what the CSP
// would refuse at run time and for what would weaken it: HTML parsed from
// strings, code from strings, inline script, style or handlers, and any
// other origin (no CDN). The browser tests (test/console) run the pages;
// this keeps a change from relying on a sink that only some page reaches.
func TestAssetsStayInTheirLane(t *testing.T) {
	forbiddenJS := regexp.MustCompile(`\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|setTimeout\(\s*['"\x60]|setInterval\(\s*['"\x60]|localStorage|document\.cookie`)
	forbiddenHTML := regexp.MustCompile(`(?i)\sstyle=|\son[a-z]+=|javascript:|<style`)
	scriptTag := regexp.MustCompile(`(?i)<script[^>]*>`)
	url := regexp.MustCompile(`(?i)\b(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	n := 0
	err := fs.WalkDir(os.DirFS("assets"), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		raw, err := os.ReadFile(filepath.Join("assets", p))
		if err != nil {
			return err
		}
		src := string(raw)
		switch filepath.Ext(p) {
		case ".js":
			if m := forbiddenJS.FindString(src); m != "" {
				t.Errorf("%s uses %q", p, m)
			}
		case ".html":
			if m := forbiddenHTML.FindString(src); m != "" {
				t.Errorf("%s has %q", p, m)
			}
			for _, tag := range scriptTag.FindAllString(src, -1) {
				if !strings.Contains(tag, " src=") {
					t.Errorf("%s has an inline script: %s", p, tag)
				}
			}
		}
		for _, m := range url.FindAllString(src, -1) {
			if m != "http://www.w3.org" { // the SVG namespace, not a fetch
				t.Errorf("%s refers to another origin: %s", p, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 8 {
		t.Fatalf("only %d assets", n)
	}
}

// TestIfNoneMatch: If-None-Match is compared weakly and may list several
// tags or be * (RFC 9110 section 13.1.2): a proxy that compresses the
// files weakens the ETag it passes on (nginx's gzip sends W/"…"), and the
// browser then revalidates with that.
func TestIfNoneMatch(t *testing.T) {
	h := console.Handler()
	etag := get(t, h, "GET", "/ui/app.js").Header().Get("ETag")
	for _, match := range []string{etag, "W/" + etag, `"other", ` + etag, `W/"other",W/` + etag, "*"} {
		if w := get(t, h, "GET", "/ui/app.js", "If-None-Match", match); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
			t.Errorf("If-None-Match: %s: %d, want 304", match, w.Code)
		}
	}
	for _, match := range []string{`"other"`, `W/"other"`, etag[:len(etag)-2] + `"`, strings.Trim(etag, `"`)} {
		if w := get(t, h, "GET", "/ui/app.js", "If-None-Match", match); w.Code != http.StatusOK {
			t.Errorf("If-None-Match: %s: %d, want 200", match, w.Code)
		}
	}
}
