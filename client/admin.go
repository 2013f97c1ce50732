package client

import (
	"context"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"

	"github.com/permatrix/permatrix"
)

// The administration API needs WithToken: the admin token, or (for writes)
// a user's JWT when the server verifies them. Every write returns the store
// revision it committed at: a check made after it is decided at that
// revision or later (a consistency token across a fleet: Check.MinRevision).

// WriteOption modifies one write.
type WriteOption func(*request)

// Actor makes a write on behalf of user (the X-Permatrix-Actor header): the
// vendor's delegation rules then decide whether that user may make it, and
// a refusal is an *Error with code forbidden (403). Without it the write is
// the operator's (the admin token). An empty user is sent as given and
// refused (400), never taken for the operator. docs/delegation.md has the
// rules.
func Actor(user string) WriteOption { return func(r *request) { r.actor = &user } }

// write makes a write request and records the revision it returns.
func (c *Client) write(ctx context.Context, r request, opts []WriteOption, out revisioned) error {
	for _, o := range opts {
		o(&r)
	}
	if err := c.call(ctx, r, out); err != nil {
		return err
	}
	c.noteRevision(out.revision())
	return nil
}

// revisioned is a write's answer: it carries the store revision.
type revisioned interface{ revision() uint64 }

// revisionAnswer is the answer of a write that returns only its revision.
type revisionAnswer struct {
	Revision uint64 `json:"revision"`
}

func (a *revisionAnswer) revision() uint64 { return a.Revision }

// CreateAssignment stores a (its ID is ignored: the server assigns one) and
// returns it as stored, with its id, and the revision. An assignment the
// vendor rules forbid is an *Error with code unprocessable (422), a
// malformed one invalid (400); nothing is stored then.
func (c *Client) CreateAssignment(ctx context.Context, a permatrix.Assignment, opts ...WriteOption) (permatrix.Assignment, uint64, error) {
	a.ID = ""
	var out struct {
		revisionAnswer
		ID         string               `json:"id"`
		Assignment permatrix.Assignment `json:"assignment"`
	}
	if err := c.write(ctx, request{method: http.MethodPost, segs: []string{"v1", "assignments"}, in: a}, opts, &out); err != nil {
		return permatrix.Assignment{}, 0, err
	}
	if out.Assignment.ID == "" {
		out.Assignment = a
		out.Assignment.ID = out.ID
	}
	return out.Assignment, out.Revision, nil
}

// Assignment returns the assignment with the id (code not_found if none).
func (c *Client) Assignment(ctx context.Context, id string) (permatrix.Assignment, error) {
	if err := required("id", id); err != nil {
		return permatrix.Assignment{}, err
	}
	var a permatrix.Assignment
	err := c.call(ctx, request{method: http.MethodGet, segs: []string{"v1", "assignments", id}}, &a)
	return a, err
}

// DeleteAssignment deletes the assignment with the id (code not_found if
// none) and returns the revision.
func (c *Client) DeleteAssignment(ctx context.Context, id string, opts ...WriteOption) (uint64, error) {
	if err := required("id", id); err != nil {
		return 0, err
	}
	var out revisionAnswer
	err := c.write(ctx, request{method: http.MethodDelete, segs: []string{"v1", "assignments", id}}, opts, &out)
	return out.Revision, err
}

// Page is one page of a listing; NextCursor is "" on the last page. A page
// that is not the last may hold fewer than the limit, even none (a page
// read by id stops after a budget): follow NextCursor to the end.
type Page struct {
	Assignments []permatrix.Assignment `json:"assignments"`
	NextCursor  string                 `json:"next_cursor"`
}

