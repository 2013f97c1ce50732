// Package routes maps a proxied request — its method and path — to the
// check that decides it, from a YAML file the operator writes:
//
//	routes:
//	  - methods: [GET, HEAD]          # omitted: any method
//	    path: /projects/{id}/users     # Go ServeMux pattern syntax
//	    system: celonis-task-mining
//	    action: edit_users
//	    resource: {type: project, id: "{id}"}   # id: a capture or a constant
//	    context: {key: value}          # optional; "{name}" values are captures
//	    groups: [extra-group]          # optional
//
// Matching is Go's http.ServeMux: the most specific pattern wins, and two
// patterns that could match the same request with neither more specific
// are refused when the file is loaded, as is any malformed entry.
package routes

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
	"golang.org/x/text/unicode/norm"

	"github.com/permatrix/permatrix"
)

// MaxFileBytes bounds a routes file.
const MaxFileBytes = 1 << 20

// Table is a loaded routes file.
type Table struct {
	file   string
	mux    *http.ServeMux
	routes []*route
}

// route is one entry of the file.
type route struct {
	where    string // file:line
	methods  []string
	path     string
	system   string
	action   string
	resource *resourceSpec
	context  map[string]any
	groups   []string
	captures []string // the path's wildcard names
}

type resourceSpec struct {
	Type string `yaml:"type"`
	ID   string `yaml:"id"`
}

// spec is an entry as written in YAML.
type spec struct {
	Methods  []string       `yaml:"methods"`
	Path     string         `yaml:"path"`
	System   string         `yaml:"system"`
	Action   string         `yaml:"action"`
	Resource *resourceSpec  `yaml:"resource"`
	Context  map[string]any `yaml:"context"`
	Groups   []string       `yaml:"groups"`
}

type fileSpec struct {
	Routes []spec `yaml:"routes"`
}

// Load reads and parses a routes file.
func Load(path string) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, MaxFileBytes+1)); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if buf.Len() > MaxFileBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, MaxFileBytes)
	}
	return Parse(path, buf.Bytes())
}

var (
	methodToken = regexp.MustCompile(`^[A-Z][A-Z0-9_-]*$`)
	// wildcard is a ServeMux wildcard: {name}, {name...} or {$}.
	wildcard = regexp.MustCompile(`\{([^{}]*)\}`)
	// captureRef is a value that names a capture: exactly "{name}".
	captureRef = regexp.MustCompile(`^\{([A-Za-z_][A-Za-z0-9_]*)\}$`)
)

// Parse parses a routes file's content; name is used in error messages.
// Every error names the file and, where YAML gives it, the line.
func Parse(name string, data []byte) (*Table, error) {
	var fs fileSpec
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&fs); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty: want a routes: list", name)
		}
		return nil, fmt.Errorf("%s: %s", name, yamlError(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: more than one YAML document", name)
	}
	if len(fs.Routes) == 0 {
		return nil, fmt.Errorf("%s: no routes: want a routes: list of {methods, path, system, action, resource}", name)
	}
	lines := routeLines(data)
	t := &Table{file: name, mux: http.NewServeMux()}
	registered := map[string]string{} // ServeMux pattern → file:line
	for i, s := range fs.Routes {
		where := name
		if i < len(lines) {
			where = fmt.Sprintf("%s:%d", name, lines[i])
		}
		r, err := newRoute(where, s)
		if err != nil {
			return nil, err
		}
		for _, p := range r.patterns() {
			if err := register(t.mux, p, r, registered); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			registered[p] = where
		}
		t.routes = append(t.routes, r)
	}
	return t, nil
}

// routeLines are the line numbers of the routes: list's items.
func routeLines(data []byte) []int {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return nil
	}
	top := doc.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value == "routes" {
			var lines []int
			for _, item := range top.Content[i+1].Content {
				lines = append(lines, item.Line)
			}
			return lines
		}
	}
	return nil
}

func yamlError(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: ")
	return strings.ReplaceAll(msg, "unmarshal errors:\n  ", "")
}

