// Package console is permatrix's web console: static files (HTML, CSS and
// JavaScript modules, embedded in the binary; no build step, no CDN) that
// the server serves at /ui. The console is a client of the JSON API like
// any other: the browser calls /v1/… with the admin token the person typed
// (kept in sessionStorage, sent only in the Authorization header), so it
// adds no way into the store that the API does not already guard.
//
// Every response under /ui carries a strict Content-Security-Policy (no
// inline script or style, no eval, Trusted Types required for DOM sinks,
// no framing, connections to this origin only) and headers against
// clickjacking and sniffing: see docs/console.md and docs/security.md.
package console

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/permatrix/permatrix"
)

//go:embed assets
var assets embed.FS

// Prefix is where the console is served.
const Prefix = "/ui"

// ContentSecurityPolicy is the policy of every /ui response. Scripts and
// styles come from this origin only (no inline code: the pages have none),
// the API is the only place the pages connect to, and DOM sinks that parse
// HTML (innerHTML, …) refuse strings: the pages build the DOM node by node
// and set text with textContent, so a stored id is never markup.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'; " +
	"require-trusted-types-for 'script'; trusted-types 'none'"

// headers are set on every /ui response, found or not.
var headers = map[string]string{
	"Content-Security-Policy":      ContentSecurityPolicy,
	"X-Frame-Options":              "DENY",
	"X-Content-Type-Options":       "nosniff",
	"Referrer-Policy":              "no-referrer",
	"Cross-Origin-Opener-Policy":   "same-origin",
	"Cross-Origin-Resource-Policy": "same-origin",
	"Permissions-Policy":           "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
	// The pages revalidate on every load (ETag), so a new binary's console
	// is never mixed with an old one's cached modules.
	"Cache-Control": "no-cache",
}

type asset struct {
	body        []byte
	contentType string
	etag        string
}

// Handler serves the console under Prefix: Prefix itself redirects to
// Prefix + "/", which is index.html; other paths are the embedded files.
// It answers GET and HEAD only.
func Handler() http.Handler {
	files := map[string]asset{}
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		ctype := mime.TypeByExtension(path.Ext(p))
		switch path.Ext(p) { // not left to the host's mime tables
		case ".js":
			ctype = "text/javascript; charset=utf-8"
		case ".css":
			ctype = "text/css; charset=utf-8"
		case ".html":
			ctype = "text/html; charset=utf-8"
		case ".svg":
			ctype = "image/svg+xml"
		}
		sum := sha256.Sum256(body)
		files[strings.TrimPrefix(p, "assets/")] = asset{body: body, contentType: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		panic(err) // the embedded tree is part of the binary
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range headers {
			w.Header().Set(k, v)
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "the console answers GET and HEAD only")
			return
		}
		if r.URL.Path == Prefix {
			http.Redirect(w, r, Prefix+"/", http.StatusMovedPermanently)
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, Prefix+"/")
		if !ok {
			writeError(w, http.StatusNotFound, permatrix.ENOTFOUND, "not a console path")
			return
		}
		if name == "" {
			name = "index.html"
		}
		a, ok := files[name]
		if !ok {
			writeError(w, http.StatusNotFound, permatrix.ENOTFOUND, "no such console file")
			return
		}
		w.Header().Set("ETag", a.etag)
		if noneMatch(r.Header.Values("If-None-Match"), a.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", a.contentType)
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(a.body)
		}
	})
}

// noneMatch reports whether an If-None-Match header names etag: weakly
// compared (a W/ prefix ignored: a proxy that compresses weakens the tag
// it passes on), in a list, or *, as RFC 9110 section 13.1.2 asks.
func noneMatch(headers []string, etag string) bool {
	for _, h := range headers {
		for tag := range strings.SplitSeq(h, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
				return true
			}
		}
	}
	return false
}

// writeError answers with the API's error envelope. The message never
// echoes the request: nothing the client sent is reflected.
func writeError(w http.ResponseWriter, status int, code, message string) {
	body, _ := json.Marshal(map[string]any{"error": map[string]string{"code": code, "message": message}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