// Assignments lists one page of the assignments f selects (empty fields
// match all; Limit 1 to 1000, 0 for the server's default; Cursor is a
// previous page's NextCursor).
func (c *Client) Assignments(ctx context.Context, f permatrix.AssignmentFilter) (Page, error) {
	q := url.Values{}
	for k, v := range map[string]string{"subject": f.Subject, "system": f.System, "scope_type": f.ScopeType, "scope_id": f.ScopeID, "cursor": f.Cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Limit != 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.WithGroups {
		q.Set("with_groups", "true")
	}
	var p Page
	err := c.call(ctx, request{method: http.MethodGet, segs: []string{"v1", "assignments"}, query: q}, &p)
	return p, err
}

// AllAssignments iterates over every assignment f selects, page by page
// (f.Limit assignments a request), starting after f.Cursor. An error ends
// the iteration as its last pair.
//
//	for a, err := range c.AllAssignments(ctx, permatrix.AssignmentFilter{System: "blueprism"}) {
//		if err != nil { return err }
//		…
//	}
func (c *Client) AllAssignments(ctx context.Context, f permatrix.AssignmentFilter) iter.Seq2[permatrix.Assignment, error] {
	return func(yield func(permatrix.Assignment, error) bool) {
		for {
			p, err := c.Assignments(ctx, f)
			if err != nil {
				yield(permatrix.Assignment{}, err)
				return
			}
			for _, a := range p.Assignments {
				if !yield(a, nil) {
					return
				}
			}
			if p.NextCursor == "" {
				return
			}
			if p.NextCursor == f.Cursor {
				yield(permatrix.Assignment{}, fmt.Errorf("permatrix client: GET /v1/assignments: the cursor %q does not advance", f.Cursor))
				return
			}
			f.Cursor = p.NextCursor
		}
	}
}

// AddMember puts user in group and returns the revision.
func (c *Client) AddMember(ctx context.Context, group, user string, opts ...WriteOption) (uint64, error) {
	return c.member(ctx, http.MethodPut, group, user, opts)
}

// RemoveMember takes user out of group (code not_found if not a member)
// and returns the revision.
func (c *Client) RemoveMember(ctx context.Context, group, user string, opts ...WriteOption) (uint64, error) {
	return c.member(ctx, http.MethodDelete, group, user, opts)
}

func (c *Client) member(ctx context.Context, method, group, user string, opts []WriteOption) (uint64, error) {
	if err := required("group", group, "user", user); err != nil {
		return 0, err
	}
	var out revisionAnswer
	err := c.write(ctx, request{method: method, segs: []string{"v1", "groups", group, "members", user}}, opts, &out)
	return out.Revision, err
}

// Members lists every member of group, a page of permatrix.MaxPageLimit at
// a time (the server answers no more at once), and the revision the last
// page was read at: each page is read at its own revision, so a group
// changed meanwhile may be listed as it was at neither.
func (c *Client) Members(ctx context.Context, group string) ([]string, uint64, error) {
	var all []string
	for cursor := ""; ; {
		p, err := c.MembersPage(ctx, group, cursor, permatrix.MaxPageLimit)
		if err != nil {
			return nil, 0, err
		}
		all = append(all, p.Members...)
		if p.NextCursor == "" {
			if all == nil {
				all = []string{}
			}
			return all, p.Revision, nil
		}
		// Members come in key order, each page after its cursor: a
		// cursor that does not move forward would loop for ever, all
		// the while growing all.
		if p.NextCursor <= cursor {
			return nil, 0, fmt.Errorf("permatrix client: GET /v1/groups/%s/members: the cursor %q does not advance past %q", group, p.NextCursor, cursor)
		}
		cursor = p.NextCursor
	}
}

// MemberPage is a page of a group's members (MembersPage).
type MemberPage struct {
	Members []string `json:"members"`
	// NextCursor is "" on the last page, else the cursor of the next.
	NextCursor string `json:"next_cursor"`
	Revision   uint64 `json:"revision"`
}

// MembersPage lists at most limit (1 to 1000) members of group after the
// user cursor ("": from the first), in order; Members reads every page.
func (c *Client) MembersPage(ctx context.Context, group, cursor string, limit int) (MemberPage, error) {
	if err := required("group", group); err != nil {
		return MemberPage{}, err
	}
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var p MemberPage
	err := c.call(ctx, request{method: http.MethodGet, segs: []string{"v1", "groups", group, "members"}, query: q}, &p)
	return p, err
}

// PutRole defines or replaces the custom role r.Name of r.System (Blue
// Prism) with r.Permissions, and returns the revision. Unknown permission
// ids, or a system without custom roles, are code unprocessable (422).
func (c *Client) PutRole(ctx context.Context, r permatrix.Role, opts ...WriteOption) (uint64, error) {
	if err := required("system", r.System, "role", r.Name); err != nil {
		return 0, err
	}
	perms := r.Permissions
	if perms == nil {
		perms = []string{}
	}
	in := struct {
		Permissions []string `json:"permissions"`
	}{perms}
	var out revisionAnswer
	err := c.write(ctx, request{method: http.MethodPut, segs: []string{"v1", "systems", r.System, "roles", r.Name}, in: in}, opts, &out)
	return out.Revision, err
}

// Role returns the custom role name of system (code not_found if none).
func (c *Client) Role(ctx context.Context, system, name string) (permatrix.Role, error) {
	if err := required("system", system, "role", name); err != nil {
		return permatrix.Role{}, err
	}
	var r permatrix.Role
	err := c.call(ctx, request{method: http.MethodGet, segs: []string{"v1", "systems", system, "roles", name}}, &r)
	return r, err
}

// DeleteRole deletes the custom role name of system and returns the
// revision.
func (c *Client) DeleteRole(ctx context.Context, system, name string, opts ...WriteOption) (uint64, error) {
	if err := required("system", system, "role", name); err != nil {
		return 0, err
	}
	var out revisionAnswer
	err := c.write(ctx, request{method: http.MethodDelete, segs: []string{"v1", "systems", system, "roles", name}}, opts, &out)
	return out.Revision, err
}

// ProjectWrite is the answer of PutProject: the project as stored, the
// revision, and the assignment its creator got in the same transaction
// where the vendor gives creators a role (nil otherwise). Registering a
// project again makes no such assignment: it answers the creator's while
// the creator still holds it.
type ProjectWrite struct {
	Project           permatrix.Project     `json:"project"`
	Revision          uint64                `json:"revision"`
	CreatorAssignment *permatrix.Assignment `json:"creator_assignment"`
}

func (w *ProjectWrite) revision() uint64 { return w.Revision }

// PutProject registers (or updates) project p.ID of p.System, created by
// p.CreatedBy, of kind p.Kind ("assisted", "unassisted" or "").
func (c *Client) PutProject(ctx context.Context, p permatrix.Project, opts ...WriteOption) (ProjectWrite, error) {
	if err := required("system", p.System, "project id", p.ID); err != nil {
		return ProjectWrite{}, err
	}
	in := struct {
		CreatedBy string `json:"created_by,omitempty"`
		Kind      string `json:"kind,omitempty"`
	}{p.CreatedBy, p.Kind}
	var out ProjectWrite
	err := c.write(ctx, request{method: http.MethodPut, segs: []string{"v1", "systems", p.System, "projects", p.ID}, in: in}, opts, &out)
	return out, err
}

// Project returns project id of system (code not_found if not registered).
func (c *Client) Project(ctx context.Context, system, id string) (permatrix.Project, error) {
	if err := required("system", system, "project id", id); err != nil {
		return permatrix.Project{}, err
	}
	var p permatrix.Project
	err := c.call(ctx, request{method: http.MethodGet, segs: []string{"v1", "systems", system, "projects", id}}, &p)
	return p, err
}

// DeleteProject removes the registration of project id of system (also of a
// system the bundle no longer has) and returns the revision: code conflict
// (409) while assignments are made on it, not_found if not registered,
// forbidden with an actor (only the operator deletes projects).
func (c *Client) DeleteProject(ctx context.Context, system, id string, opts ...WriteOption) (uint64, error) {
	if err := required("system", system, "project id", id); err != nil {
		return 0, err
	}
	var out revisionAnswer
	err := c.write(ctx, request{method: http.MethodDelete, segs: []string{"v1", "systems", system, "projects", id}}, opts, &out)
	return out.Revision, err
}

// ImportResult is the answer of Import and ImportChunks: how far the import
// got.
type ImportResult struct {
	// Lines counts the lines read (blank ones, and an export's header and
	// end, aside).
	Lines int `json:"lines"`
	// Imported counts the lines whose record the import stored;
	// AlreadyStored those whose record was stored already (a line
	// repeating one stores nothing).
	Imported      int `json:"imported"`
	AlreadyStored int `json:"already_stored"`
	// Chunks counts the commits that changed the store, Revision is the
	// last one's, and LastLine the number of the last line committed (an
	// import stopped by a refused line is sent again from the next).
	Chunks   int    `json:"chunks"`
	Revision uint64 `json:"revision"`
	LastLine int    `json:"last_line"`
}

func (r *ImportResult) revision() uint64 { return r.Revision }

// Import streams NDJSON from r — one assignment object per line, as
// permatrix.Assignment marshals, optionally with its own "actor", or a
// record line as ExportRecords writes it — to POST /v1/import. It is all
// or nothing: a refused line (its number in the error's message) stores
// nothing. The server reads the body as it arrives (no --body-limit
// applies to an import) and holds at most 100,000 lines in one
// all-or-nothing import (more: code too_large, nothing stored).
func (c *Client) Import(ctx context.Context, r io.Reader, opts ...WriteOption) (ImportResult, error) {
	var out ImportResult
	err := c.write(ctx, request{method: http.MethodPost, segs: []string{"v1", "import"}, body: r, contentType: "application/x-ndjson"}, opts, &out)
	return out, err
}

// ImportChunks is Import committed chunk lines at a time (POST
// /v1/import?chunk=N, 1 to 50,000; 0 is Import's all or nothing): each
// chunk is one commit with its own revision, so an import has no size
// limit. The first refused line stops it with the server's *Error (its
// line in the message); the chunks before it stay, and the ImportResult
// says how far the import got (LastLine, Imported, AlreadyStored,
// Revision, from the answer's X-Permatrix-Import-* headers; all 0 when
// nothing was committed; Lines and Chunks are not told): send the
// lines after LastLine again, or the whole file (the lines stored are
// no-ops, counted as AlreadyStored) — an export (ExportRecords) whole,
// as it is taken only whole.
func (c *Client) ImportChunks(ctx context.Context, r io.Reader, chunk int, opts ...WriteOption) (ImportResult, error) {
	var out ImportResult
	req := request{method: http.MethodPost, segs: []string{"v1", "import"}, body: r, contentType: "application/x-ndjson",
		query: url.Values{"chunk": {strconv.Itoa(chunk)}}}
	req.failed = func(resp *http.Response) {
		h := resp.Header
		if h.Get(importLastLineHeader) == "" {
			return // nothing committed
		}
		out.LastLine, _ = strconv.Atoi(h.Get(importLastLineHeader))
		out.Imported, _ = strconv.Atoi(h.Get(importedHeader))
		out.AlreadyStored, _ = strconv.Atoi(h.Get(importAlreadyStoredHeader))
		out.Revision, _ = strconv.ParseUint(h.Get(importRevisionHeader), 10, 64)
		c.noteRevision(out.Revision)
	}
	err := c.write(ctx, req, opts, &out)
	return out, err
}

// The headers of a chunked import's error answer: how far it got.
const (
	importedHeader            = "X-Permatrix-Imported"
	importAlreadyStoredHeader = "X-Permatrix-Import-Already-Stored"
	importLastLineHeader      = "X-Permatrix-Import-Last-Line"
	importRevisionHeader      = "X-Permatrix-Import-Revision"
)

// Export streams the whole store (GET /v1/export: one JSON document, also
// valid OPA data for the policies) into w and returns the bytes written. It
// is not bounded by WithMaxResponseBytes. An export the server cuts short
// is an error (the bytes already written are not a whole document).
func (c *Client) Export(ctx context.Context, w io.Writer) (int64, error) {
	return c.export(ctx, w, nil)
}

// ExportRecords streams every record of the store as the lines an import
// takes (GET /v1/export?format=ndjson: custom roles, projects, assignments
// with their ids, group memberships, one a line, between the export's
// header and its end line, which counts them) into w: given to Import or
// ImportChunks of an empty store, it makes the same store. As Export, it
// is not bounded by WithMaxResponseBytes, and one cut short is an error;
// a file of it cut short is refused by the import (code invalid: the end
// line is missing), stored nothing by Import — ImportChunks keeps the
// chunks before, and the whole export imported again completes them.
func (c *Client) ExportRecords(ctx context.Context, w io.Writer) (int64, error) {
	return c.export(ctx, w, url.Values{"format": {"ndjson"}})
}

func (c *Client) export(ctx context.Context, w io.Writer, q url.Values) (int64, error) {
	resp, err := c.send(ctx, request{method: http.MethodGet, segs: []string{"v1", "export"}, query: q})
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("permatrix client: GET /v1/export: after %d bytes: %w", n, err)
	}
	return n, nil
}

