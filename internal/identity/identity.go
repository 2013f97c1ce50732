// Package identity says who is calling: the user that an identity gateway
// authenticated. Either permatrix verifies a bearer JWT itself (mode "jwt")
// or it trusts exactly one header that the gateway sets (mode
// "header=<name>"). Forward-auth, Envoy's ext_authz and, with JWTs, the
// administration API all ask this package; nothing else reads identity
// headers.
package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/permatrix/permatrix"
)

// Caller is who is calling: a user id and the groups the identity provider
// asserted (on top of the stored memberships).
type Caller struct {
	Subject string
	Groups  []string
}

// DefaultMode is the identity without flags: the user id in
// X-Forwarded-User, which the documented proxy configurations set from the
// user the proxy authenticated (and which oauth2-proxy sets).
const DefaultMode = "header=X-Forwarded-User"

// SubjectHeader is the legacy override of the subject, honoured only with
// Config.AllowSubjectHeader.
const SubjectHeader = "X-Permatrix-Subject"

// ErrJWTWithSubjectHeader refuses Config.AllowSubjectHeader in mode jwt:
// the header, which any client sends unless a gateway clears it, would
// replace the subject of the token just verified — a forgeable identity on
// top of a verified one. No gateway needs both.
var ErrJWTWithSubjectHeader = errors.New("--allow-subject-header (identity.allow_subject_header) is refused with --identity jwt (identity.mode): the caller is the verified token's subject, and " +
	SubjectHeader + ", a header any client can send, would replace it; leave --allow-subject-header off")

// MaxGroups bounds the groups one caller may assert (a header or a claim).
const MaxGroups = permatrix.MaxAssertedGroups

// Config configures an Identity (serve's --identity flags).
type Config struct {
	// Mode is "jwt" or "header=<name>"; "" is DefaultMode.
	Mode string
	// GroupsHeader (header mode only) names a header with comma-separated
	// group ids that the gateway sets; "" takes no groups from headers.
	GroupsHeader string
	// AllowSubjectHeader lets X-Permatrix-Subject, when sent, name the
	// subject instead of the configured header. Only for gateways that
	// always set or clear it; refused in mode jwt.
	AllowSubjectHeader bool
	// JWT configures mode "jwt".
	JWT JWTConfig
}

// Identity authenticates callers.
type Identity struct {
	header        string // header mode: the trusted header
	groupsHeader  string
	subjectHeader bool
	jwt           *JWT // jwt mode
}

// New builds the identity that cfg describes. In jwt mode it reads or
// fetches the key set now, so that a wrong --jwt-jwks stops serve at once;
// Close stops the key set's background refresh.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Identity, error) {
	if cfg.Mode == "" {
		cfg.Mode = DefaultMode
	}
	id := &Identity{subjectHeader: cfg.AllowSubjectHeader}
	switch name, isHeader := strings.CutPrefix(cfg.Mode, "header="); {
	case cfg.Mode == "jwt":
		if cfg.AllowSubjectHeader {
			return nil, ErrJWTWithSubjectHeader
		}
		if cfg.GroupsHeader != "" {
			return nil, errors.New("--identity-groups-header is for --identity header=<name>; with jwt, groups come from --jwt-groups-claim")
		}
		j, err := NewJWT(ctx, cfg.JWT, log)
		if err != nil {
			return nil, err
		}
		id.jwt = j
	case isHeader:
		// JWT settings with a header identity would be silently unused:
		// no token verified, the header trusted. Refused instead.
		if j := cfg.JWT; j.JWKS != "" || j.Issuer != "" || j.Audience != "" || j.GroupsClaim != "" {
			return nil, fmt.Errorf("--jwt-jwks, --jwt-issuer, --jwt-audience and --jwt-groups-claim are for --identity jwt; with --identity %s the gateway's header names the caller and no token is verified (give --identity jwt)", cfg.Mode)
		}
		if !validHeaderName(name) {
			return nil, fmt.Errorf("--identity %q: want header=<header name>, e.g. header=X-Forwarded-User", cfg.Mode)
		}
		if strings.EqualFold(name, "Authorization") {
			return nil, errors.New("--identity header=Authorization: a bearer token is verified with --identity jwt, never trusted as a user id")
		}
		if credentialHeader(name) {
			return nil, fmt.Errorf("--identity %s: a credential is never a user id (it would be logged as one, in decision logs and reasons)", cfg.Mode)
		}
		if cfg.GroupsHeader != "" && !validHeaderName(cfg.GroupsHeader) {
			return nil, fmt.Errorf("--identity-groups-header %q is not a header name", cfg.GroupsHeader)
		}
		if credentialHeader(cfg.GroupsHeader) {
			return nil, fmt.Errorf("--identity-groups-header %s: a credential is never a group id (it would be logged as one, in decision logs and reasons)", cfg.GroupsHeader)
		}
		id.header, id.groupsHeader = http.CanonicalHeaderKey(name), cfg.GroupsHeader
	default:
		return nil, fmt.Errorf("--identity %q: want jwt or header=<header name>", cfg.Mode)
	}
	return id, nil
}

// Default is DefaultMode, for servers built without flags (tests, embedding).
func Default() *Identity {
	return &Identity{header: http.CanonicalHeaderKey(strings.TrimPrefix(DefaultMode, "header="))}
}

// Close stops background work (the JWKS refresh).
func (id *Identity) Close() {
	if id.jwt != nil {
		id.jwt.Close()
	}
}

