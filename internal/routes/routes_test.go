package routes_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/routes"
)

const example = `# routes of the test
routes:
  - methods: [GET, HEAD]
    path: /projects/{id}/users
    system: celonis-task-mining
    action: edit_users
    resource: {type: project, id: "{id}"}
  - methods: [POST]
    path: /projects/{id}/users
    system: celonis-task-mining
    action: edit_users
    resource: {type: project, id: "{id}"}
    context: {project: "{id}", source: proxy, level: 3}
    groups: [proxied]
  - path: /projects/new
    system: celonis-task-mining
    action: create_project
  - methods: [DELETE]
    path: /files/{rest...}
    system: celonis-storage-manager
    action: delete
    resource: {type: bucket, id: shared}
  - methods: [GET]
    path: /{$}
    system: celonis-task-mining
    action: view
`

func mustParse(t *testing.T, src string) *routes.Table {
	t.Helper()
	tb, err := routes.Parse("routes.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestMatch(t *testing.T) {
	tb := mustParse(t, example)
	if tb.Len() != 5 {
		t.Fatalf("%d routes", tb.Len())
	}
	for _, tc := range []struct {
		method, uri string
		want        string // system/action/type/id, "" for no route, "400" for invalid
		where       string
	}{
		{"GET", "/projects/p1/users", "celonis-task-mining/edit_users/project/p1", "routes.yaml:3"},
		{"HEAD", "/projects/p1/users?x=1", "celonis-task-mining/edit_users/project/p1", "routes.yaml:3"},
		{"POST", "/projects/p%20x/users", "celonis-task-mining/edit_users/project/p x", "routes.yaml:8"},
		{"PUT", "/projects/p1/users", "", ""},
		{"OPTIONS", "/projects/p1/users", "", ""},
		{"GET", "/projects/p1/users/", "", ""},
		{"GET", "/projects/p1", "", ""},
		{"PROPFIND", "/projects/new", "celonis-task-mining/create_project//", "routes.yaml:15"},
		{"DELETE", "/files/a/b/c", "celonis-storage-manager/delete/bucket/shared", "routes.yaml:18"},
		{"GET", "/", "celonis-task-mining/view//", "routes.yaml:23"},
		{"GET", "/other", "", ""},
		{"GET", "http://evil.example/projects/p1/users", "celonis-task-mining/edit_users/project/p1", "routes.yaml:3"},
		{"GET", "/projects/p1/../p2/users", "400", ""},
		{"GET", "/projects/p1/%2e%2e/p2/users", "400", ""},
		{"GET", "/projects/..;/users", "400", ""},
		// Path parameters: Tomcat, Jetty and Spring drop ";…" from a segment
		// before mapping, so the backend would serve project p1's users
		// after a check on project "p1;x" (or a route other than "users");
		// encoded, as Spring Security's firewall refuses it too.
		{"GET", "/projects/p1;x/users", "400", ""},
		{"GET", "/projects/p1/users;x", "400", ""},
		{"GET", "/projects/p1/users;", "400", ""},
		{"GET", "/projects/p%3B1/users", "400", ""},
		// A fragment is no part of a request target; nginx's $uri (what it
		// routes and proxies with a URI) ends at "#", its $request_uri (what
		// X-Original-URI carries) does not: /projects/p1#x/users is project
		// "p1#x"'s users here and /projects/p1 there.
		{"GET", "/projects/p1#x/users", "400", ""},
		{"GET", "/projects/p1/users#x", "400", ""},
		{"GET", "/projects/p1/users?q=1#x", "400", ""},
		{"GET", "/projects/p%231/users", "celonis-task-mining/edit_users/project/p#1", "routes.yaml:3"},
		{"GET", "/projects//users", "400", ""},
		{"GET", "/projects/a%2Fb/users", "400", ""},
		{"GET", "/projects/a%5Cb/users", "400", ""},
		// Go re-escapes a path with a "{" from its decoded form, where
		// the encoded slash is a slash: the path is read as it was sent.
		{"GET", "/projects/a%2Fb{/users", "400", ""},
		{"GET", "/projects/a%5Cb|/users", "400", ""},
		{"GET", "/projects/a%2Fb%7B/users", "400", ""},
		{"GET", "/projects/p{1}/users", "celonis-task-mining/edit_users/project/p{1}", "routes.yaml:3"},
		{"GET", "/projects/a%00b/users", "400", ""},
		{"GET", "/projects/%zz/users", "400", ""},
		{"GET", "projects/p1/users", "400", ""},
		{"GET", "", "400", ""},
		{"G ET", "/projects/p1/users", "400", ""},
	} {
		ch, where, ok, err := tb.Match(tc.method, tc.uri)
		got := ""
		switch {
		case err != nil:
			got = "400"
			if permatrix.ErrorCode(err) != permatrix.EINVALID {
				t.Errorf("%s %s: error code %s", tc.method, tc.uri, permatrix.ErrorCode(err))
			}
		case ok:
			got = ch.System + "/" + ch.Action + "/"
			if ch.Resource != nil {
				got += ch.Resource.Type + "/" + ch.Resource.ID
			} else {
				got += "/"
			}
		}
		if got != tc.want || where != tc.where {
			t.Errorf("%s %s: %q at %q, want %q at %q (err %v)", tc.method, tc.uri, got, where, tc.want, tc.where, err)
		}
	}
	ch, _, _, _ := tb.Match("POST", "/projects/p9/users")
	if ch.Context["project"] != "p9" || ch.Context["source"] != "proxy" || ch.Context["level"].(interface{ String() string }).String() != "3" || ch.Groups[0] != "proxied" {
		t.Fatalf("context and groups: %+v", ch)
	}
	// Captures do not leak between requests.
	ch2, _, _, _ := tb.Match("POST", "/projects/p8/users")
	if ch.Context["project"] != "p9" || ch2.Context["project"] != "p8" {
		t.Fatalf("contexts shared: %v %v", ch.Context, ch2.Context)
	}
}

func TestParseErrors(t *testing.T) {
	const head = "routes:\n"
	for _, tc := range []struct{ src, want string }{
		{"", "empty"},
		{"routes: []\n", "no routes"},
		{"routes: {}\n", "routes.yaml: line 1"},
		{head + "  - path: /a\n    system: s\n    action: a\n    sistem: x\n", "line 5: field sistem not found"},
		{head + "  - path: /a\n    system: s\n    action: a\n    action: b\n", `line 5: mapping key "action" already defined at line 4`},
		{head + "  - path: a\n    system: s\n    action: a\n", `routes.yaml:2: path "a" must start with /`},
		{head + "  - path: /a\n    action: a\n", "routes.yaml:2: system is required"},
		{head + "  - path: /a\n    system: s\n", "routes.yaml:2: action is required"},
		{head + "  - {path: /a, system: s, action: a, methods: [get]}\n", `method "get"`},
		{head + "  - {path: /a, system: s, action: a, methods: []}\n", "methods is empty"},
		{head + "  - {path: /a, system: s, action: a, methods: [GET, GET]}\n", "listed twice"},
		{head + "  - {path: \"/a/{id\", system: s, action: a}\n", "routes.yaml:2: path"},
		{head + "  - {path: \"/a/{id}\", system: s, action: a, resource: {type: project}}\n", "resource.id is required"},
		{head + "  - {path: \"/a/{id}\", system: s, action: a, resource: {type: project, id: \"{pid}\"}}\n", "has no capture {pid}"},
		{head + "  - {path: \"/a/{id}\", system: s, action: a, resource: {type: project, id: \"p-{id}\"}}\n", `written "{name}" alone`},
		{head + "  - {path: \"/a/{id}\", system: s, action: a, context: {k: \"{x}\"}}\n", "has no capture {x}"},
		{head + "  - {path: /a, system: s, action: a, context: {1: {2: 3}}}\n", "context"},
		{head + "  - {path: /a, system: s, action: a, groups: [\"\"]}\n", "group"},
		{head + "  - {path: /a, system: s, action: a}\n  - {path: /a, system: s, action: b}\n", `routes.yaml:3: "/a" is already routed by routes.yaml:2`},
		{head + "  - {path: \"/a/{x}\", system: s, action: a}\n  - {path: \"/{y}/b\", system: s, action: b}\n", `routes.yaml:3: pattern "/{y}/b" is ambiguous with "/a/{x}" of routes.yaml:2`},
		{head + "  - {path: \"/a/{x}\", system: s, action: a, methods: [GET]}\n  - {path: \"/{y}/b\", system: s, action: b, methods: [GET]}\n", `ambiguous with "GET /a/{x}" of routes.yaml:2`},
		{head + "  - {path: /a, system: s, action: a}\n---\nroutes: []\n", "more than one YAML document"},
		{"routes:\n  - [\n", "routes.yaml: line"},
	} {
		_, err := routes.Parse("routes.yaml", []byte(tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.src, err, tc.want)
		}
	}
	// Not ambiguous: a more specific pattern beside a general one.
	mustParse(t, head+"  - {path: \"/a/{x}\", system: s, action: a}\n  - {path: /a/new, system: s, action: b}\n  - {path: \"/b/{x}\", system: s, action: c, methods: [POST]}\n  - {path: \"/b/{x}\", system: s, action: d}\n")
}

func TestLoadAndValidate(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "routes.yaml")
	if err := os.WriteFile(p, []byte(example), 0o600); err != nil {
		t.Fatal(err)
	}
	tb, err := routes.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	err = tb.Validate(func(ch permatrix.Check) error {
		seen = append(seen, ch.System+"/"+ch.Action)
		if ch.Action == "delete" {
			return permatrix.Errorf(permatrix.EINVALID, "unknown action %q", ch.Action)
		}
		return nil
	})
	if err == nil || err.Error() != p+`:18: unknown action "delete"` || len(seen) != 4 {
		t.Fatalf("validate: %v after %v", err, seen)
	}
	if _, err := routes.Load(filepath.Join(dir, "absent.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("absent file: %v", err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, make([]byte, routes.MaxFileBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := routes.Load(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("big file: %v", err)
	}
}

// FuzzParse: any file content is parsed or refused with an error; never a
// panic, and a parsed table answers a match.
//
// Longer run: go test ./internal/routes -run '^$' -fuzz FuzzParse -fuzztime 5m
func FuzzParse(f *testing.F) {
	f.Add([]byte(example))
	f.Add([]byte("routes:\n  - {path: \"/a/{x}\", system: s, action: a}\n  - {path: \"/{y}/b\", system: s, action: b}\n"))
	f.Add([]byte("routes:\n  - {path: \"/{a...}/b\", system: s, action: a}\n"))
	f.Add([]byte("routes:\n  - {path: /a, system: s, action: a, context: {1: {2: [3]}}}\n"))
	f.Add([]byte("routes: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		tb, err := routes.Parse("fuzz.yaml", src)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error without the file name: %v", err)
			}
			return
		}
		_, _, _, _ = tb.Match("GET", "/a/b")
	})
}