// BackupInfo describes a backup: the store revision the copy holds, its
// file format (the bbolt store's format version) and its size in bytes.
type BackupInfo struct {
	Revision uint64
	Format   uint64
	Size     int64
}

// Backup streams a copy of a running server's store (GET /v1/backup: the
// bbolt file at one revision, made from one read transaction) into w. It
// is not bounded by WithMaxResponseBytes. A copy that arrives short of the
// size the server announced is an error: the bytes already written are
// not a store. Whatever arrived, check the file before trusting it
// (`permatrix store backup` does). A server whose store is on etcd
// answers code conflict: copy the cluster with `permatrix store copy`.
func (c *Client) Backup(ctx context.Context, w io.Writer) (BackupInfo, error) {
	const what = "permatrix client: GET /v1/backup"
	resp, err := c.send(ctx, request{method: http.MethodGet, segs: []string{"v1", "backup"}})
	if err != nil {
		return BackupInfo{}, err
	}
	defer resp.Body.Close()
	info := BackupInfo{Size: resp.ContentLength}
	if info.Revision, err = strconv.ParseUint(resp.Header.Get(backupRevisionHeader), 10, 64); err != nil {
		return info, fmt.Errorf("%s: no valid %s header: %w", what, backupRevisionHeader, err)
	}
	if info.Format, err = strconv.ParseUint(resp.Header.Get(backupFormatHeader), 10, 64); err != nil {
		return info, fmt.Errorf("%s: no valid %s header: %w", what, backupFormatHeader, err)
	}
	if info.Size < 0 {
		return info, fmt.Errorf("%s: the answer has no Content-Length: a copy cut short could not be told from a whole one", what)
	}
	n, err := io.Copy(w, resp.Body)
	if err == nil && n != info.Size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return info, fmt.Errorf("%s: after %d of %d bytes: %w", what, n, info.Size, err)
	}
	return info, nil
}

// The headers of GET /v1/backup.
const (
	backupRevisionHeader = "X-Permatrix-Revision"
	backupFormatHeader   = "X-Permatrix-Store-Format"
)
