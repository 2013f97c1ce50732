package extauthz_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/permatrix/permatrix/internal/routes"
	"github.com/permatrix/permatrix/test/harness"
)

// readingRoutes: a strict route for what bob may not do, and a loose
// catch-all that bob passes (edit_users, and so view_project, on project
// "public"). An original request a backend reads as the strict route's must
// never be decided by the catch-all.
const readingRoutes = `routes:
  - methods: [DELETE]
    path: /projects/{id}
    system: celonis-task-mining
    action: delete_project
    resource: {type: project, id: "{id}"}
  - path: /admin/{rest...}
    system: celonis-task-mining
    action: edit_client_settings
  - path: /{rest...}
    system: celonis-task-mining
    action: view_project
    resource: {type: project, id: public}
`

// TestOriginalRequestReadings sends Envoy's CheckRequests whose method or
// path a backend may read as the strict route's over the real gRPC server;
// each is refused (INVALID_ARGUMENT, 400), never OK.
func TestOriginalRequestReadings(t *testing.T) {
	rt, err := routes.Parse("routes.yaml", []byte(readingRoutes))
	if err != nil {
		t.Fatal(err)
	}
	s := harness.Start(t, harness.Options{Routes: rt})
	s.Assign(map[string]any{"subject": "user:bob", "system": tm, "permission": "edit_users", "scope": map[string]any{"type": "project", "id": "public"}})
	c := client(t, start(t, s, rt, nil), insecure.NewCredentials())
	bob := map[string]string{"x-forwarded-user": "bob"}
	check := func(method, path string, headers ...string) (codes.Code, string) {
		t.Helper()
		h := map[string]string{}
		for k, v := range bob {
			h[k] = v
		}
		for i := 0; i+1 < len(headers); i += 2 {
			h[headers[i]] = headers[i+1]
		}
		resp, err := c.Check(context.Background(), request(method, path, h, nil))
		if err != nil {
			t.Fatalf("Check %s %s: %v", method, path, err)
		}
		return codes.Code(resp.GetStatus().GetCode()), resp.GetDeniedResponse().GetBody()
	}
	// The catch-all lets bob through; the strict routes do not.
	if code, body := check("GET", "/projects/p1"); code != codes.OK {
		t.Fatalf("GET /projects/p1 (catch-all): %v %s", code, body)
	}
	for _, r := range [][2]string{{"DELETE", "/projects/p1"}, {"GET", "/admin/settings"}} {
		if code, body := check(r[0], r[1]); code != codes.PermissionDenied {
			t.Fatalf("%s %s: %v %s, want PERMISSION_DENIED", r[0], r[1], code, body)
		}
	}
	// IIS URL Rewrite and the applications that read these headers serve
	// the path they name.
	for _, name := range []string{"x-original-url", "x-rewrite-url"} {
		if code, body := check("GET", "/x", name, "/admin/settings"); code != codes.InvalidArgument || !strings.Contains(strings.ToLower(body), name) {
			t.Errorf("GET /x with %s: /admin/settings: %v %s, want INVALID_ARGUMENT naming it", name, code, body)
		}
	}
	for _, tc := range []struct{ why, method, path, says string }{
		// Django and Werkzeug read a method in any case as its upper-case
		// one; no route lists "delete", the catch-all lists no method.
		{"lower-case method", "delete", "/projects/p1", "upper case"},
		{"mixed-case method", "Delete", "/projects/p1", "upper case"},
		// A backend that decodes twice reads these as /admin/settings.
		{"double-encoded dot segment", "GET", "/x/%252e%252e/admin/settings", "decoded twice"},
		{"double-encoded slash", "GET", "/x%252f..%252fadmin/settings", "decoded twice"},
		// IIS's %u encoding, which .NET's HttpUtility.UrlDecode decodes.
		{"double-encoded %u dot segment", "GET", "/x/%25u002e%25u002e/admin/settings", "decoded twice"},
		// One segment to the backend, "p1/{" (Express, Go's ServeMux: the
		// DELETE route's), two to a matcher that lets Go re-escape it.
		{"encoded slash beside a {", "DELETE", "/projects/p1%2F{", "encoded slash"},
		// Overlong UTF-8 forms of "." (Tomcat before 6.0.18, IIS 5).
		{"overlong dot segment", "GET", "/x/%c0%ae%c0%ae/admin/settings", "UTF-8"},
		{"double-encoded overlong dot segment", "GET", "/x/%25c0%25ae%25c0%25ae/admin/settings", "UTF-8"},
		// Full-width dots: ".." to NFKC and Windows' best-fit conversion.
		{"full-width dot segment", "GET", "/x/%EF%BC%8E%EF%BC%8E/admin/settings", "NFKC"},
	} {
		if code, body := check(tc.method, tc.path); code != codes.InvalidArgument || !strings.Contains(body, tc.says) {
			t.Errorf("%s: %s %s: %v %s, want INVALID_ARGUMENT saying %q", tc.why, tc.method, tc.path, code, body, tc.says)
		}
	}
}