// FuzzMatch: any method and URI either match, miss or are refused as
// invalid; a match's resource id is a capture's decoded value or the
// constant, and never holds a slash or a control character that the
// path did not carry.
//
// Longer run: go test ./internal/routes -run '^$' -fuzz FuzzMatch -fuzztime 5m
func FuzzMatch(f *testing.F) {
	tb, err := routes.Parse("routes.yaml", []byte(example))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"/projects/p1/users", "/projects/%2e%2e/users", "/files/a/../b", "/projects/p;1/users?q#f", "//x", "/%"} {
		f.Add("GET", s)
	}
	f.Add("DELETE", "/files/x")
	f.Add("CONNECT", "/projects/new")
	f.Fuzz(func(t *testing.T, method, uri string) {
		ch, where, ok, err := tb.Match(method, uri)
		if err != nil {
			if permatrix.ErrorCode(err) != permatrix.EINVALID || ok {
				t.Fatalf("error %v (ok %v)", err, ok)
			}
			return
		}
		if !ok {
			return
		}
		if where == "" || ch.System == "" || ch.Action == "" {
			t.Fatalf("match without route: %+v at %q", ch, where)
		}
		if r := ch.Resource; r != nil && r.Type == "project" {
			if r.ID == "" || strings.ContainsAny(r.ID, "/\\") || strings.ContainsFunc(r.ID, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
				t.Fatalf("%s %q: resource id %q", method, uri, r.ID)
			}
		}
	})
}

