package http

import (
	"bufio"
	"bytes"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/permatrix/permatrix"
)

// actorHeader names the user a change is made on behalf of.
const actorHeader = "X-Permatrix-Actor"

func actorOf(c echo.Context, body string) string {
	if body != "" {
		return body
	}
	return c.Request().Header.Get(actorHeader)
}

// deleteActor is the actor of a DELETE: an optional {"actor": "..."} body,
// else the header. A body that is not that object is a 400, never ignored
// (ignoring it would make the change with the operator's authority).
func deleteActor(c echo.Context) (string, error) {
	body, err := readBody(c)
	if err != nil {
		return "", err
	}
	var req struct {
		Actor string `json:"actor"`
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := unmarshal(body, &req); err != nil {
			return "", err
		}
	}
	return actorOf(c, req.Actor), nil
}

type assignmentRequest struct {
	permatrix.Assignment
	Actor string `json:"actor"`
}

// POST /v1/assignments
func (s *Server) createAssignment(c echo.Context) error {
	var req assignmentRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	req.Assignment.ID = ""
	a, rev, err := s.svc.Assign(c.Request().Context(), req.Assignment, actorOf(c, req.Actor))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]any{"id": a.ID, "revision": rev, "assignment": a})
}

// DELETE /v1/assignments/{id}
func (s *Server) deleteAssignment(c echo.Context) error {
	actor, err := deleteActor(c)
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

// PUT /v1/groups/{group}/members/{user}
func (s *Server) putMember(c echo.Context) error {
	rev, err := s.svc.AddMember(c.Request().Context(), permatrix.Membership{Group: param(c, "group"), User: param(c, "user")})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"revision": rev})
}

// DELETE /v1/groups/{group}/members/{user}
func (s *Server) deleteMember(c echo.Context) error {
	rev, err := s.svc.RemoveMember(c.Request().Context(), permatrix.Membership{Group: param(c, "group"), User: param(c, "user")})
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

// PUT /v1/systems/{system}/roles/{role}
func (s *Server) putRole(c echo.Context) error {
	var req struct {
		Permissions []string `json:"permissions"`
		Actor       string   `json:"actor"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	r := permatrix.Role{System: param(c, "system"), Name: param(c, "role"), Permissions: req.Permissions}
	rev, err := s.svc.PutRole(c.Request().Context(), r, actorOf(c, req.Actor))
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
	actor, err := deleteActor(c)
	if err != nil {
		return err
	}
	rev, err := s.svc.DeleteRole(c.Request().Context(), param(c, "system"), param(c, "role"), actor)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"revision": rev})
}

// PUT /v1/systems/{system}/projects/{id}
func (s *Server) putProject(c echo.Context) error {
	var req struct {
		CreatedBy string `json:"created_by"`
		Kind      string `json:"kind"`
		Actor     string `json:"actor"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	p := permatrix.Project{System: param(c, "system"), ID: param(c, "id"), CreatedBy: req.CreatedBy, Kind: req.Kind}
	rev, creator, err := s.svc.PutProject(c.Request().Context(), p, actorOf(c, req.Actor))
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

// POST /v1/import: NDJSON of assignment objects, all or nothing.
func (s *Server) importAssignments(c echo.Context) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	var list []permatrix.Assignment
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), len(body)+1)
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var a permatrix.Assignment
		if err := unmarshal(sc.Bytes(), &a); err != nil {
			return permatrix.Errorf(permatrix.EINVALID, "line %d: %s", line, permatrix.ErrorMessage(err))
		}
		list = append(list, a)
	}
	if len(list) == 0 {
		return permatrix.Errorf(permatrix.EINVALID, "no assignments in the body (NDJSON: one assignment object per line)")
	}
	n, rev, err := s.svc.Import(c.Request().Context(), list)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"imported": n, "revision": rev})
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
