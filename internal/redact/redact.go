// Package redact hides the secrets a URL may carry before permatrix shows
// it: in a log line, an error message, a printed configuration. A bundle's
// presigned URL carries its signature in the query, a store URL may carry a
// password in its userinfo, a token may ride in either; the operator needs
// to see which URL was meant, never what authenticates it.
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// URL is s with its userinfo (user name and password) shown as "xxxxx" and its
// query as "redacted". A string url.Parse refuses (a bad port, a bad
// escape: the string a typo makes) is redacted as text, read as url.Parse
// reads a URL: the authority runs from "//" to the next "/", "?" or "#",
// its userinfo (hidden whole) up to its last "@", the query from the next
// "?" to "#". A string without "//" is not a URL with an authority and is
// returned as it is.
//
// An "@" after the authority so read may end a userinfo whose password
// holds "/", "?" or "#" typed unescaped (a generated password): read as a
// URL, the authority ends inside the password, and the rest of it is a
// path, a query or a fragment — or the URL even parses, the password's
// first part its port. Such a string is redacted as text, its userinfo
// taken to run to the last "@"; and if a "?" comes before that "@", what
// follows it may be the query (an "@" in a query's value), so all that
// follows "//" is hidden. Hiding too much there is the price of never
// showing a secret.
func URL(s string) string {
	_, rest, ok := strings.Cut(s, "//")
	if !ok {
		return s
	}
	start := len(s) - len(rest)
	end := len(rest)
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		end = i
	}
	at := strings.LastIndex(rest, "@")
	if at < end {
		if u, err := url.Parse(s); err == nil && u.Scheme != "" && u.Host != "" {
			if u.RawQuery != "" || u.ForceQuery {
				u.RawQuery, u.ForceQuery = "redacted", false
			}
			if u.User != nil {
				// The whole userinfo: a token often rides as the user
				// name alone (https://TOKEN@host/…).
				u.User = url.User("xxxxx")
			}
			return u.String()
		}
	}
	shown := rest
	if at >= 0 {
		if strings.Contains(rest[:at], "?") {
			return s[:start] + "xxxxx"
		}
		shown = "xxxxx" + rest[at:]
		end = len("xxxxx")
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

// urlInText is a URL in a text: net/http's errors quote it
// (`Post "https://…": …`), a log line may hold several.
var urlInText = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s"]+`)

// Text is s with every URL in it redacted (URL); a string that is one URL
// is redacted as URL redacts it.
func Text(s string) string {
	return urlInText.ReplaceAllStringFunc(s, URL)
}

// Value is v with every string in it redacted (Text), at any depth of its
// maps and lists: a log attribute or a configuration section may nest a
// URL. Maps and slices are copied, never changed: their owner may hold
// them.
func Value(v any) any {
	switch v := v.(type) {
	case string:
		return Text(v)
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = Value(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = Value(e)
		}
		return out
	case []string:
		out := make([]string, len(v))
		for i, e := range v {
			out[i] = Text(e)
		}
		return out
	}
	return v
}