// TestMatchMethodCase: a route names its methods in upper case, so an
// original method in another case ("delete") misses every route that lists
// methods and falls to one that lists none (a catch-all); Django, Werkzeug
// and others read "delete" as DELETE. It is refused, not matched.
func TestMatchMethodCase(t *testing.T) {
	tb := mustParse(t, `routes:
  - methods: [DELETE]
    path: /projects/{id}
    system: celonis-task-mining
    action: delete_project
    resource: {type: project, id: "{id}"}
  - path: /{rest...}
    system: celonis-task-mining
    action: view_project
    resource: {type: project, id: public}
`)
	for _, m := range []string{"delete", "Delete", "dELETE", "get", "propfind"} {
		ch, where, ok, err := tb.Match(m, "/projects/p1")
		if err == nil || permatrix.ErrorCode(err) != permatrix.EINVALID || ok || !strings.Contains(err.Error(), "upper case") {
			t.Errorf("%s /projects/p1: %+v at %q (ok %v), err %v; want EINVALID naming upper case", m, ch, where, ok, err)
		}
	}
	for m, want := range map[string]string{"DELETE": "delete_project", "PATCH": "view_project", "GET": "view_project", "PROPFIND": "view_project"} {
		ch, _, ok, err := tb.Match(m, "/projects/p1")
		if err != nil || !ok || ch.Action != want {
			t.Errorf("%s /projects/p1: %+v (ok %v, err %v), want %s", m, ch, ok, err, want)
		}
	}
}

