package http

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/permatrix/permatrix"
)

// Forward-auth headers. A reverse proxy (nginx auth_request, Traefik
// forwardAuth, Envoy ext_authz in HTTP mode) sends the original request's
// identity, and its route configuration says what is being asked.
const (
	headerSubject      = "X-Permatrix-Subject" // wins over X-Forwarded-User
	headerForwardUser  = "X-Forwarded-User"    // what oauth2-proxy and most IdP gateways set
	headerGroups       = "X-Forwarded-Groups"  // comma-separated
	headerSystem       = "X-Permatrix-System"
	headerAction       = "X-Permatrix-Action"
	headerResourceType = "X-Permatrix-Resource-Type"
	headerResourceID   = "X-Permatrix-Resource-Id"
	headerDecisionID   = "X-Permatrix-Decision-Id"
)

// ANY /v1/forward-auth[/*]: the check as a proxy's sub-request. 200 allows
// the original request, 403 denies it (body: the decision), 401 when no
// subject was forwarded, 400 for a check that is not valid. Any method and
// any path below it, because Envoy's ext_authz appends the original path.
func (s *Server) forwardAuth(c echo.Context) error {
	h := c.Request().Header
	ch := permatrix.Check{
		Subject: h.Get(headerSubject),
		System:  h.Get(headerSystem),
		Action:  h.Get(headerAction),
	}
	if ch.Subject == "" {
		ch.Subject = h.Get(headerForwardUser)
	}
	if ch.Subject == "" {
		return permatrix.Errorf(permatrix.EUNAUTHORIZED, "no subject: forward %s or %s", headerForwardUser, headerSubject)
	}
	if t := h.Get(headerResourceType); t != "" {
		ch.Resource = &permatrix.Scope{Type: t, ID: h.Get(headerResourceID)}
	}
	for _, g := range strings.Split(h.Get(headerGroups), ",") {
		if g = strings.TrimSpace(g); g != "" {
			ch.Groups = append(ch.Groups, g)
		}
	}
	d, err := s.decide(c, ch)
	if err != nil {
		return err
	}
	c.Response().Header().Set(headerDecisionID, d.DecisionID)
	if !d.Allow {
		return c.JSON(http.StatusForbidden, d)
	}
	return c.JSON(http.StatusOK, d)
}
