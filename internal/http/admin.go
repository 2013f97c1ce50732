package http

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

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
	if req.Assignment.ID != "" {
		// Dropped, it was stored under another: the client would hold an
		// id that names nothing.
		return permatrix.Errorf(permatrix.EINVALID, `"id" is the server's: an assignment's id is given in the answer, never chosen (leave it out)`)
	}
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

// GET /v1/assignments?subject=&system=&scope_type=&scope_id=&limit=&cursor=&with_groups=
func (s *Server) listAssignments(c echo.Context) error {
	// A filter not read, or read once of two, lists more than was asked
	// (a caller deleting what ?subjects=user:x lists deletes everything):
	// each parameter is known and given at most once.
	q, err := onceEach(c, listParams, "")
	if err != nil {
		return err
	}
	f := permatrix.AssignmentFilter{
		Subject: q.Get("subject"), System: q.Get("system"),
		ScopeType: q.Get("scope_type"), ScopeID: q.Get("scope_id"),
		Cursor: q.Get("cursor"),
	}
	// Written as an assignment's subject: a bare id would match nothing.
	if f.Subject != "" && !permatrix.ValidSubject(f.Subject) {
		return permatrix.Errorf(permatrix.EINVALID, "subject %q: want \"user:<id>\" or \"group:<id>\", as assignments name their subject", f.Subject)
	}
	if l := q.Get("limit"); l != "" {
		n, err := permatrix.ParsePageLimit(l)
		if err != nil {
			return err
		}
		f.Limit = n
	}
	switch q.Get("with_groups") {
	case "", "false":
	case "true":
		f.WithGroups = true
	default:
		return permatrix.Errorf(permatrix.EINVALID, "with_groups is true or false, not %q", q.Get("with_groups"))
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

// listParams are the query parameters of GET /v1/assignments.
var listParams = []string{"subject", "system", "scope_type", "scope_id", "limit", "cursor", "with_groups"}

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

// GET /v1/groups/{group}/members?limit=&cursor=
//
// A page (next_cursor "" on the last), of the listings' default size
// without a limit: a group of any size answers a page, read from a
// snapshot held only while the page is read.
func (s *Server) listMembers(c echo.Context) error {
	q, err := onceEach(c, memberParams, "")
	if err != nil {
		return err
	}
	limit := 0
	if l := q.Get("limit"); l != "" {
		if limit, err = permatrix.ParsePageLimit(l); err != nil {
			return err
		}
	}
	group := param(c, "group")
	users, next, rev, err := s.svc.MembersPage(c.Request().Context(), group, q.Get("cursor"), limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"group": group, "members": users, "next_cursor": next, "revision": rev})
}

// memberParams are the query parameters of GET /v1/groups/{group}/members.
var memberParams = []string{"limit", "cursor"}

// onceEach reads a request's query: each parameter known and given at most
// once (a misspelt limit would list everything; a write's ignored ?actor=
// was the operator's). unknown says what the request takes instead, after
// an unknown parameter's name; "" names the known ones.
func onceEach(c echo.Context, known []string, unknown string) (url.Values, error) {
	if unknown == "" {
		unknown = " (known: " + strings.Join(known, ", ") + ")"
	}
	q, err := url.ParseQuery(c.Request().URL.RawQuery)
	if err != nil {
		return nil, permatrix.Errorf(permatrix.EINVALID, "malformed query: %v", err)
	}
	for _, k := range slices.Sorted(maps.Keys(q)) {
		switch {
		case !slices.Contains(known, k):
			return nil, permatrix.Errorf(permatrix.EINVALID, "unknown query parameter %q%s", k, unknown)
		case len(q[k]) > 1:
			return nil, permatrix.Errorf(permatrix.EINVALID, "%s is given %d times: give it once", k, len(q[k]))
		}
	}
	return q, nil
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
	// The role as stored (GET answers the same): its permissions a set.
	return c.JSON(http.StatusOK, map[string]any{"role": r.Normal(), "revision": rev})
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

// DELETE /v1/systems/{system}/projects/{id}
func (s *Server) deleteProject(c echo.Context) error {
	actor, err := optionalActor(c)
	if err != nil {
		return err
	}
	rev, err := s.svc.DeleteProject(c.Request().Context(), param(c, "system"), param(c, "id"), actor)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"revision": rev})
}

