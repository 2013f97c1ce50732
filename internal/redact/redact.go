// Package redact hides the secrets a URL may carry before permatrix shows
// it: in a log line, an error message, a printed configuration. A bundle's
// presigned URL carries its signature in the query, a store URL may carry a
// password in its userinfo, a token may ride in either; the operator needs
// to see which URL was meant, never what authenticates it.
package redact

import (
	"net/url"
	"strings"
)

// URL is s with the password of its userinfo shown as "xxxxx" and its
// query as "redacted". A string url.Parse refuses (a bad port, a bad
// escape: the string a typo makes) is redacted as text, read as url.Parse
// reads a URL: the authority runs from "//" to the next "/", "?" or "#",
// its userinfo (hidden whole) up to its last "@", the query from the next
// "?" to "#". A string without "//" is not a URL with an authority and is
// returned as it is.
func URL(s string) string {
	if u, err := url.Parse(s); err == nil && u.Scheme != "" && u.Host != "" {
		if u.RawQuery != "" || u.ForceQuery {
			u.RawQuery, u.ForceQuery = "redacted", false
		}
		return u.Redacted()
	}
	_, rest, ok := strings.Cut(s, "//")
	if !ok {
		return s
	}
	start := len(s) - len(rest)
	end := len(rest)
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		end = i
	}
	shown := rest
	if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
		shown = "xxxxx" + rest[at:]
		end -= at - len("xxxxx")
	}
	if q := strings.IndexByte(shown[end:], '?'); q >= 0 {
		q += end
		fragment := ""
		if f := strings.IndexByte(shown[q:], '#'); f >= 0 {
			fragment = shown[q+f:]
		}
		shown = shown[:q] + "?redacted" + fragment
	}
	return s[:start] + shown
}