// TestMatchDoubleEncoded: a segment that still holds an escape once
// decoded is read once more by a backend that decodes twice (IIS's double
// decoding, an application that unescapes what its server already
// unescaped, a proxy that decodes before one that decodes again): there
// "%252e%252e" is "..", and "/x/%252e%252e/admin" is "/admin". Such a
// segment is held to the same rules as the path's own.
func TestMatchDoubleEncoded(t *testing.T) {
	tb := mustParse(t, example+`  - path: /public/{rest...}
    system: celonis-task-mining
    action: view_project
    resource: {type: project, id: public}
`)
	for _, uri := range []string{
		"/public/%252e%252e/projects/new",
		"/public/%252E%252e/projects/new",
		"/public/.%252e/projects/new",
		"/public/%252e/x",
		"/public/a%252fb",
		"/public/a%252Fb",
		"/public/a%255cb",
		"/public/a%253bjsessionid=x",
		"/public/a%2523b",
		"/public/a%253fb",
		"/public/a%2500b",
		"/public/%25252e%25252e/x",
		"/projects/%252e%252e/users",
		// Decoders that keep a bad escape and decode the rest.
		"/public/%25zz%252f..%252fadmin",
		// IIS's and .NET's HttpUtility.UrlDecode's %uXXXX: "%u002e" is ".".
		"/public/%25u002e%25u002e/x",
		"/public/%25U002E%25u002E/x",
		"/public/a%25u002fb",
		"/public/a%25u005cb",
		"/public/%25%75002e%25%75002e/x",
		"/public/%2525u002e%2525u002e/x",
		// Encoded five and 41 times over: past what is decoded to look.
		"/public/%" + strings.Repeat("25", 4) + "2e%" + strings.Repeat("25", 4) + "2e/x",
		"/public/%" + strings.Repeat("25", 40) + "2e/x",
	} {
		ch, where, ok, err := tb.Match("GET", uri)
		if err == nil || permatrix.ErrorCode(err) != permatrix.EINVALID || ok || !strings.Contains(err.Error(), "decoded twice") {
			t.Errorf("GET %s: %+v at %q (ok %v), err %v; want EINVALID saying decoded twice", uri, ch, where, ok, err)
		}
	}
	// A "%" that is no escape once decoded, or one that decodes to nothing
	// a backend reads differently, is a plain character.
	for uri, id := range map[string]string{
		"/projects/100%25/users":          "100%",
		"/projects/50%25zz/users":         "50%zz",
		"/projects/a%2541/users":          "a%41",
		"/projects/%25%25/users":          "%%",
		"/projects/p%252dq/users":         "p%2dq",
		"/projects/%25e2%2582%25ac/users": "%e2%82%ac",
	} {
		ch, _, ok, err := tb.Match("GET", uri)
		if err != nil || !ok || ch.Resource == nil || ch.Resource.ID != id {
			t.Errorf("GET %s: %+v (ok %v, err %v), want project %q", uri, ch, ok, err, id)
		}
	}
}