// GET /v1/systems/{system}/projects/{id}
func (s *Server) getProject(c echo.Context) error {
	p, err := s.svc.Project(c.Request().Context(), param(c, "system"), param(c, "id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, p)
}

// POST /v1/import: NDJSON of assignment objects, all or nothing, or with
// ?chunk=N committed N lines at a time (pdp.ImportStream). The
// X-Permatrix-Actor header is the actor of every line; a line may name its
// own "actor" (the same as the header's when both are given). Each line is
// judged with its actor.
func (s *Server) importAssignments(c echo.Context) error {
	var o pdp.ImportOptions
	// chunk is given once or not at all (writeQuery: twice, the request
	// would mean two things), and "chunk=" is no number.
	if vs, ok := c.QueryParams()["chunk"]; ok {
		n, err := strconv.Atoi(vs[0])
		if err != nil {
			return permatrix.Errorf(permatrix.EINVALID, "chunk must be a whole number of lines per commit, got %q", vs[0])
		}
		o.Chunk = n // its range is pdp.ImportStream's to check
	}
	// An import runs as long as it makes progress: no request deadline,
	// and the connection's deadlines move on before every read of the body
	// and after every commit — each wait for the client is bounded, not
	// the time a chunk takes to arrive (a client sending steadily but
	// slower than a chunk per streamIdle was cut off, with no answer).
	rc := http.NewResponseController(c.Response().Writer)
	ra := readAheadOf(c)
	extend := func() {
		if ra != nil {
			ra.extendRead(streamIdle) // not once the body has come whole (readAhead)
		} else {
			_ = rc.SetReadDeadline(time.Now().Add(streamIdle))
		}
		_ = rc.SetWriteDeadline(time.Now().Add(streamIdle))
	}
	extend()
	// A shutdown stops the import at once (it may never end, and the
	// shutdown waits for requests only so long): the commits made stay, a
	// commit being made is made whole or not at all, and the answer (503)
	// and the log say how far it got. A wait for the client's next bytes
	// ends too (its read deadline is now); a read that starts after that
	// sees the import stopped (idleReader).
	ctx, cancel := context.WithCancel(c.Request().Context())
	defer cancel()
	stop := context.AfterFunc(s.stopping, func() {
		cancel()
		_ = rc.SetReadDeadline(time.Now())
	})
	defer stop()
	// A long import leaves a trail at the default level, at most every
	// importLogEvery: after a crash or kill -9 (no answer, no "import
	// stopped") the log says how far it had got.
	logged, trail := time.Now(), false
	var counted pdp.ImportResult // what importLines has of this import's commits
	o.Progress = func(r pdp.ImportResult) {
		extend()
		s.importLines.imported.Add(float64(r.Imported - counted.Imported))
		s.importLines.stored.Add(float64(r.AlreadyStored - counted.AlreadyStored))
		counted = r
		s.log.Debug("import chunk committed", "lines", r.Lines, "imported", r.Imported, "already_stored", r.AlreadyStored, "last_line", r.LastLine, "revision", r.Revision)
		if time.Since(logged) >= importLogEvery {
			logged, trail = time.Now(), true
			s.log.Info("import in progress", "imported", r.Imported, "already_stored", r.AlreadyStored, "last_line", r.LastLine, "revision", r.Revision)
		}
	}
	body := &idleReader{r: c.Request().Body, extend: extend, ctx: ctx}
	ir := NewImportReader(body, func(_ int, given *string) (string, error) { return actorOf(c, given) })
	res, err := s.svc.ImportStream(ctx, ir.Next, o)
	if err == nil {
		if trail {
			s.log.Info("import finished", "imported", res.Imported, "already_stored", res.AlreadyStored, "last_line", res.LastLine, "revision", res.Revision)
		}
		return c.JSON(http.StatusOK, res)
	}
	// The answer gets its own time to be written: after a wait for the
	// client ended the import (the read deadline passed), the write
	// deadline set with it has passed too, and a client that is still
	// there got an empty reply instead of how far its import got.
	_ = rc.SetWriteDeadline(time.Now().Add(streamIdle))
	// Stopped by the shutdown: the import's context ended, or the read its
	// deadline ended (a refused line keeps its own answer).
	shutdown := s.stopping.Err() != nil && (errors.Is(err, context.Canceled) || body.err != nil)
	if shutdown {
		err = permatrix.Errorf(permatrix.EUNAVAILABLE, "the server is shutting down: the import stopped; send the rest, or all of it, again")
	}
	// The log says how far the import got when some of it is committed, or
	// when reading the body failed (the client left or was idle too long,
	// and no one reads the answer; or broken gzip), the client left while
	// the import was committed (the request's context ended) or the server
	// shuts down, also when nothing was committed.
	if res.LastLine > 0 || body.err != nil || ctx.Err() != nil {
		s.log.Warn("import stopped", "err", err, "progress", res.Describe())
	}
	if res.LastLine == 0 {
		return err
	}
	// The chunks before the failure are committed (or were stored
	// already): say how far, in headers and in the message.
	h := c.Response().Header()
	h.Set("X-Permatrix-Imported", strconv.Itoa(res.Imported))
	h.Set("X-Permatrix-Import-Already-Stored", strconv.Itoa(res.AlreadyStored))
	h.Set("X-Permatrix-Import-Last-Line", strconv.Itoa(res.LastLine))
	h.Set("X-Permatrix-Import-Revision", strconv.FormatUint(res.Revision, 10))
	var pe *permatrix.Error
	var he *echo.HTTPError
	switch {
	case errors.As(err, &pe):
		return &permatrix.Error{Code: pe.Code, Message: pe.Message + " (" + res.Describe() + ")", Details: pe.Details}
	case errors.As(err, &he):
		return echo.NewHTTPError(he.Code, fmt.Sprint(he.Message)+" ("+res.Describe()+")")
	}
	return err
}

// idleReader reads an import's body, moving the connection's deadlines on
// before every read: a wait for the client is bounded by streamIdle. err
// is the body's failure, if reading it failed (not its end).
type idleReader struct {
	r      io.Reader
	extend func()
	ctx    context.Context // the import's: once it ends, nothing more is read
	err    error
}

func (r *idleReader) Read(p []byte) (int, error) {
	r.extend()
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := r.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		r.err = err
	}
	return n, err
}

// idleWriter writes an export, moving the connection's write deadline on
// before every write: a wait for the client is bounded by streamIdle.
type idleWriter struct {
	w      io.Writer
	extend func()
}

func (w idleWriter) Write(p []byte) (int, error) {
	w.extend()
	return w.w.Write(p)
}

// importPath and exportPath are the routes that stream: an import runs as
// long as its client sends, an export as long as its client reads.
const (
	importPath = "/v1/import"
	exportPath = "/v1/export"
)

// importLogEvery is how often a long import logs how far it has got.
const importLogEvery = 5 * time.Second

// streamIdle is how long an import may wait for its next bytes, or for its
// answer to be read, and an export for its client to read, before the
// connection is given up (a variable for the tests).
var streamIdle = 2 * time.Minute

// GET /v1/export: the whole store as OPA data, or with ?format=ndjson as
// the lines POST /v1/import takes (every record, one a line: an export
// imports back into an empty store).
func (s *Server) export(c echo.Context) error {
	q, err := onceEach(c, exportParams, "")
	if err != nil {
		return err
	}
	write, contentType := s.svc.Export, echo.MIMEApplicationJSON
	switch q.Get("format") {
	case "", "json":
	case "ndjson":
		write, contentType = s.svc.ExportRecords, "application/x-ndjson"
	default:
		return permatrix.Errorf(permatrix.EINVALID, "format is json (OPA data, the default) or ndjson (the lines POST /v1/import takes), not %q", q.Get("format"))
	}
	// The document streams from one snapshot; the header goes out with the
	// first bytes, so a failure after that can only cut the body short
	// (the client sees invalid JSON, never a partial document that parses).
	c.Response().Header().Set(echo.HeaderContentType, contentType)
	c.Response().WriteHeader(http.StatusOK)
	if c.Request().Method == http.MethodHead {
		return nil // GET's status and headers: the store is not read to send nothing
	}
	// An export runs as long as its client reads: no request deadline, and
	// the connection's write deadline moves on before every write (with
	// the request timeout's, a client reading a large store slower than it
	// allowed got an export cut short).
	rc := http.NewResponseController(c.Response().Writer)
	w := idleWriter{w: c.Response(), extend: func() { _ = rc.SetWriteDeadline(time.Now().Add(streamIdle)) }}
	_, err = write(c.Request().Context(), w)
	return err // after the status: handleError cuts the response short
}

// exportParams are the query parameters of GET /v1/export.
var exportParams = []string{"format"}
