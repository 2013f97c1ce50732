package http

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/gateway"
)

const (
	forwardAuthBase  = "/v1/forward-auth"
	headerDecisionID = "X-Permatrix-Decision-Id"
)

// ANY /v1/forward-auth[/*]: a reverse proxy's "may this request through?"
// (nginx auth_request, Traefik forwardAuth, Envoy ext_authz in HTTP mode).
// internal/gateway says who is calling and which check decides the
// original request. 200 allows it, 403 denies it (body: the decision; or
// the error "no route matches"), 401 when the identity is missing or
// invalid, 400 when the original request or the check is not valid.
func (s *Server) forwardAuth(c echo.Context) error {
	ch, err := s.gateway.Check(c.Request().Context(), gateway.FromHTTP(c.Request(), forwardAuthBase))
	if err != nil {
		if permatrix.ErrorCode(err) == permatrix.EUNAUTHORIZED {
			if v := s.cfg.Identity.Challenge(); v != "" {
				c.Response().Header().Set("WWW-Authenticate", v)
			}
		}
		return err
	}
	if ch.MinRevision, err = forwardAuthToken(c); err != nil {
		return err
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

// forwardAuthToken is a forward-auth request's consistency token: the
// X-Permatrix-Min-Revision header, or min_revision in the query of
// /v1/forward-auth itself. Below it (/v1/forward-auth/{path}, Envoy's HTTP
// service) the path and query are the original request's: a min_revision
// there is the application's parameter, not a token.
func forwardAuthToken(c echo.Context) (uint64, error) {
	if strings.HasPrefix(c.Request().URL.EscapedPath(), forwardAuthBase+"/") {
		return gateway.MinRevision(c.Request().Header.Values(gateway.HeaderMinRevision))
	}
	return minRevision(c, 0)
}
