package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/gateway"
	"github.com/permatrix/permatrix/internal/identity"
	"github.com/permatrix/permatrix/internal/routes"
)

const base = "/v1/forward-auth"

const routesFile = `routes:
  - methods: [GET]
    path: /projects/{id}/users
    system: celonis-task-mining
    action: view_users
    resource: {type: project, id: "{id}"}
    groups: [via-route]
  - methods: [POST]
    path: /projects/{id}/users
    system: celonis-task-mining
    action: edit_users
    resource: {type: project, id: "{id}"}
  - path: /health
    system: celonis-task-mining
    action: view_users
`

// answer is what the test server says: the check, or the error's code
// and message.
type answer struct {
	Status  int
	Check   *permatrix.Check `json:"check"`
	Code    string           `json:"code"`
	Message string           `json:"message"`
}

// server is a forward-auth endpoint on a loopback port that answers with
// the check the gateway makes of each request (nothing is decided).
func server(t *testing.T, g *gateway.Gateway) string {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		ch, err := g.Check(r.Context(), gateway.FromHTTP(r, base))
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(answer{Code: permatrix.ErrorCode(err), Message: permatrix.ErrorMessage(err)})
			return
		}
		_ = json.NewEncoder(w).Encode(answer{Check: &ch})
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// ask sends method url with headers (name, value pairs; a name may repeat).
func ask(t *testing.T, method, url string, headers ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var a answer
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, raw)
	}
	a.Status = resp.StatusCode
	return a
}

func (a answer) wantCheck(t *testing.T, want permatrix.Check) {
	t.Helper()
	if a.Check == nil {
		t.Fatalf("error %s: %s, want check %+v", a.Code, a.Message, want)
	}
	if !reflect.DeepEqual(*a.Check, want) {
		t.Fatalf("check %+v\nwant  %+v", *a.Check, want)
	}
}

func (a answer) wantError(t *testing.T, code, msg string) {
	t.Helper()
	if a.Check != nil {
		t.Fatalf("check %+v, want error %s %q", *a.Check, code, msg)
	}
	if a.Code != code || !strings.Contains(a.Message, msg) {
		t.Fatalf("error %s: %q, want %s with %q", a.Code, a.Message, code, msg)
	}
}

