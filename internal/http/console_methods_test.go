package http_test

import (
	"net/http"
	"testing"

	"github.com/permatrix/permatrix/internal/console"
	permhttp "github.com/permatrix/permatrix/internal/http"
)

// TestConsoleOtherMethods: a method other than GET and HEAD under /ui is
// the console's 405 (api.yaml), with the console's security headers like
// every /ui answer — not Echo's own 405, or its 204 for OPTIONS, which
// carry neither.
func TestConsoleOtherMethods(t *testing.T) {
	base := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken, Console: console.Handler()}))
	for _, path := range []string{"/ui", "/ui/", "/ui/app.js", "/ui/nope"} {
		for _, method := range []string{http.MethodOptions, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, "PROPFIND"} {
			res, _ := exchangeBody(t, method, base+path, "", nil)
			if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: %d, Allow %q; want 405, Allow \"GET, HEAD\"", method, path, res.StatusCode, res.Header.Get("Allow"))
			}
			for k, v := range map[string]string{
				"Content-Security-Policy": console.ContentSecurityPolicy,
				"X-Content-Type-Options":  "nosniff",
				"X-Frame-Options":         "DENY",
			} {
				if got := res.Header.Get(k); got != v {
					t.Errorf("%s %s: %s = %q, want %q", method, path, k, got, v)
				}
			}
		}
	}
}