func newRoute(where string, s spec) (*route, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...))
	}
	r := &route{where: where, path: s.Path, system: s.System, action: s.Action, resource: s.Resource, groups: s.Groups}
	switch {
	case s.Path == "":
		return nil, bad("path is required")
	case !strings.HasPrefix(s.Path, "/"):
		return nil, bad("path %q must start with / (host patterns are not supported)", s.Path)
	case s.System == "":
		return nil, bad("system is required")
	case s.Action == "":
		return nil, bad("action is required")
	}
	for _, m := range wildcard.FindAllStringSubmatch(s.Path, -1) {
		if n := strings.TrimSuffix(m[1], "..."); n != "$" {
			r.captures = append(r.captures, n)
		}
	}
	for _, m := range s.Methods {
		if !methodToken.MatchString(m) {
			return nil, bad("method %q: want an upper-case HTTP method such as GET", m)
		}
		if slices.Contains(r.methods, m) {
			return nil, bad("method %s is listed twice", m)
		}
		r.methods = append(r.methods, m)
	}
	if s.Methods != nil && len(s.Methods) == 0 {
		return nil, bad("methods is empty: omit it to match any method")
	}
	if res := s.Resource; res != nil {
		if res.Type == "" {
			return nil, bad("resource.type is required")
		}
		if res.Type != "service" && res.ID == "" {
			return nil, bad("resource.id is required for type %q: a constant or a capture such as \"{id}\"", res.Type)
		}
		if err := r.checkRef("resource.id", res.ID); err != nil {
			return nil, bad("%v", err)
		}
	}
	for _, g := range s.Groups {
		if !permatrix.ValidID(g) {
			return nil, bad("group %q is not a valid id", g)
		}
	}
	if s.Context != nil {
		// JSON is what checks carry: a context YAML cannot say in JSON
		// (non-string keys) is refused here, not at the first request.
		raw, err := json.Marshal(s.Context)
		if err != nil {
			return nil, bad("context is not a JSON object: %v", err)
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&r.context); err != nil {
			return nil, bad("context: %v", err)
		}
		for k, v := range r.context {
			if sv, ok := v.(string); ok {
				if err := r.checkRef("context."+k, sv); err != nil {
					return nil, bad("%v", err)
				}
			}
		}
	}
	return r, nil
}

// checkRef checks that a "{name}" value names a capture of the path.
func (r *route) checkRef(field, v string) error {
	m := captureRef.FindStringSubmatch(v)
	if m == nil {
		if strings.ContainsAny(v, "{}") {
			return fmt.Errorf("%s %q: a capture is written \"{name}\" alone", field, v)
		}
		return nil
	}
	if !slices.Contains(r.captures, m[1]) {
		return fmt.Errorf("%s %q: path %s has no capture {%s}", field, v, r.path, m[1])
	}
	return nil
}

// patterns are the route's ServeMux patterns, one per method.
func (r *route) patterns() []string {
	if len(r.methods) == 0 {
		return []string{r.path}
	}
	ps := make([]string, len(r.methods))
	for i, m := range r.methods {
		ps[i] = m + " " + r.path
	}
	return ps
}

// matchKey carries the matched route out of ServeMux.
type matchKey struct{}

type matchResult struct {
	route  *route
	values map[string]string
}

// register adds pattern to mux; ServeMux panics on a malformed or
// conflicting pattern, which becomes an error naming the other route.
func register(mux *http.ServeMux, pattern string, r *route, registered map[string]string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			msg := fmt.Sprint(p)
			for other, where := range registered {
				if strings.Contains(msg, fmt.Sprintf("%q", other)) {
					err = fmt.Errorf("pattern %q is ambiguous with %q of %s: both match some requests and neither is more specific", pattern, other, where)
					return
				}
			}
			err = fmt.Errorf("path %q: %s", r.path, strings.TrimPrefix(msg, "http: "))
		}
	}()
	if where, dup := registered[pattern]; dup {
		return fmt.Errorf("%q is already routed by %s", pattern, where)
	}
	mux.HandleFunc(pattern, func(_ http.ResponseWriter, req *http.Request) {
		res := req.Context().Value(matchKey{}).(*matchResult)
		res.route = r
		res.values = map[string]string{}
		for _, n := range r.captures {
			res.values[n] = req.PathValue(n)
		}
	})
	return nil
}

// Len is the number of routes.
func (t *Table) Len() int { return len(t.routes) }

// File is the routes file's name.
func (t *Table) File() string { return t.file }