func headerIdentity(t *testing.T) *identity.Identity {
	t.Helper()
	id, err := identity.New(context.Background(), identity.Config{Mode: "header=X-Forwarded-User", GroupsHeader: "X-Forwarded-Groups"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func routed(t *testing.T) string {
	t.Helper()
	tab, err := routes.Parse("routes.yaml", []byte(routesFile))
	if err != nil {
		t.Fatal(err)
	}
	return server(t, &gateway.Gateway{Identity: headerIdentity(t), Routes: tab})
}

func project(id string) *permatrix.Scope { return &permatrix.Scope{Type: "project", ID: id} }

// The three ways proxies say what the original request was.
func TestRoutesFromEachProxy(t *testing.T) {
	url := routed(t)
	want := permatrix.Check{Subject: "alice", System: "celonis-task-mining", Action: "view_users", Resource: project("p1"), Groups: []string{"via-route"}}
	// Envoy (HTTP ext_authz): the original path appended, method kept.
	ask(t, "GET", url+base+"/projects/p1/users?page=2", "X-Forwarded-User", "alice").wantCheck(t, want)
	// nginx auth_request.
	ask(t, "GET", url+base, "X-Forwarded-User", "alice", "X-Original-URI", "/projects/p1/users?page=2", "X-Original-Method", "GET").wantCheck(t, want)
	// Traefik forwardAuth.
	ask(t, "GET", url+base, "X-Forwarded-User", "alice", "X-Forwarded-Uri", "/projects/p1/users", "X-Forwarded-Method", "GET").wantCheck(t, want)
	// The method decides the route.
	post := permatrix.Check{Subject: "alice", System: "celonis-task-mining", Action: "edit_users", Resource: project("p1")}
	ask(t, "GET", url+base, "X-Forwarded-User", "alice", "X-Original-URI", "/projects/p1/users", "X-Original-Method", "POST").wantCheck(t, post)
	ask(t, "POST", url+base+"/projects/p1/users", "X-Forwarded-User", "alice").wantCheck(t, post)
	// Without a method header, the forward-auth request's own method — but
	// a GET, which is what nginx's auth_request sub-request always is: the
	// original method is unknown then, and no route is chosen for it.
	ask(t, "POST", url+base, "X-Forwarded-User", "alice", "X-Forwarded-Uri", "/projects/p1/users").wantCheck(t, post)
	ask(t, "GET", url+base, "X-Forwarded-User", "alice", "X-Original-URI", "/projects/p1/users").
		wantError(t, permatrix.EINVALID, "the original request's method is unknown")
	// Nor from another header's method: which of the two the proxy set and
	// which the client added cannot be told (TestMethodFromAnotherHeaderRefused).
	ask(t, "GET", url+base, "X-Forwarded-User", "alice", "X-Original-URI", "/projects/p1/users", "X-Forwarded-Uri", "/projects/p1/users", "X-Forwarded-Method", "POST").
		wantError(t, permatrix.EINVALID, "the original request's method is unknown")
	// Captures are unescaped.
	ask(t, "GET", url+base+"/projects/p%20one/users", "X-Forwarded-User", "alice").
		wantCheck(t, permatrix.Check{Subject: "alice", System: "celonis-task-mining", Action: "view_users", Resource: project("p one"), Groups: []string{"via-route"}})
	// A route without resource or groups.
	ask(t, "DELETE", url+base+"/health", "X-Forwarded-User", "bob").
		wantCheck(t, permatrix.Check{Subject: "bob", System: "celonis-task-mining", Action: "view_users"})
}

// The subject is the identity's, never the request's: a client cannot
// name it in the X-Permatrix-* headers nor anywhere else.
func TestSubjectAndGroupsFromTheIdentity(t *testing.T) {
	url := routed(t)
	a := ask(t, "GET", url+base+"/projects/p1/users", "X-Forwarded-User", "alice", "X-Forwarded-Groups", "eu, ops,eu,via-route",
		"X-Permatrix-Subject", "root")
	a.wantCheck(t, permatrix.Check{Subject: "alice", System: "celonis-task-mining", Action: "view_users", Resource: project("p1"),
		Groups: []string{"via-route", "eu", "ops"}}) // merged, each once
	// With a routes file, the check headers are ignored: the route decides.
	ask(t, "GET", url+base+"/projects/p1/users", "X-Forwarded-User", "alice",
		"X-Permatrix-System", "blueprism", "X-Permatrix-Action", "system_settings").
		wantCheck(t, permatrix.Check{Subject: "alice", System: "celonis-task-mining", Action: "view_users", Resource: project("p1"), Groups: []string{"via-route"}})
}

// No identity is 401 whatever is asked, before the route is looked at.
func TestIdentityFirst(t *testing.T) {
	url := routed(t)
	for _, h := range [][]string{
		{},
		{"X-Forwarded-User", ""},
		{"X-Forwarded-User", "\xff"},      // obs-text: not UTF-8, not an id
		{"X-Forwarded-User", "al\xc3ice"}, // a truncated UTF-8 sequence
		{"X-Forwarded-User", "alice", "X-Forwarded-User", "mallory"},
		{"X-Forwarded-User", strings.Repeat("u", 257)},
		{"X-Forwarded-User", "alice", "X-Forwarded-Groups", "ok,g\xfe"},
	} {
		for _, target := range []string{base + "/projects/p1/users", base + "/unrouted", base} {
			a := ask(t, "GET", url+target, h...)
			if a.Code != permatrix.EUNAUTHORIZED {
				t.Errorf("%q on %s: %s %q, want unauthorized", h, target, a.Code, a.Message)
			}
		}
	}
}

func TestRoutesRefuse(t *testing.T) {
	url := routed(t)
	alice := []string{"X-Forwarded-User", "alice"}
	with := func(h ...string) []string { return append(append([]string{}, alice...), h...) }

	ask(t, "GET", url+base, alice...).wantError(t, permatrix.EINVALID, "the original request's URI is unknown")
	ask(t, "GET", url+base+"/projects/p1", alice...).wantError(t, permatrix.EFORBIDDEN, "no route matches GET /projects/p1")
	ask(t, "DELETE", url+base+"/projects/p1/users", alice...).wantError(t, permatrix.EFORBIDDEN, "no route matches DELETE /projects/p1/users")
	// Paths a backend could read otherwise than the matcher.
	for _, p := range []string{"/projects/p1/../p2/users", "/projects/a%2Fb/users", "/projects//users", "/projects/%2e%2e/users"} {
		ask(t, "GET", url+base, with("X-Original-URI", p, "X-Original-Method", "GET")...).wantError(t, permatrix.EINVALID, "original URI")
	}
	// The message quotes at most 200 bytes of the path, never the query.
	long := "/" + strings.Repeat("x", 5000)
	a := ask(t, "GET", url+base, with("X-Original-URI", long+"?secret=1", "X-Original-Method", "GET")...)
	a.wantError(t, permatrix.EFORBIDDEN, "no route matches GET /xxx")
	if len(a.Message) > 300 || strings.Contains(a.Message, "secret") {
		t.Fatalf("message of %d bytes: %q", len(a.Message), a.Message)
	}
	// A method that is not one.
	ask(t, "GET", url+base, with("X-Original-URI", "/health", "X-Original-Method", "GE T")...).wantError(t, permatrix.EINVALID, "is not an HTTP method")
}

// Where a client adds another proxy's header, the sources must agree: it
// cannot pick the route.
func TestAmbiguousOriginalRequest(t *testing.T) {
	url := routed(t)
	alice := []string{"X-Forwarded-User", "alice"}
	with := func(h ...string) []string { return append(append([]string{}, alice...), h...) }

	ask(t, "GET", url+base, with("X-Original-URI", "/projects/p1/users", "X-Forwarded-Uri", "/health")...).
		wantError(t, permatrix.EINVALID, "the original request is ambiguous: X-Original-URI/X-Original-Method says /projects/p1/users (no method), X-Forwarded-Uri/X-Forwarded-Method says /health (no method)")
	ask(t, "GET", url+base+"/projects/p1/users", with("X-Original-URI", "/health")...).
		wantError(t, permatrix.EINVALID, "the path after /v1/forward-auth says GET /projects/p1/users")
	ask(t, "GET", url+base, with("X-Original-URI", "/projects/p1/users", "X-Original-Method", "GET", "X-Forwarded-Method", "POST")...).
		wantError(t, permatrix.EINVALID, "ambiguous")
	ask(t, "GET", url+base+"/projects/p1/users", with("X-Forwarded-Method", "POST")...).
		wantError(t, permatrix.EINVALID, "ambiguous")
	// Sent twice is refused, not joined.
	ask(t, "GET", url+base, with("X-Original-URI", "/health", "X-Original-URI", "/projects/p1/users")...).
		wantError(t, permatrix.EINVALID, "X-Original-URI is sent 2 times")
	ask(t, "GET", url+base, with("X-Original-URI", "/health", "X-Original-Method", "GET", "X-Original-Method", "POST")...).
		wantError(t, permatrix.EINVALID, "sent 2 times")
	// Sources that agree are fine.
	ask(t, "GET", url+base+"/health", with("X-Original-URI", "/health", "X-Forwarded-Uri", "/health", "X-Forwarded-Method", "GET")...).
		wantCheck(t, permatrix.Check{Subject: "alice", System: "celonis-task-mining", Action: "view_users"})
	// A path that only starts like the base is not Envoy's.
	ask(t, "GET", url+base+"x/health", alice...).wantError(t, permatrix.EINVALID, "URI is unknown")
}

// A method-override header or _method parameter naming another method
// would let a backend that honours it do what the other method's route
// decides: refused. The same method, or an empty value, is no override.
func TestMethodOverrideRefused(t *testing.T) {
	url := routed(t)
	alice := []string{"X-Forwarded-User", "alice"}
	with := func(h ...string) []string { return append(append([]string{}, alice...), h...) }
	post := permatrix.Check{Subject: "alice", System: "celonis-task-mining", Action: "edit_users", Resource: project("p1")}

	for _, name := range []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "x-http-method-override"} {
		ask(t, "GET", url+base, with("X-Original-URI", "/projects/p1/users", "X-Original-Method", "POST", name, "DELETE")...).
			wantError(t, permatrix.EINVALID, `the original request is a POST but `)
		ask(t, "POST", url+base+"/projects/p1/users", with(name, "delete")...).
			wantError(t, permatrix.EINVALID, `names method "delete"`)
	}
	ask(t, "GET", url+base, with("X-Forwarded-Uri", "/projects/p1/users?_method=DELETE", "X-Forwarded-Method", "POST")...).
		wantError(t, permatrix.EINVALID, "the _method parameter names method \"DELETE\"")
	ask(t, "POST", url+base+"/projects/p1/users?a=1&%5Fmethod=put", alice...).
		wantError(t, permatrix.EINVALID, "_method")
	// Over gRPC too (the gateway's own Request).
	if _, err := (&gateway.Gateway{Identity: headerIdentity(t), Routes: mustRoutes(t)}).Check(context.Background(), gateway.Request{
		Method: "POST", URI: "/projects/p1/users",
		Header: http.Header{"X-Forwarded-User": {"alice"}, "X-Http-Method-Override": {"DELETE"}},
	}); permatrix.ErrorCode(err) != permatrix.EINVALID {
		t.Fatalf("gRPC-style request with an override: %v", err)
	}
	// The same method, or an empty value, is no override.
	ask(t, "POST", url+base+"/projects/p1/users?_method=post", with("X-HTTP-Method-Override", "POST", "X-HTTP-Method", "")...).wantCheck(t, post)
}

func mustRoutes(t *testing.T) *routes.Table {
	t.Helper()
	tab, err := routes.Parse("routes.yaml", []byte(routesFile))
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

// Without a routes file, the proxy's configuration names the check.
func TestNamedCheck(t *testing.T) {
	url := server(t, &gateway.Gateway{Identity: headerIdentity(t)})
	alice := []string{"X-Forwarded-User", "alice"}
	with := func(h ...string) []string { return append(append([]string{}, alice...), h...) }

	ask(t, "GET", url+base, alice...).wantError(t, permatrix.EFORBIDDEN, "there is no routes file and the proxy named no check")
	ask(t, "GET", url+base, with("X-Permatrix-System", "blueprism", "X-Permatrix-Action", "view_resource")...).
		wantCheck(t, permatrix.Check{Subject: "alice", System: "blueprism", Action: "view_resource"})
	ask(t, "GET", url+base, with("X-Permatrix-System", "blueprism", "X-Permatrix-Action", "view_resource",
		"X-Permatrix-Resource-Type", "resource_group", "X-Permatrix-Resource-Id", "g1", "X-Forwarded-Groups", "ops")...).
		wantCheck(t, permatrix.Check{Subject: "alice", System: "blueprism", Action: "view_resource",
			Resource: &permatrix.Scope{Type: "resource_group", ID: "g1"}, Groups: []string{"ops"}})
	ask(t, "GET", url+base, with("X-Permatrix-System", "blueprism", "X-Permatrix-System", "celonis-studio", "X-Permatrix-Action", "a")...).
		wantError(t, permatrix.EINVALID, "X-Permatrix-System is sent 2 times")
	// The original URI is not needed, and not looked at.
	ask(t, "GET", url+base+"/anything", with("X-Permatrix-System", "s", "X-Permatrix-Action", "a")...).
		wantCheck(t, permatrix.Check{Subject: "alice", System: "s", Action: "a"})
	// No identity is still 401 first.
	ask(t, "GET", url+base, "X-Permatrix-System", "s", "X-Permatrix-Action", "a").wantError(t, permatrix.EUNAUTHORIZED, "no identity")
}

func TestNamed(t *testing.T) {
	if gateway.Named("", "", "project", "p1") != nil {
		t.Error("no system and no action is no check")
	}
	if ch := gateway.Named("s", "", "", ""); ch == nil || ch.System != "s" || ch.Action != "" || ch.Resource != nil {
		t.Errorf("system alone: %+v", ch)
	}
	if ch := gateway.Named("", "a", "service", ""); ch == nil || ch.Resource == nil || *ch.Resource != permatrix.ServiceScope {
		t.Errorf("service resource: %+v", ch)
	}
}

// FromHTTP on its own, for what it leaves alone.
func TestFromHTTPKeepsHeaders(t *testing.T) {
	r := httptest.NewRequest("PUT", base+"/a/b?x=1&y=2", nil)
	r.Header.Set("X-Forwarded-User", "alice")
	req := gateway.FromHTTP(r, base)
	if req.Unreadable != nil {
		t.Fatal(req.Unreadable)
	}
	if req.Method != "PUT" || req.URI != "/a/b?x=1&y=2" || req.Header.Get("X-Forwarded-User") != "alice" || req.Named != nil {
		t.Fatalf("FromHTTP = %+v", req)
	}
}

// FuzzCheck: whatever the proxy forwards, the gateway never panics, never
// makes a check without the identity's subject, and a routed check comes
// from a URI the routes accept as clean.
func FuzzCheck(f *testing.F) {
	f.Add("GET", "/projects/p1/users", "", "", "", "")
	f.Add("POST", "", "/projects/p1/users", "POST", "", "")
	f.Add("GET", "", "/projects/p1/users?x", "", "/projects/p1/users?x", "GET")
	f.Add("GET", "/a", "/b", "PUT", "/c", "DELETE")
	f.Add("GET", "/projects/%2e%2e/users", "", "", "", "")
	f.Add("GET", "", "http://evil/projects/p1/users", "", "", "")
	f.Add("GET", "", "*", "CONNECT", "", "")
	f.Add("GET", "", "/projects/p\x00/users", "G\tET", "", "")
	tab, err := routes.Parse("routes.yaml", []byte(routesFile))
	if err != nil {
		f.Fatal(err)
	}
	id, err := identity.New(context.Background(), identity.Config{Mode: "header=X-Forwarded-User"}, nil)
	if err != nil {
		f.Fatal(err)
	}
	g := &gateway.Gateway{Identity: id, Routes: tab}
	f.Fuzz(func(t *testing.T, method, path, origURI, origMethod, fwdURI, fwdMethod string) {
		r, err := http.NewRequest(method, "http://pdp"+base+path, nil)
		if err != nil {
			return
		}
		r.Header.Set("X-Forwarded-User", "alice")
		for name, v := range map[string]string{
			gateway.HeaderOriginalURI: origURI, gateway.HeaderOriginalMethod: origMethod,
			gateway.HeaderForwardedURI: fwdURI, gateway.HeaderForwardedMethod: fwdMethod,
		} {
			if v != "" {
				r.Header.Set(name, v)
			}
		}
		req := gateway.FromHTTP(r, base)
		if err := req.Unreadable; err != nil && permatrix.ErrorCode(err) != permatrix.EINVALID {
			t.Fatalf("FromHTTP: %v, want EINVALID", err)
		}
		ch, err := g.Check(context.Background(), req)
		if err != nil {
			if c := permatrix.ErrorCode(err); c != permatrix.EINVALID && c != permatrix.EFORBIDDEN {
				t.Fatalf("Check: %v, want EINVALID or EFORBIDDEN", err)
			}
			return
		}
		if ch.Subject != "alice" || ch.System != "celonis-task-mining" {
			t.Fatalf("check %+v", ch)
		}
		if _, err := routes.CleanURI(req.URI); err != nil {
			t.Fatalf("routed %q, which CleanURI refuses: %v", req.URI, err)
		}
		if ch.Resource != nil && ch.Resource.ID == "" {
			t.Fatalf("routed to a project with no id: %+v", ch)
		}
	})
}

// TestEncodedSlashKeptAsSent: Go re-escapes a path whose escaping it does
// not take as its own (a "{", "|", "^", '"' or "`" in it) from the decoded
// path, and an encoded slash is then a slash: "/projects/a%2Fb{/users"
// was matched as /projects/a/b{/users, five segments where the backend
// reads four. The path is read as the proxy sent it, in each of the three
// ways, and its encoded slash refused.
func TestEncodedSlashKeptAsSent(t *testing.T) {
	u := routed(t)
	for _, p := range []string{"/projects/a%2Fb{/users", "/projects/a%2fb|/users", "/projects/a%5Cb^/users", "/projects/a%2Fb`/users"} {
		// Envoy's HTTP service: sent as it is, which net/http's client
		// would re-escape (Opaque keeps it).
		req, err := http.NewRequest("GET", u, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Opaque = base + p
		req.Header.Set("X-Forwarded-User", "alice")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var a answer
		if err := json.Unmarshal(raw, &a); err != nil {
			t.Fatalf("%s: %d %s", p, resp.StatusCode, raw)
		}
		t.Run("envoy "+p, func(t *testing.T) { a.wantError(t, permatrix.EINVALID, "encoded slash or backslash") })
		t.Run("nginx "+p, func(t *testing.T) {
			ask(t, "GET", u+base, "X-Forwarded-User", "alice", "X-Original-URI", p, "X-Original-Method", "GET").
				wantError(t, permatrix.EINVALID, "encoded slash or backslash")
		})
		t.Run("traefik "+p, func(t *testing.T) {
			ask(t, "GET", u+base, "X-Forwarded-User", "alice", "X-Forwarded-Uri", p, "X-Forwarded-Method", "GET").
				wantError(t, permatrix.EINVALID, "encoded slash or backslash")
		})
	}
}

// TestPathOverrideRefused: X-Original-URL and X-Rewrite-URL make a backend
// serve the path they name instead of the request's (IIS URL Rewrite and
// the applications that read it, Symfony before 3.4.14, Zend Framework
// before ZF2018-01): the route of /projects/p1/users decided, the other
// path served. An original request that names another path in one is
// refused, as a method override is.
func TestPathOverrideRefused(t *testing.T) {
	url := routed(t)
	alice := []string{"X-Forwarded-User", "alice"}
	with := func(h ...string) []string { return append(append([]string{}, alice...), h...) }
	view := permatrix.Check{Subject: "alice", System: "celonis-task-mining", Action: "view_users", Resource: project("p1"), Groups: []string{"via-route"}}

	for _, name := range []string{"X-Original-URL", "X-Rewrite-URL", "x-original-url"} {
		ask(t, "GET", url+base, with("X-Original-URI", "/projects/p1/users", "X-Original-Method", "GET", name, "/admin/settings")...).
			wantError(t, permatrix.EINVALID, `names path "/admin/settings"`)
		ask(t, "GET", url+base+"/projects/p1/users", with(name, "/projects/p2/users?x=1")...).
			wantError(t, permatrix.EINVALID, `names path "/projects/p2/users"`)
	}
	// Over gRPC too (the gateway's own Request).
	if _, err := (&gateway.Gateway{Identity: headerIdentity(t), Routes: mustRoutes(t)}).Check(context.Background(), gateway.Request{
		Method: "GET", URI: "/projects/p1/users",
		Header: http.Header{"X-Forwarded-User": {"alice"}, "X-Original-Url": {"/admin"}},
	}); permatrix.ErrorCode(err) != permatrix.EINVALID {
		t.Fatalf("gRPC-style request with a path override: %v", err)
	}
	// The same path (its query aside), or an empty value, is no override.
	ask(t, "GET", url+base+"/projects/p1/users?page=2", with("X-Original-URL", "/projects/p1/users?page=3", "X-Rewrite-URL", "")...).wantCheck(t, view)
}

// TestMethodFromAnotherHeaderRefused: an X-Original-URI without its method
// (nginx's own auth_request example) on the always-GET sub-request leaves
// the method unknown; the client's own X-Forwarded-Method, with the same
// path in X-Forwarded-Uri (which such a configuration passes on), must not
// name it. Only the request's own method (the path after the base) fills
// in a header source's missing one.
func TestMethodFromAnotherHeaderRefused(t *testing.T) {
	url := routed(t)
	alice := []string{"X-Forwarded-User", "alice"}
	with := func(h ...string) []string { return append(append([]string{}, alice...), h...) }
	for _, h := range [][]string{
		{"X-Original-URI", "/projects/p1/users", "X-Forwarded-Uri", "/projects/p1/users", "X-Forwarded-Method", "GET"},
		{"X-Forwarded-Uri", "/projects/p1/users", "X-Original-URI", "/projects/p1/users", "X-Original-Method", "GET"},
	} {
		ask(t, "GET", url+base, with(h...)...).wantError(t, permatrix.EINVALID, "the original request's method is unknown")
	}
	// The request's own method, past the base, is the original's (Envoy).
	ask(t, "GET", url+base+"/projects/p1/users", with("X-Original-URI", "/projects/p1/users")...).
		wantCheck(t, permatrix.Check{Subject: "alice", System: "celonis-task-mining", Action: "view_users", Resource: project("p1"), Groups: []string{"via-route"}})
}
