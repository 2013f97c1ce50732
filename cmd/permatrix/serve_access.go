package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/pflag"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/internal/identity"
	"github.com/permatrix/permatrix/internal/listen"
	"github.com/permatrix/permatrix/internal/routes"
)

// listenOptions are where serve listens.
type listenOptions struct {
	addr, grpcAddr, diagnosticAddr string
	tls                            listen.TLSFiles
	allowedHosts                   []string
	maxConnections                 int
	maxConnectionsPerClient        int
	maxRequestsInFlight            int
}

func (o *listenOptions) register(f *pflag.FlagSet) {
	f.StringVar(&o.addr, "addr", "127.0.0.1:8181", "address of the HTTP API: host:port, unix:///path for a unix socket (mode 0660), or systemd:NAME for a socket passed by systemd socket activation (LISTEN_FDS; systemd: alone, the only one passed)")
	f.StringVar(&o.grpcAddr, "grpc-addr", "", "serve Envoy's ext_authz gRPC API (envoy.service.auth.v3.Authorization) here too (default: off)")
	f.StringVar(&o.diagnosticAddr, "diagnostic-addr", "", "serve only /health, /health/live, /health/ready and /metrics here too, plain HTTP (default: off); an address as --addr takes")
	f.StringVar(&o.tls.CertFile, "tls-cert-file", "", "serve the HTTP and gRPC APIs over TLS with this PEM certificate (chain)")
	f.StringVar(&o.tls.KeyFile, "tls-key-file", "", "the PEM private key of --tls-cert-file")
	f.StringVar(&o.tls.ClientCAFile, "tls-client-ca-file", "", "require client certificates signed by these PEM CAs (mTLS)")
	f.IntVar(&o.maxConnections, "max-connections", listen.DefaultMaxConnections, "the most connections each listener (HTTP, gRPC, diagnostic) holds open at once; past it the one idle the longest is closed to make room, and with none idle a new one waits until one closes or goes idle")
	f.IntVar(&o.maxConnectionsPerClient, "max-connections-per-client", 0, "the most connections one client (an IPv4 address, an IPv6 /64; loopback and unix socket clients not counted) holds open on each listener at once; past it its own idle one is closed to make room, and with none idle the new one is closed at once (default: no bound)")
	f.IntVar(&o.maxRequestsInFlight, "max-requests-in-flight", http.DefaultMaxRequestsInFlight, "the most requests the HTTP API, and the gRPC listener, each serve at once, over all their connections and HTTP/2 streams; past it a request is answered 503 at once, with Retry-After, and an ext_authz check UNAVAILABLE (503) (the diagnostic listener's are not counted)")
	f.StringSliceVar(&o.allowedHosts, "allowed-hosts", nil, "host names requests may give in Host besides localhost and IP addresses; given, every TCP listener holds requests to them, else only requests to loopback are (DNS rebinding, docs/security.md); * allows any")
}

// accessOptions say who is calling (identity) and what a proxied request
// asks (routes).
type accessOptions struct {
	identity identity.Config
	routes   string
}

func (o *accessOptions) register(f *pflag.FlagSet) {
	f.StringVar(&o.identity.Mode, "identity", identity.DefaultMode, "who calls forward-auth and ext_authz: jwt (a bearer JWT permatrix verifies) or header=<name> (one header the gateway sets)")
	f.StringVar(&o.identity.GroupsHeader, "identity-groups-header", "", "with --identity header=…: a header with comma-separated group ids the gateway sets (default: none)")
	f.BoolVar(&o.identity.AllowSubjectHeader, "allow-subject-header", false, "with --identity header=…: let X-Permatrix-Subject name the subject (only if the gateway always sets or clears it); refused with --identity jwt")
	f.StringVar(&o.identity.JWT.JWKS, "jwt-jwks", "", "with --identity jwt: the key set, a JWKS file or https URL")
	f.StringVar(&o.identity.JWT.Issuer, "jwt-issuer", "", "with --identity jwt: the iss tokens must carry")
	f.StringVar(&o.identity.JWT.Audience, "jwt-audience", "", "with --identity jwt: a value the tokens' aud must hold")
	f.DurationVar(&o.identity.JWT.ClockSkew, "jwt-clock-skew", 30*time.Second, "with --identity jwt: how far exp, nbf and iat may be off")
	f.StringVar(&o.identity.JWT.SubjectClaim, "jwt-subject-claim", "sub", "with --identity jwt: the claim holding the user id (a dotted path reads nested claims)")
	f.StringVar(&o.identity.JWT.GroupsClaim, "jwt-groups-claim", "", "with --identity jwt: the claim holding group ids, a string or an array (default: none)")
	f.StringSliceVar(&o.identity.JWT.Algorithms, "jwt-algorithms", identity.DefaultAlgorithms, "with --identity jwt: accepted signature algorithms (HMAC only if named, and only with symmetric keys)")
	f.StringVar(&o.routes, "routes", "", "YAML file mapping the original method and path of forward-auth and ext_authz requests to checks (docs/forward-auth.md)")
}

// access is the built identity and routes.
type access struct {
	identity *identity.Identity
	routes   *routes.Table
}

// load loads the identity (fetching an https JWKS) and the routes file.
func (o accessOptions) load(ctx context.Context, log *slog.Logger) (*access, error) {
	id, err := identity.New(ctx, o.identity, log)
	if err != nil {
		return nil, err
	}
	a := &access{identity: id}
	if o.routes != "" {
		if a.routes, err = routes.Load(o.routes); err != nil {
			id.Close()
			return nil, fmt.Errorf("--routes: %w", err)
		}
	}
	return a, nil
}

// validate checks that the routes name systems, actions and resource types
// of catalog.
func (a *access) validate(catalog permatrix.Catalog, validate func(permatrix.Catalog, permatrix.Check) error) error {
	if a.routes == nil {
		return nil
	}
	if err := a.routes.Validate(func(ch permatrix.Check) error { return validate(catalog, ch) }); err != nil {
		return fmt.Errorf("--routes: %w", err)
	}
	return nil
}

func (a *access) close() { a.identity.Close() }
