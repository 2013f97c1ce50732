package http

import (
	"bytes"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/pdp"
)

// assignmentRequest is the body of POST /v1/assignments and one line of
// POST /v1/import: an assignment and, optionally, its actor.
type assignmentRequest struct {
	permatrix.Assignment
	Actor *string `json:"actor"`
}

// POST /v1/assignments
func (s *Server) createAssignment(c echo.Context) error {
	var req assignmentRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	actor, err := actorOf(c, req.Actor)
	if err != nil {
		return err
	}
	req.Assignment.ID = ""
	a, rev, err := s.svc.Assign(c.Request().Context(), req.Assignment, actor)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]any{"id": a.ID, "revision": rev, "assignment": a})
}

// DELETE /v1/assignments/{id}
func (s *Server) deleteAssignment(c echo.Context) error {
	actor, err := optionalActor(c)
	if err != nil {
		return err
	}
	rev, err := s.svc.Unassign(c.Request().Context(), param(c, "id"), actor)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"revision": rev})
}

// GET /v1/assignments/{id}
func (s *Server) getAssignment(c echo.Context) error {
	a, err := s.svc.Assignment(c.Request().Context(), param(c, "id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, a)
}

// GET /v1/assignments?subject=&system=&scope_type=&scope_id=&limit=&cursor=
func (s *Server) listAssignments(c echo.Context) error {
	f := permatrix.AssignmentFilter{
		Subject: c.QueryParam("subject"), System: c.QueryParam("system"),
		ScopeType: c.QueryParam("scope_type"), ScopeID: c.QueryParam("scope_id"),
		Cursor: c.QueryParam("cursor"),
	}
	if l := c.QueryParam("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return permatrix.Errorf(permatrix.EINVALID, "limit must be a whole number from 1 to 1000")
		}
		f.Limit = n
	}
	list, next, err := s.svc.Assignments(c.Request().Context(), f)
	if err != nil {
		return err
	}
	if list == nil {
		list = []permatrix.Assignment{}
	}
	return c.JSON(http.StatusOK, map[string]any{"assignments": list, "next_cursor": next})
}

// PUT /v1/groups/{group}/members/{user} (optional body {"actor": "..."})
func (s *Server) putMember(c echo.Context) error {
	actor, err := optionalActor(c)
	if err != nil {
		return err
	}
	rev, err := s.svc.AddMember(c.Request().Context(), permatrix.Membership{Group: param(c, "group"), User: param(c, "user")}, actor)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"revision": rev})
}

// DELETE /v1/groups/{group}/members/{user} (optional body {"actor": "..."})
func (s *Server) deleteMember(c echo.Context) error {
	actor, err := optionalActor(c)
	if err != nil {
		return err
	}
	rev, err := s.svc.RemoveMember(c.Request().Context(), permatrix.Membership{Group: param(c, "group"), User: param(c, "user")}, actor)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"revision": rev})
}

// GET /v1/groups/{group}/members
func (s *Server) listMembers(c echo.Context) error {
	users, rev, err := s.svc.Members(c.Request().Context(), param(c, "group"))
	if err != nil {
		return err
	}
	if users == nil {
		users = []string{}
	}
	return c.JSON(http.StatusOK, map[string]any{"group": param(c, "group"), "members": users, "revision": rev})
}

// roleRequest is the body of PUT /v1/systems/{system}/roles/{role}.
type roleRequest struct {
	Permissions []string `json:"permissions"`
	Actor       *string  `json:"actor"`
}

// PUT /v1/systems/{system}/roles/{role}
func (s *Server) putRole(c echo.Context) error {
	var req roleRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	actor, err := actorOf(c, req.Actor)
	if err != nil {
		return err
	}
	r := permatrix.Role{System: param(c, "system"), Name: param(c, "role"), Permissions: req.Permissions}
	rev, err := s.svc.PutRole(c.Request().Context(), r, actor)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"role": r, "revision": rev})
}

