package http

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/permatrix/permatrix"
)

// hostGuard refuses requests whose Host names a server this is not: the
// defence against DNS rebinding. A web page the operator's browser opens
// can point a name of its own at 127.0.0.1 and then ask the sidecar as
// that name, from its own origin, which the browser lets it read: the
// open answers (checks with their reasons, a user's grants, /metrics).
// Such a request comes to a loopback address under a name that is not
// the machine's own. So a request that reached a loopback address must
// name the server by an IP address, by a name without a dot (localhost),
// a name under .localhost (RFC 6761) or one of the allowed names; with allowed
// names given, every TCP listener holds its requests to them. A unix
// socket is not reachable from a browser and is not checked, nor is a
// request without a Host (HTTP/1.0).
type hostGuard struct {
	allowed []string // lower case, no port, no trailing dot
	any     bool     // "*": no check
}

func newHostGuard(allowed []string) hostGuard {
	g := hostGuard{}
	for _, h := range allowed {
		if h == "*" {
			g.any = true
		}
		if h = hostName(h); h != "" {
			g.allowed = append(g.allowed, h)
		}
	}
	return g
}

func (g hostGuard) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if g.any || r.Host == "" || g.allows(r) {
			return next(c)
		}
		return permatrix.Errorf(permatrix.EINVALID,
			"Host %q is not a name of this server: a request to it on loopback names it localhost, by its IP address or by a name without a dot "+
				"(a page that points a name of its own at 127.0.0.1 would otherwise read the answers: DNS rebinding); "+
				"other names are allowed with --allowed-hosts (a proxy that passes its own Host on — Envoy's HTTP ext_authz, "+
				"Caddy's forward_auth, nginx with proxy_set_header Host — needs its name there)", r.Host)
	}
}

func (g hostGuard) allows(r *http.Request) bool {
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	tcp, ok := local.(*net.TCPAddr)
	if !ok {
		return true // a unix socket (or no address known)
	}
	if len(g.allowed) == 0 && !tcp.IP.IsLoopback() {
		return true
	}
	name := hostName(r.Host)
	switch {
	case name == "":
		return false // "[]", ":80": no name at all
	case !strings.Contains(name, "."):
		// A name without a dot ("localhost", a container's or a service's
		// short name, an IPv6 address) is resolved on the machine or its
		// own network (hosts file, search domains), not by a DNS server a
		// web page's owner runs.
		return true
	case strings.HasSuffix(name, ".localhost") || slices.Contains(g.allowed, name):
		return true
	}
	_, err := netip.ParseAddr(name)
	return err == nil
}

// hostName is a Host header's name: without its port and brackets, in
// lower case, without a trailing dot ("LocalHost.:8181" is "localhost").
func hostName(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return strings.TrimSuffix(strings.ToLower(host), ".")
}

// CheckAllowedHosts checks serve's --allowed-hosts: host names (a port or
// a trailing dot is ignored), or * for any.
func CheckAllowedHosts(hosts []string) error {
	for _, h := range hosts {
		name := hostName(h)
		if h == "*" {
			continue
		}
		if name == "" || strings.ContainsAny(h, "/?#@*\\ \t") {
			return fmt.Errorf("--allowed-hosts %q: want a host name (example.internal), an IP address, or * for any", h)
		}
	}
	return nil
}
