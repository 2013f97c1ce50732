// Package gateway turns a reverse proxy's question — may this request
// through? — into the check that decides it: who is calling
// (internal/identity) and what the original request asks (a routes file,
// internal/routes, or headers that name the check in static proxy
// configurations). Forward-auth over HTTP and Envoy's ext_authz over gRPC
// both ask it.
package gateway

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/identity"
	"github.com/permatrix/permatrix/internal/routes"
)

// Headers that name the check (nginx-style static configurations, used
// only without a routes file).
const (
	HeaderSystem       = "X-Permatrix-System"
	HeaderAction       = "X-Permatrix-Action"
	HeaderResourceType = "X-Permatrix-Resource-Type"
	HeaderResourceID   = "X-Permatrix-Resource-Id"
)

// HeaderMinRevision carries a consistency token where a body cannot (a
// proxied request: forward-auth, ext_authz), or beside one: decide at this
// store revision or later.
const HeaderMinRevision = "X-Permatrix-Min-Revision"

// MinRevision reads a consistency token from the values it was given as
// (the header's, and a min_revision query parameter's where there is one):
// at most one, a whole number; none is 0.
func MinRevision(values []string) (uint64, error) {
	switch len(values) {
	case 0:
		return 0, nil
	case 1:
	default:
		return 0, permatrix.Errorf(permatrix.EINVALID, "give the minimum revision once (%s header or min_revision)", HeaderMinRevision)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(values[0]), 10, 64)
	if err != nil {
		return 0, permatrix.Errorf(permatrix.EINVALID, "min_revision %q: want a store revision (a whole number)", values[0])
	}
	return n, nil
}

// Headers that carry the original request's method and URI.
const (
	HeaderOriginalURI     = "X-Original-URI"     // nginx: proxy_set_header X-Original-URI $request_uri
	HeaderOriginalMethod  = "X-Original-Method"  // nginx: proxy_set_header X-Original-Method $request_method
	HeaderForwardedURI    = "X-Forwarded-Uri"    // Traefik forwardAuth
	HeaderForwardedMethod = "X-Forwarded-Method" // Traefik forwardAuth
)

// Request is the original request a proxy asks about.
type Request struct {
	Method string      // its method
	URI    string      // its path and query as the client sent them; "" if the proxy did not say
	Header http.Header // the headers the proxy forwarded
	// Named is the check the proxy's own configuration named, if any
	// (X-Permatrix-* headers set by nginx; Envoy's per-route
	// context_extensions): used only when there is no routes file.
	Named *permatrix.Check
	// Unreadable says why the original request could not be read (an
	// EINVALID error: a header sent twice, sources that disagree). Check
	// reports it only after the identity, so that a caller without one
	// learns nothing of how its request is read.
	Unreadable error
}

// Gateway decides what a proxied request asks.
type Gateway struct {
	Identity *identity.Identity
	// Routes, when set, decide what is asked; the X-Permatrix-System/
	// -Action/-Resource-* headers are then ignored.
	Routes *routes.Table
}

// Check is the check that decides r. The identity is checked first: no or
// an invalid identity is EUNAUTHORIZED, whatever is asked. A request no
// route matches is EFORBIDDEN; an original URI or method that cannot be
// read is EINVALID.
func (g *Gateway) Check(ctx context.Context, r Request) (permatrix.Check, error) {
	caller, err := g.Identity.Caller(ctx, r.Header)
	if err != nil {
		return permatrix.Check{}, err
	}
	if r.Unreadable != nil {
		return permatrix.Check{}, r.Unreadable
	}
	var ch permatrix.Check
	if g.Routes != nil {
		if r.URI == "" {
			return ch, permatrix.Errorf(permatrix.EINVALID, "the original request's URI is unknown: the proxy must send %s (nginx), %s (Traefik) or append the path to /v1/forward-auth (Envoy)", HeaderOriginalURI, HeaderForwardedURI)
		}
		if r.Method == "" {
			// net/http reads "" as GET: a request whose method is not
			// known would take the GET route.
			return ch, permatrix.Errorf(permatrix.EINVALID, "the original request's method is unknown: the proxy must send it in %s (nginx: $request_method; its auth_request sub-request is a GET whatever the original method) or %s (Traefik), or Envoy in attributes.request.http.method", HeaderOriginalMethod, HeaderForwardedMethod)
		}
		if err := methodOverride(r); err != nil {
			return ch, err
		}
		if err := pathOverride(r); err != nil {
			return ch, err
		}
		var ok bool
		ch, _, ok, err = g.Routes.Match(r.Method, r.URI)
		if err != nil {
			return ch, err
		}
		if !ok {
			return ch, permatrix.Errorf(permatrix.EFORBIDDEN, "no route matches %s %s", r.Method, pathOf(r.URI))
		}
	} else {
		if r.Named == nil {
			return ch, permatrix.Errorf(permatrix.EFORBIDDEN, "no route matched: there is no routes file and the proxy named no check (%s and %s, or Envoy context_extensions system and action)", HeaderSystem, HeaderAction)
		}
		ch = *r.Named
	}
	ch.Subject = caller.Subject
	for _, g := range caller.Groups {
		if !slices.Contains(ch.Groups, g) {
			ch.Groups = append(ch.Groups, g)
		}
	}
	return ch, nil
}

