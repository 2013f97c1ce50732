package http

import (
	"fmt"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/identity"
	"github.com/permatrix/permatrix/internal/pdp"
)

// The actor of a write is the user it is made on behalf of: the vendor's
// delegation rules then decide whether that user may make it (403 when
// not). A write without an actor is the operator's, who holds the admin
// token and may make any change the vendor rules allow (422 still applies).
// actorOf is the one place that decides it; every write path asks it.
const (
	// actorHeader names the actor of a write, like the body's "actor".
	actorHeader = "X-Permatrix-Actor"
	// actorGroupsHeader names the groups an identity provider asserts for
	// that actor (comma-separated, as a groups header): its writes are
	// judged with them, as its checks are decided with a check's groups.
	actorGroupsHeader = "X-Permatrix-Actor-Groups"
	// callerUserKey is the Echo context key under which authentication
	// stores the id (a string) of the user a request was authenticated as
	// (a verified user token). Such a request acts as that user.
	callerUserKey = "permatrix.caller.user"
	// callerOperatorKey is set (true) by requireAdmin when the request
	// carries the admin token.
	callerOperatorKey = "permatrix.caller.operator"
)

// actorOf decides the actor of a write ("" is the operator). body is the
// actor the JSON body names (nil when it names none).
//
//   - A request authenticated as a user acts as that user; a body or header
//     actor naming anyone else is a 400 (a user cannot act for another).
//   - With the admin token, the body's "actor" or the X-Permatrix-Actor
//     header names the actor; both given and different is a 400, and so is
//     the header given twice: a request means one thing or is refused.
//   - An actor that is given must be a valid user id: "actor": "" is a 400,
//     never a quiet fall-back to the operator.
//   - Neither kind of caller: 401 (never reached behind requireAdmin; the
//     check keeps this function safe wherever it is called).
func actorOf(c echo.Context, body *string) (string, error) {
	named, err := namedActor(c, body)
	if err != nil {
		return "", err
	}
	if v := c.Get(callerUserKey); v != nil {
		// Authentication put it there: anything but a valid id is a fault,
		// never a reason to fall back to the operator.
		user, ok := v.(string)
		if !ok || !permatrix.ValidID(user) {
			return "", permatrix.Errorf(permatrix.EINTERNAL, "the authenticated user id is not a valid id")
		}
		if named != "" && named != user {
			return "", permatrix.Errorf(permatrix.EINVALID, "the request is authenticated as user %q and cannot act as %q: a user acts only as itself", user, named)
		}
		return user, nil
	}
	if operator, _ := c.Get(callerOperatorKey).(bool); operator {
		return named, nil
	}
	return "", permatrix.Errorf(permatrix.EUNAUTHORIZED, "a write needs the admin token or an authenticated user")
}

// namedActor is the actor the request names in its body or header, "" for
// none; see actorOf.
func namedActor(c echo.Context, body *string) (string, error) {
	if body != nil && !permatrix.ValidID(*body) {
		return "", permatrix.Errorf(permatrix.EINVALID, "actor must be a user id of 1 to %d bytes without control characters (leave it out to write as the operator)", permatrix.MaxIDBytes)
	}
	values := c.Request().Header.Values(actorHeader)
	switch {
	case len(values) > 1:
		return "", permatrix.Errorf(permatrix.EINVALID, "%s is given %d times: name one actor", actorHeader, len(values))
	case len(values) == 1 && !permatrix.ValidID(values[0]):
		return "", permatrix.Errorf(permatrix.EINVALID, "%s must be a user id of 1 to %d bytes without control characters", actorHeader, permatrix.MaxIDBytes)
	case len(values) == 1 && body != nil && *body != values[0]:
		return "", permatrix.Errorf(permatrix.EINVALID, "the body's actor %q and the %s header %q differ: name one actor", *body, actorHeader, values[0])
	case body != nil:
		return *body, nil
	case len(values) == 1:
		return values[0], nil
	}
	return "", nil
}

// actorBody is a write body that holds at most the actor (DELETE
// requests, group memberships).
type actorBody struct {
	Actor *string `json:"actor"`
}

// optionalActor is the actor of a write whose body is optional and holds
// at most {"actor": "..."}. A body that is not that object is a 400, never
// ignored (ignoring it would make the change with the operator's
// authority).
func optionalActor(c echo.Context) (string, error) {
	raw, err := readBody(c)
	if err != nil {
		return "", err
	}
	var body actorBody
	if !blank(raw) {
		if err := decodeJSON(raw, &body); err != nil {
			return "", err
		}
	}
	return actorOf(c, body.Actor)
}

// writeQuery refuses a write whose query holds a parameter other than
// params: a write names its actor in its body or header only, and a query
// parameter that was ignored made "?actor=ba" a write with the operator's
// authority (as an unknown body key would; docs/delegation.md).
func writeQuery(params ...string) echo.MiddlewareFunc {
	takes := "no query parameters"
	if len(params) > 0 {
		takes = "only " + strings.Join(params, ", ")
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			unknown := fmt.Sprintf(": %s %s takes %s (an actor is named in the body's \"actor\" or the %s header)",
				c.Request().Method, c.Path(), takes, actorHeader)
			if _, err := onceEach(c, params, unknown); err != nil {
				return err
			}
			return next(c)
		}
	}
}

// assertActorGroups puts the groups X-Permatrix-Actor-Groups asserts for
// the X-Permatrix-Actor header's actor in the request's context
// (pdp.Asserting): the verdicts of the changes that actor makes read them,
// as its checks read the groups asserted for it. Without them a service
// writing for a user whose groups only its identity provider knows had that
// user judged outside them: a Blue Prism user manager could give a group it
// is in by assertion a stronger role. Only with the admin token: a user
// token's groups are its token's.
func assertActorGroups(c echo.Context, operator bool) error {
	values := c.Request().Header.Values(actorGroupsHeader)
	switch {
	case len(values) == 0:
		return nil
	case !operator:
		return permatrix.Errorf(permatrix.EINVALID, "%s is for the admin token's writes: a user token's groups are the token's", actorGroupsHeader)
	case len(values) > 1:
		return permatrix.Errorf(permatrix.EINVALID, "%s is given %d times: give the groups in one, comma-separated", actorGroupsHeader, len(values))
	}
	actor, err := namedActor(c, nil) // the header's actor, as every write reads it
	if err != nil {
		return err
	}
	if actor == "" {
		return permatrix.Errorf(permatrix.EINVALID, "%s names the groups of the actor the %s header names: give that header, once", actorGroupsHeader, actorHeader)
	}
	groups, err := identity.ParseGroups(values[0])
	if err != nil {
		return permatrix.Errorf(permatrix.EINVALID, "%s %v", actorGroupsHeader, err)
	}
	r := c.Request()
	c.SetRequest(r.WithContext(pdp.Asserting(r.Context(), actor, groups)))
	return nil
}