// String describes the identity for logs: "jwt" or "header=<name>".
func (id *Identity) String() string {
	s := "header=" + id.header
	if id.jwt != nil {
		s = "jwt"
	}
	if id.subjectHeader {
		s += " (X-Permatrix-Subject allowed)"
	}
	return s
}

// VerifiesTokens reports whether callers prove who they are with a bearer
// JWT (mode jwt): only then may a user call the administration API.
func (id *Identity) VerifiesTokens() bool { return id.jwt != nil }

// Challenge is the WWW-Authenticate value of a 401 ("" in header mode, where
// the gateway, not the client, supplies the identity).
func (id *Identity) Challenge() string {
	if id.jwt != nil {
		return `Bearer realm="permatrix"`
	}
	return ""
}

// Caller says who sent a proxied request, from the request's headers. An
// absent or invalid identity is an EUNAUTHORIZED error that says why.
func (id *Identity) Caller(ctx context.Context, h http.Header) (Caller, error) {
	if id.subjectHeader {
		if v, ok, err := single(h, SubjectHeader); err != nil {
			return Caller{}, err
		} else if ok {
			return userCaller(SubjectHeader, v)
		}
	}
	if id.jwt != nil {
		token, err := BearerToken(h)
		if err != nil {
			return Caller{}, err
		}
		return id.jwt.Verify(ctx, token)
	}
	v, ok, err := single(h, id.header)
	if err != nil {
		return Caller{}, err
	}
	if !ok {
		return Caller{}, permatrix.Errorf(permatrix.EUNAUTHORIZED, "no identity: the gateway must set %s", id.header)
	}
	c, err := userCaller(id.header, v)
	if err != nil || id.groupsHeader == "" {
		return c, err
	}
	g, ok, err := single(h, id.groupsHeader)
	if err != nil || !ok {
		return c, err
	}
	c.Groups, err = splitGroups(id.groupsHeader, g)
	return c, err
}

// User verifies a bearer JWT that a user sent to the administration API
// (mode jwt only; VerifiesTokens says whether it applies).
func (id *Identity) User(ctx context.Context, token string) (Caller, error) {
	if id.jwt == nil {
		return Caller{}, permatrix.Errorf(permatrix.EUNAUTHORIZED, "user tokens are accepted only with --identity jwt")
	}
	return id.jwt.Verify(ctx, token)
}

// BearerToken is the token of "Authorization: Bearer <token>"; exactly one
// Authorization header is accepted.
func BearerToken(h http.Header) (string, error) {
	v, ok, err := single(h, "Authorization")
	if err != nil {
		return "", err
	}
	if !ok {
		return "", permatrix.Errorf(permatrix.EUNAUTHORIZED, "no identity: send Authorization: Bearer <JWT>")
	}
	scheme, token, _ := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return "", permatrix.Errorf(permatrix.EUNAUTHORIZED, "the Authorization header is not Bearer <JWT>")
	}
	return strings.TrimSpace(token), nil
}

// single is the one value of header name. A header sent more than once is
// refused: a gateway that appends instead of replacing would otherwise let
// the client's copy through.
func single(h http.Header, name string) (string, bool, error) {
	vs := h.Values(name)
	switch {
	case len(vs) == 0:
		return "", false, nil
	case len(vs) > 1:
		return "", false, permatrix.Errorf(permatrix.EUNAUTHORIZED, "%s is sent %d times: the gateway must replace it, not add to it", name, len(vs))
	case vs[0] == "":
		return "", false, nil
	}
	return vs[0], true, nil
}

func userCaller(source, v string) (Caller, error) {
	if !permatrix.ValidID(v) {
		return Caller{}, permatrix.Errorf(permatrix.EUNAUTHORIZED, "%s is not a user id (1 to %d bytes, no control characters)", source, permatrix.MaxIDBytes)
	}
	return Caller{Subject: v}, nil
}

func splitGroups(source, v string) ([]string, error) {
	gs, err := ParseGroups(v)
	if err != nil {
		return nil, permatrix.Errorf(permatrix.EUNAUTHORIZED, "%s %v", source, err)
	}
	return gs, nil
}

// ParseGroups reads a comma-separated list of group ids, as a groups header
// carries them: blanks are skipped and repeats dropped; each must be a valid
// id, and there may be at most MaxGroups.
func ParseGroups(v string) ([]string, error) {
	var gs []string
	for _, g := range strings.Split(v, ",") {
		// HTTP's list whitespace only (RFC 9110 OWS): strings.TrimSpace
		// also trims Unicode's spaces, and a group "admins\u00a0" was
		// read as "admins".
		if g = strings.Trim(g, " \t"); g == "" {
			continue
		}
		if !permatrix.ValidID(g) {
			return nil, fmt.Errorf("holds a group id that is not valid (1 to %d bytes, no control characters)", permatrix.MaxIDBytes)
		}
		if slices.Contains(gs, g) {
			continue
		}
		if len(gs) == MaxGroups {
			return nil, fmt.Errorf("holds more than %d groups", MaxGroups)
		}
		gs = append(gs, g)
	}
	return gs, nil
}

// credentialHeader reports whether name is a header that carries
// credentials, whose value must not become an id.
func credentialHeader(name string) bool {
	for _, c := range []string{"Authorization", "Proxy-Authorization", "Cookie"} {
		if strings.EqualFold(name, c) {
			return true
		}
	}
	return false
}

// validHeaderName reports whether s is an HTTP field name (RFC 9110 token).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r > 0x7e || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}