// Match finds the route of method and uri (origin form, "/path?query")
// and returns its check, without a subject. ok is false when no route
// matches. A URI that is not a clean absolute path (dot segments, empty
// segments, encoded slashes or backslashes, control characters, bytes
// that are not UTF-8, any of these decoded twice) is an
// EINVALID error, and so is a path parameter (";", encoded or not) or a
// fragment ("#"): what a backend makes of such a path may differ from
// what was matched. So is a method not in upper case.
func (t *Table) Match(method, uri string) (ch permatrix.Check, where string, ok bool, err error) {
	u, err := CleanURI(uri)
	if err != nil {
		return ch, "", false, err
	}
	// Routes name methods in upper case (methodToken), so "delete" would
	// miss the DELETE route and take one that lists no method (a
	// catch-all), while Django, Werkzeug and others read it as DELETE.
	if strings.ContainsFunc(method, func(r rune) bool { return 'a' <= r && r <= 'z' }) {
		return ch, "", false, permatrix.Errorf(permatrix.EINVALID, "original method %q is not in upper case: routes name methods in upper case, and a backend may read it as %q", truncate(method), truncate(strings.ToUpper(method)))
	}
	req, err := http.NewRequest(method, "http://route.invalid/", nil)
	if err != nil {
		return ch, "", false, permatrix.Errorf(permatrix.EINVALID, "original method %q is not an HTTP method", method)
	}
	req.URL = u
	req.RequestURI = u.RequestURI()
	res := &matchResult{}
	req = req.WithContext(context.WithValue(req.Context(), matchKey{}, res))
	t.mux.ServeHTTP(discard{}, req)
	if res.route == nil {
		return ch, "", false, nil
	}
	return res.route.check(res.values), res.route.where, true, nil
}

// check is the route's check with captures filled in.
func (r *route) check(values map[string]string) permatrix.Check {
	fill := func(v string) string {
		if m := captureRef.FindStringSubmatch(v); m != nil {
			return values[m[1]]
		}
		return v
	}
	ch := permatrix.Check{System: r.system, Action: r.action, Groups: slices.Clone(r.groups)}
	if r.resource != nil {
		ch.Resource = &permatrix.Scope{Type: r.resource.Type, ID: fill(r.resource.ID)}
	}
	if r.context != nil {
		ch.Context = maps.Clone(r.context)
		for k, v := range ch.Context {
			if s, ok := v.(string); ok {
				ch.Context[k] = fill(s)
			}
		}
	}
	return ch
}

// Validate runs validate (e.g. pdp.ValidateCheck against the catalog) on
// each route's check, with "x" for every capture, so that a route naming
// an unknown system, action or resource type stops startup with its line.
func (t *Table) Validate(validate func(permatrix.Check) error) error {
	for _, r := range t.routes {
		values := map[string]string{}
		for _, n := range r.captures {
			values[n] = "x"
		}
		ch := r.check(values)
		ch.Subject = "routes-file-check"
		if err := validate(ch); err != nil {
			return fmt.Errorf("%s: %s", r.where, permatrix.ErrorMessage(err))
		}
	}
	return nil
}

// CleanURI parses an original request URI and refuses paths that a
// backend could read differently from the matcher.
func CleanURI(uri string) (*url.URL, error) {
	bad := func(why string) error {
		return permatrix.Errorf(permatrix.EINVALID, "original URI %q: %s", truncate(uri), why)
	}
	if uri == "" {
		return nil, bad("empty")
	}
	if len(uri) > 8192 {
		return nil, bad("longer than 8192 bytes")
	}
	if strings.Contains(uri, "#") {
		// Not part of a request target (RFC 9112 section 3.2), and servers
		// disagree on it: nginx routes and proxies its $uri up to the "#",
		// while $request_uri (nginx's X-Original-URI) carries all of it.
		return nil, bad("a fragment (#) is no part of a request target: a server may cut the path there")
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		if _, escape := errors.AsType[url.EscapeError](err); escape {
			return nil, bad(badEscape)
		}
		return nil, bad("not a request URI")
	}
	sent := SentPath(u)
	if u.Opaque != "" || !strings.HasPrefix(sent, "/") {
		return nil, bad("not an absolute path")
	}
	segs := strings.Split(sent[1:], "/")
	for i, raw := range segs {
		seg, err := url.PathUnescape(raw)
		if err != nil {
			return nil, bad(badEscape)
		}
		if seg == "" && i < len(segs)-1 {
			return nil, bad("empty path segment (//)")
		}
		if why := segmentProblem(seg); why != "" {
			return nil, bad(why)
		}
		if !utf8.ValidString(seg) {
			// Servers that decode overlong forms read "%c0%ae" as "."
			// and "%c0%af" as "/" (Tomcat before 6.0.18, IIS 5); others
			// read such bytes their own way (U+FFFD, Latin-1).
			return nil, bad("a segment is not UTF-8 once decoded: a backend may read its bytes as other characters (an overlong %c0%ae as .)")
		}
		// A backend that decodes twice (IIS's double decoding, an
		// application unescaping what its server already unescaped, a
		// proxy decoding before one that decodes again) reads
		// "%252e%252e" as "..": what a segment holds once decoded again,
		// as leniently as such decoders do, is held to the same rules,
		// and a "#" or "?" there would end its path.
		again := seg
		for n := 2; strings.Contains(again, "%"); n++ {
			next := unescapeLenient(again)
			if next == again {
				break
			}
			if n > maxDecodings {
				return nil, bad(fmt.Sprintf("a segment still holds escapes once decoded twice and more (%d times): a backend that decodes again reads another path", maxDecodings))
			}
			why := segmentProblem(next)
			if why == "" && strings.ContainsAny(next, "#?") {
				why = "# or ? (the path ends there)"
			}
			if why == "" && !utf8.ValidString(next) {
				// IIS 5 decoded twice and read overlong forms:
				// "%25c0%25ae" was a ".".
				why = "not UTF-8 (an overlong %c0%ae is a . to some)"
			}
			if why != "" {
				return nil, bad("decoded twice, as a backend that decodes twice reads it: " + why)
			}
			again = next
		}
	}
	// Only the path is matched: scheme and host of an absolute-form URI
	// and the query are not part of a route.
	return &url.URL{Path: u.Path, RawPath: u.RawPath}, nil
}