// GET /v1/systems/{system}/roles/{role}
func (s *Server) getRole(c echo.Context) error {
	r, err := s.svc.Role(c.Request().Context(), param(c, "system"), param(c, "role"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, r)
}

// DELETE /v1/systems/{system}/roles/{role}
func (s *Server) deleteRole(c echo.Context) error {
	actor, err := optionalActor(c)
	if err != nil {
		return err
	}
	rev, err := s.svc.DeleteRole(c.Request().Context(), param(c, "system"), param(c, "role"), actor)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"revision": rev})
}

// projectRequest is the body of PUT /v1/systems/{system}/projects/{id}.
type projectRequest struct {
	CreatedBy string  `json:"created_by"`
	Kind      string  `json:"kind"`
	Actor     *string `json:"actor"`
}

// PUT /v1/systems/{system}/projects/{id}
func (s *Server) putProject(c echo.Context) error {
	var req projectRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	actor, err := actorOf(c, req.Actor)
	if err != nil {
		return err
	}
	p := permatrix.Project{System: param(c, "system"), ID: param(c, "id"), CreatedBy: req.CreatedBy, Kind: req.Kind}
	p, rev, creator, err := s.svc.PutProject(c.Request().Context(), p, actor)
	if err != nil {
		return err
	}
	body := map[string]any{"project": p, "revision": rev}
	if creator != nil {
		body["creator_assignment"] = creator
	}
	return c.JSON(http.StatusOK, body)
}

// GET /v1/systems/{system}/projects/{id}
func (s *Server) getProject(c echo.Context) error {
	p, err := s.svc.Project(c.Request().Context(), param(c, "system"), param(c, "id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, p)
}

// POST /v1/import: NDJSON of assignment objects, all or nothing. The
// X-Permatrix-Actor header is the actor of every line; a line may name its
// own "actor" (the same as the header's when both are given). Each line is
// judged with its actor.
func (s *Server) importAssignments(c echo.Context) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	parsed, err := parseImport(body)
	if err != nil {
		return err
	}
	lines := make([]pdp.ImportLine, len(parsed))
	for i, l := range parsed {
		actor, err := actorOf(c, l.Actor)
		if err != nil {
			return permatrix.Errorf(permatrix.ErrorCode(err), "line %d: %s", l.line, permatrix.ErrorMessage(err))
		}
		lines[i] = pdp.ImportLine{Line: l.line, Assignment: l.Assignment, Actor: actor}
	}
	n, rev, err := s.svc.Import(c.Request().Context(), lines)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"imported": n, "revision": rev})
}

// importLine is one line of an import, with its line number.
type importLine struct {
	assignmentRequest
	line int
}

// parseImport decodes an NDJSON import: one assignment object per line
// (blank lines skipped), each decoded strictly; an error names its line.
func parseImport(body []byte) ([]importLine, error) {
	var lines []importLine
	n := 0
	for raw := range bytes.Lines(body) {
		n++
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		l := importLine{line: n}
		if err := decodeJSON(raw, &l.assignmentRequest); err != nil {
			return nil, permatrix.Errorf(permatrix.EINVALID, "line %d: %s", n, permatrix.ErrorMessage(err))
		}
		lines = append(lines, l)
	}
	if len(lines) == 0 {
		return nil, permatrix.Errorf(permatrix.EINVALID, "no assignments in the body (NDJSON: one assignment object per line)")
	}
	return lines, nil
}

// GET /v1/export: the whole store as OPA data.
func (s *Server) export(c echo.Context) error {
	// The document streams from one snapshot; the header goes out with the
	// first bytes, so a failure after that can only cut the body short
	// (the client sees invalid JSON, never a partial document that parses).
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	c.Response().WriteHeader(http.StatusOK)
	if _, err := s.svc.Export(c.Request().Context(), c.Response()); err != nil {
		s.log.Error("export failed midway", "err", err)
		panic(http.ErrAbortHandler) // abort the response: the client must not take it for whole
	}
	return nil
}