// methodOverrideHeaders are the headers with which web frameworks let a
// request stand for another method (Express's method-override, Symfony and
// Laravel with method overriding on, ASP.NET's X-HTTP-Method).
var methodOverrideHeaders = []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

// methodOverride refuses an original request that names a method other
// than its own in a method-override header or a _method query parameter
// (method-override's query getter, Spring's HiddenHttpMethodFilter): the
// route is chosen by the method, and a backend that honours the override
// would do what the route of the other method decides — a POST routed to
// "edit" carrying X-HTTP-Method-Override: DELETE. An empty value is no
// override (as in those frameworks); the same method in any case is fine.
func methodOverride(r Request) error {
	refuse := func(where, v string) error {
		if len(v) > 32 {
			v = v[:32] + "…"
		}
		return permatrix.Errorf(permatrix.EINVALID, "the original request is a %s but %s names method %q: a backend that honours it would do what no route decided; send the method itself", r.Method, where, v)
	}
	for _, name := range methodOverrideHeaders {
		for _, v := range r.Header.Values(name) {
			if v = strings.TrimSpace(v); v != "" && !strings.EqualFold(v, r.Method) {
				return refuse(name, v)
			}
		}
	}
	if _, q, ok := strings.Cut(r.URI, "?"); ok {
		vals, _ := url.ParseQuery(q) // the pairs it can read; a malformed pair is no parameter
		for _, v := range vals["_method"] {
			if v = strings.TrimSpace(v); v != "" && !strings.EqualFold(v, r.Method) {
				return refuse("the _method parameter", v)
			}
		}
	}
	return nil
}

// pathOverrideHeaders name the path a backend serves in place of the
// request's own: IIS's URL Rewrite sets them, and applications read them
// as the path (Symfony before 3.4.14, Zend Framework before ZF2018-01,
// ASP.NET code reading HTTP_X_ORIGINAL_URL).
var pathOverrideHeaders = []string{"X-Original-Url", "X-Rewrite-Url"}

// pathOverride refuses an original request that names a path other than
// its own in a path-override header, as methodOverride refuses another
// method: the route is chosen by the path, and a backend that honours the
// header would serve a path no route decided. An empty value is no
// override, nor is the same path with another query.
func pathOverride(r Request) error {
	own, _, _ := strings.Cut(r.URI, "?")
	for _, name := range pathOverrideHeaders {
		for _, v := range r.Header.Values(name) {
			if p, _, _ := strings.Cut(strings.TrimSpace(v), "?"); p != "" && p != own {
				return permatrix.Errorf(permatrix.EINVALID, "the original request is for %s but %s names path %q: a backend that honours it would serve what no route decided", pathOf(r.URI), name, pathOf(p))
			}
		}
	}
	return nil
}

// Named is the check that system, action, resource type and id name, or
// nil when neither system nor action is given.
func Named(system, action, resourceType, resourceID string) *permatrix.Check {
	if system == "" && action == "" {
		return nil
	}
	ch := &permatrix.Check{System: system, Action: action}
	// An id without its type is kept, so that validation refuses it
	// (resource.type is required) rather than deciding at service scope.
	if resourceType != "" || resourceID != "" {
		ch.Resource = &permatrix.Scope{Type: resourceType, ID: resourceID}
	}
	return ch
}