// badEscape says why a "%" not followed by two hex digits is refused, and
// what to send: backends read it differently (a literal "%", IIS's %uXXXX).
const badEscape = "bad percent-encoding: a % must start an escape of two hex digits (send a percent sign as %25, other characters as UTF-8 %XX escapes)"

// SentPath is u's path as it was sent, escapes and all. u.EscapedPath is
// that only where Go takes the escaping for its own: a path holding a "{",
// "|", "^", '"' or "`" is escaped anew from its decoded form, where an
// encoded slash is a slash ("/a%2Fb{" became "/a/b%7B", two segments).
func SentPath(u *url.URL) string {
	if u.RawPath != "" {
		return u.RawPath
	}
	return u.EscapedPath()
}

// maxDecodings bounds how many times a segment is decoded to look for what
// a backend decoding it again would read: each decoding of a long enough
// segment can leave another escape ("%2525…").
const maxDecodings = 4

// segmentProblem says what in a decoded segment a backend could read
// differently from the matcher, or "".
func segmentProblem(seg string) string {
	dot, _, _ := strings.Cut(seg, ";")
	switch {
	case dot == "." || dot == "..":
		return "dot segment"
	case strings.ContainsAny(seg, `/\`):
		return "encoded slash or backslash in a segment"
	case strings.Contains(seg, ";"):
		return "path parameter (;) in a segment: Tomcat, Jetty and Spring match the path without it"
	case strings.ContainsFunc(seg, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "control character"
	}
	// Full-width and other compatibility forms of ".", "/" and "" are
	// those characters to a backend that normalises (NFKC) or converts the
	// path to a Windows code page (best-fit mapping: "．" is "."). Other
	// such characters stay characters of a segment (docs/forward-auth.md).
	if seg == "" || isASCII(seg) {
		return ""
	}
	if n := norm.NFKC.String(seg); n != seg {
		dot, _, _ := strings.Cut(n, ";")
		if dot == "." || dot == ".." || strings.ContainsAny(n, `/\`) {
			return "a full-width or other compatibility form of . / or \\, which Unicode normalisation (NFKC) or Windows' best-fit conversion reads as that character"
		}
	}
	return ""
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// unescapeLenient decodes each valid %XX escape of s and keeps anything
// else as it is, as the decoders of PHP, .NET and most frameworks do (Go's
// refuses the whole string for one bad escape). It decodes IIS's %uXXXX
// too, as .NET's HttpUtility.UrlDecode does: "%u002e" is a ".".
func unescapeLenient(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+5 < len(s) && (s[i+1] == 'u' || s[i+1] == 'U') && isHex(s[i+2]) && isHex(s[i+3]) && isHex(s[i+4]) && isHex(s[i+5]) {
			// A UTF-16 code unit; a surrogate half is no character of
			// its own, U+FFFD here.
			b.WriteRune(rune(unhex(s[i+2]))<<12 | rune(unhex(s[i+3]))<<8 | rune(unhex(s[i+4]))<<4 | rune(unhex(s[i+5])))
			i += 5
			continue
		}
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// discard is a ResponseWriter for ServeMux's own answers (404, 405,
// redirects), which all mean "no route".
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}