// TestMatchNotUTF8: a segment whose bytes, decoded, are not UTF-8 is
// refused: servers that decode overlong forms (Tomcat before 6.0.18, IIS
// 5) read "%c0%ae%c0%ae" as ".." and "%c0%af" as "/", and any other
// server reads such bytes its own way (U+FFFD, Latin-1).
func TestMatchNotUTF8(t *testing.T) {
	tb := mustParse(t, example+`  - path: /public/{rest...}
    system: celonis-task-mining
    action: view_project
    resource: {type: project, id: public}
`)
	for _, uri := range []string{
		"/public/%c0%ae%c0%ae/projects/new",
		"/public/a%c0%afb",
		"/public/%e0%80%ae",
		"/public/%ff",
		"/public/caf%e9",
		"/public/\xc0\xae\xc0\xae/x",
		// Decoded twice, as IIS 5 did, then read as overlong forms.
		"/public/%25c0%25ae%25c0%25ae/projects/new",
		"/public/a%25c0%25afb",
		"/public/%2525c0%2525ae/x",
		"/projects/%25e2%2582/users",
	} {
		ch, where, ok, err := tb.Match("GET", uri)
		if err == nil || permatrix.ErrorCode(err) != permatrix.EINVALID || ok || !strings.Contains(err.Error(), "UTF-8") {
			t.Errorf("GET %q: %+v at %q (ok %v), err %v; want EINVALID naming UTF-8", uri, ch, where, ok, err)
		}
	}
	for uri, id := range map[string]string{
		"/projects/caf%C3%A9/users": "café",
		"/projects/café/users":      "café",
		"/projects/%E2%80%AE/users": "\u202e",
	} {
		ch, _, ok, err := tb.Match("GET", uri)
		if err != nil || !ok || ch.Resource == nil || ch.Resource.ID != id {
			t.Errorf("GET %s: %+v (ok %v, err %v), want project %q", uri, ch, ok, err, id)
		}
	}
}

// TestMatchBadEscapeSaysSo: a "%" that is no escape (a literal percent
// sign, IIS's %u) is refused saying what to send instead, not as "not a
// request URI", which a user cannot act on.
func TestMatchBadEscapeSaysSo(t *testing.T) {
	tb := mustParse(t, example)
	for _, uri := range []string{"/projects/100%/users", "/projects/%zz/users", "/projects/%u002e%u002e/users", "/projects/p1%"} {
		_, _, ok, err := tb.Match("GET", uri)
		if permatrix.ErrorCode(err) != permatrix.EINVALID || ok || !strings.Contains(err.Error(), "percent sign as %25") {
			t.Errorf("GET %s: ok %v, err %v; want EINVALID saying how to send a percent sign", uri, ok, err)
		}
	}
}

// TestMatchCompatibilityForms: a segment whose Unicode compatibility form
// (NFKC), which is also what Windows' best-fit conversion to a code page
// makes of it, is a dot segment or holds a slash or backslash: a backend
// that normalises (Python's unicodedata, an ANSI Windows API) reads
// "/public/．．/projects/new" as /projects/new.
func TestMatchCompatibilityForms(t *testing.T) {
	tb := mustParse(t, example+`  - path: /public/{rest...}
    system: celonis-task-mining
    action: view_project
    resource: {type: project, id: public}
`)
	for _, uri := range []string{
		"/public/%EF%BC%8E%EF%BC%8E/projects/new", // ．．
		"/public/．．/projects/new",
		"/public/%EF%BC%8E/projects/new",                      // ．
		"/public/%E2%80%A5/projects/new",                      // ‥ two dot leader
		"/public/%E2%80%A4./projects/new",                     // ․. one dot leader
		"/public/%EF%B9%92./projects/new",                     // ﹒. small full stop
		"/public/..%EF%BC%8F..%EF%BC%8Fx",                     // ／ full-width solidus
		"/public/..%EF%BC%BC..%EF%BC%BCx",                     // ＼ full-width reverse solidus
		"/public/..%EF%B9%A8..%EF%B9%A8x",                     // ﹨ small reverse solidus
		"/public/%25EF%25BC%258E%25EF%25BC%258E/projects/new", // ．． decoded twice
	} {
		ch, where, ok, err := tb.Match("GET", uri)
		if err == nil || permatrix.ErrorCode(err) != permatrix.EINVALID || ok || !strings.Contains(err.Error(), "NFKC") {
			t.Errorf("GET %s: %+v at %q (ok %v), err %v; want EINVALID naming NFKC", uri, ch, where, ok, err)
		}
	}
	// Other full-width and compatibility characters are characters like
	// any other (docs/forward-auth.md: write the routes for them).
	for uri, id := range map[string]string{
		"/projects/%EF%BD%81dmin/users":               "ａdmin",
		"/projects/a%E2%80%A5b/users":                 "a‥b",
		"/projects/%E2%80%A6/users":                   "…",
		"/projects/%EF%BC%9B/users":                   "；",
		"/projects/%C2%A5100/users":                   "¥100",
		"/projects/%EF%BC%8E%EF%BC%8E%EF%BC%8E/users": "．．．",
	} {
		ch, _, ok, err := tb.Match("GET", uri)
		if err != nil || !ok || ch.Resource == nil || ch.Resource.ID != id {
			t.Errorf("GET %s: %+v (ok %v, err %v), want project %q", uri, ch, ok, err, id)
		}
	}
}