// fromHeaders is the check the proxy configuration named in headers.
func fromHeaders(h http.Header) (*permatrix.Check, error) {
	var vals [4]string
	for i, name := range []string{HeaderSystem, HeaderAction, HeaderResourceType, HeaderResourceID} {
		v, err := single(h, name)
		if err != nil {
			return nil, err
		}
		vals[i] = v
	}
	return Named(vals[0], vals[1], vals[2], vals[3]), nil
}

// FromHTTP reads the original request out of a forward-auth request to
// base (e.g. /v1/forward-auth). Proxies say what it was in one of three
// ways: Envoy's HTTP ext_authz appends its path to base and keeps its
// method; nginx sends X-Original-URI/-Method (as configured); Traefik
// sends X-Forwarded-Uri/-Method. Where more than one is present they must
// agree: a client that adds the other proxy's header cannot pick the route.
// What cannot be read is Request.Unreadable.
func FromHTTP(r *http.Request, base string) Request {
	req := Request{Method: r.Method, Header: r.Header}
	if err := req.read(r, base); err != nil {
		return Request{Method: r.Method, Header: r.Header, Unreadable: err}
	}
	return req
}

func (req *Request) read(r *http.Request, base string) error {
	named, err := fromHeaders(r.Header)
	if err != nil {
		return err
	}
	req.Named = named
	type source struct{ name, method, uri string }
	var srcs []source
	own := false // the path after base is a source: its method is the request's own
	if rest, ok := strings.CutPrefix(routes.SentPath(r.URL), base); ok && strings.HasPrefix(rest, "/") {
		own = true
		uri := rest
		if r.URL.RawQuery != "" {
			uri += "?" + r.URL.RawQuery
		}
		srcs = append(srcs, source{"the path after " + base, r.Method, uri})
	}
	for _, hs := range [][2]string{{HeaderOriginalURI, HeaderOriginalMethod}, {HeaderForwardedURI, HeaderForwardedMethod}} {
		uri, err := single(r.Header, hs[0])
		if err != nil {
			return err
		}
		method, err := single(r.Header, hs[1])
		if err != nil {
			return err
		}
		if uri == "" && method == "" {
			continue
		}
		// Without its method header, the forward-auth request's own method
		// where a proxy kept the original's. A GET says nothing: nginx's
		// auth_request sub-request is a GET whatever the original method
		// (so are Traefik's and Caddy's forward-auth requests), and a PUT
		// read as a GET would be decided by the GET route. Unknown, then
		// ("": refused where a route is chosen).
		if method == "" && r.Method != http.MethodGet && r.Method != http.MethodHead {
			method = r.Method
		}
		srcs = append(srcs, source{hs[0] + "/" + hs[1], method, uri})
	}
	if len(srcs) == 0 {
		return nil
	}
	// A source that does not know the method agrees with one that does.
	method := ""
	for _, s := range srcs {
		if method == "" {
			method = s.method
		}
	}
	says := func(s source) string {
		if s.method == "" {
			return pathOf(s.uri) + " (no method)"
		}
		return s.method + " " + pathOf(s.uri)
	}
	for _, s := range srcs[1:] {
		if s.uri != srcs[0].uri || s.method != "" && s.method != method {
			return permatrix.Errorf(permatrix.EINVALID, "the original request is ambiguous: %s says %s, %s says %s", srcs[0].name, says(srcs[0]), s.name, says(s))
		}
	}
	// A header source without its method takes none from another header:
	// with nginx's X-Original-URI alone (its own auth_request example,
	// which clears no header) the other one is the client's, whose
	// X-Forwarded-Method: GET would have its DELETE decided by the GET
	// route. Only the request's own method fills it in; else unknown.
	if !own {
		for _, s := range srcs {
			if s.method == "" {
				method = ""
			}
		}
	}
	req.Method, req.URI = method, srcs[0].uri
	return nil
}

// single is the one value of a header; sent twice it is refused.
func single(h http.Header, name string) (string, error) {
	vs := h.Values(name)
	if len(vs) > 1 {
		return "", permatrix.Errorf(permatrix.EINVALID, "%s is sent %d times", name, len(vs))
	}
	if len(vs) == 0 {
		return "", nil
	}
	return vs[0], nil
}

// pathOf is uri without its query, shortened, for messages.
func pathOf(uri string) string {
	p, _, _ := strings.Cut(uri, "?")
	if len(p) > 200 {
		p = p[:200] + "…"
	}
	return p
}
