package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/client"
	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/listen"
	"github.com/permatrix/permatrix/test/harness"
)

const tm = "celonis-task-mining"

func grant(user, perm string, scope permatrix.Scope) permatrix.Assignment {
	return permatrix.Assignment{Subject: "user:" + user, System: tm, Permission: perm, Scope: scope}
}

func projectScope(id string) permatrix.Scope { return permatrix.Scope{Type: "project", ID: id} }

// wantError asserts that err is the server's answer with this status and
// code, its message holding msg, readable both as *client.Error and as
// *permatrix.Error.
func wantError(t *testing.T, err error, status int, code, msg string) *client.Error {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) {
		t.Fatalf("want a *client.Error %d %s, got %T %v", status, code, err, err)
	}
	if e.StatusCode != status || e.Code != code || !strings.Contains(e.Message, msg) {
		t.Fatalf("want %d %s %q, got %d %s %q", status, code, msg, e.StatusCode, e.Code, e.Message)
	}
	var pe *permatrix.Error
	if !errors.As(err, &pe) || pe.Code != code || permatrix.ErrorCode(err) != code || permatrix.ErrorMessage(err) != e.Message {
		t.Fatalf("errors.As *permatrix.Error / ErrorCode: %v %v", pe, permatrix.ErrorCode(err))
	}
	return e
}

func TestNewRefusesBadBaseURLs(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:8181", "ftp://host", "http://", "http://u:p@host", "http://host/?x=1", "http://host/#f", "unix://relative.sock", "unix://host/x.sock", "unix:relative"} {
		if _, err := client.New(u); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
	if _, err := client.New("http://127.0.0.1:8181", client.WithMaxResponseBytes(0)); err == nil {
		t.Error("a zero response bound accepted")
	}
	if _, err := client.New("unix:///run/p.sock", client.WithHTTPClient(&http.Client{Transport: roundTripper{}})); err == nil {
		t.Error("a unix socket over a transport that cannot dial it accepted")
	}
}

type roundTripper struct{}

func (roundTripper) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("unused")
}

// Every kind of refusal is an *Error with the server's status, code and
// message; nothing is stored.
func TestErrorsCarryTheServersAnswer(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	c := s.API()
	ctx := context.Background()

	_, _, err := c.CreateAssignment(ctx, grant("ann", "create_project", projectScope("p1")))
	e := wantError(t, err, 422, permatrix.EUNPROCESSABLE, "scope")
	if e.RequestID == "" {
		t.Error("no request id")
	}
	_, _, err = c.CreateAssignment(ctx, permatrix.Assignment{Subject: "ann", System: tm, Role: "admin", Scope: permatrix.ServiceScope})
	wantError(t, err, 400, permatrix.EINVALID, "user:<id>")
	_, err = c.Assignment(ctx, "no-such-id")
	wantError(t, err, 404, permatrix.ENOTFOUND, "")
	_, err = c.DeleteAssignment(ctx, "no-such-id")
	wantError(t, err, 404, permatrix.ENOTFOUND, "")
	_, err = s.NewClient().Assignments(ctx, permatrix.AssignmentFilter{})
	wantError(t, err, 401, permatrix.EUNAUTHORIZED, "admin token")
	_, err = s.NewClient(client.WithToken("wrong")).Import(ctx, strings.NewReader("{}"))
	wantError(t, err, 401, permatrix.EUNAUTHORIZED, "")
	_, err = c.Check(ctx, permatrix.Check{Subject: "ann", System: "nope", Action: "x"})
	wantError(t, err, 400, permatrix.EINVALID, "unknown system")
	_, err = c.Assignments(ctx, permatrix.AssignmentFilter{Limit: 1001})
	wantError(t, err, 400, permatrix.EINVALID, "limit")
	_, err = c.PutRole(ctx, permatrix.Role{System: tm, Name: "custom", Permissions: []string{"edit_users"}})
	wantError(t, err, 422, permatrix.EUNPROCESSABLE, "")
	_, err = c.System(ctx, "nope")
	wantError(t, err, 404, permatrix.ENOTFOUND, "unknown system")

	// An empty id is refused before any request: it would address the list.
	if _, err := c.Assignment(ctx, ""); permatrix.ErrorCode(err) != permatrix.EINVALID {
		t.Fatalf("empty id: %v", err)
	}
	if _, err := c.AddMember(ctx, "ops", ""); permatrix.ErrorCode(err) != permatrix.EINVALID {
		t.Fatalf("empty user: %v", err)
	}

	var export strings.Builder
	if _, err := c.Export(ctx, &export); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(export.String(), "user:ann") {
		t.Fatalf("a refused write was stored: %s", export.String())
	}
}

// The actor option makes the write on behalf of a user: the delegation
// rules refuse what that user may not do (403), the operator may.
func TestActor(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	c := s.API()
	ctx := context.Background()
	const cloud = "uipath-task-mining-cloud"
	px := projectScope("px")
	ba := permatrix.Assignment{Subject: "user:ba", System: cloud, Role: "business_analyst", Scope: px}
	if _, _, err := c.CreateAssignment(ctx, ba); err != nil {
		t.Fatal(err)
	}
	ru := permatrix.Assignment{Subject: "user:ru", System: cloud, Role: "recording_user", Scope: px}
	_, _, err := c.CreateAssignment(ctx, ru, client.Actor("ba"))
	wantError(t, err, 403, permatrix.EFORBIDDEN, "")
	// An empty actor is refused, never taken for the operator.
	_, _, err = c.CreateAssignment(ctx, ru, client.Actor(""))
	wantError(t, err, 400, permatrix.EINVALID, "X-Permatrix-Actor")
	if _, _, err := c.CreateAssignment(ctx, ru); err != nil {
		t.Fatalf("the operator: %v", err)
	}
	// A user's import line is judged with the header's actor too.
	line := `{"subject":"user:ru2","system":"uipath-task-mining-cloud","role":"recording_user","scope":{"type":"project","id":"px"}}`
	_, err = c.Import(ctx, strings.NewReader(line), client.Actor("ba"))
	wantError(t, err, 403, permatrix.EFORBIDDEN, "line 1")
}

// Paging: Assignments pages with a cursor; AllAssignments walks every page
// and stops when the caller does.
func TestAssignmentsPagesAndIterator(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	c := s.API()
	ctx := context.Background()
	ids := map[string]bool{}
	for i := range 25 {
		a, rev, err := c.CreateAssignment(ctx, grant(fmt.Sprintf("u%02d", i), "edit_users", projectScope(fmt.Sprintf("p%d", i%3))))
		if err != nil || a.ID == "" || rev == 0 || a.Subject != fmt.Sprintf("user:u%02d", i) {
			t.Fatalf("create: %+v %d %v", a, rev, err)
		}
		ids[a.ID] = true
	}
	p, err := c.Assignments(ctx, permatrix.AssignmentFilter{Limit: 10})
	if err != nil || len(p.Assignments) != 10 || p.NextCursor == "" {
		t.Fatalf("first page: %d %q %v", len(p.Assignments), p.NextCursor, err)
	}
	seen := map[string]bool{}
	for a, err := range c.AllAssignments(ctx, permatrix.AssignmentFilter{Limit: 10}) {
		if err != nil {
			t.Fatal(err)
		}
		if seen[a.ID] || !ids[a.ID] {
			t.Fatalf("%s twice or unknown", a.ID)
		}
		seen[a.ID] = true
	}
	if len(seen) != 25 {
		t.Fatalf("iterated %d of 25", len(seen))
	}
	n := 0
	for a, err := range c.AllAssignments(ctx, permatrix.AssignmentFilter{ScopeType: "project", ScopeID: "p1", Limit: 3}) {
		if err != nil || a.Scope.ID != "p1" {
			t.Fatalf("filtered: %+v %v", a, err)
		}
		n++
	}
	if n != 8 {
		t.Fatalf("p1 holds 8 of them, iterated %d", n)
	}
	n = 0
	for range c.AllAssignments(ctx, permatrix.AssignmentFilter{Limit: 2}) {
		if n++; n == 3 {
			break
		}
	}
	if n != 3 {
		t.Fatalf("break: %d", n)
	}
	// An error ends the iteration as its last pair.
	var last error
	for _, err := range s.NewClient().AllAssignments(ctx, permatrix.AssignmentFilter{}) {
		last = err
	}
	wantError(t, last, 401, permatrix.EUNAUTHORIZED, "")

	// Get and delete; the delete's revision is a token for the next check.
	var one string
	for id := range ids {
		one = id
		break
	}
	got, err := c.Assignment(ctx, one)
	if err != nil || got.ID != one {
		t.Fatalf("get: %+v %v", got, err)
	}
	rev, err := c.DeleteAssignment(ctx, one)
	if err != nil || rev == 0 {
		t.Fatalf("delete: %d %v", rev, err)
	}
	_, err = c.DeleteAssignment(ctx, one)
	wantError(t, err, 404, permatrix.ENOTFOUND, "")
	d, err := c.Check(ctx, permatrix.Check{Subject: strings.TrimPrefix(got.Subject, "user:"), System: tm, Action: "edit_users", Resource: &got.Scope, MinRevision: rev})
	if err != nil || d.Allow || d.Revision < rev {
		t.Fatalf("after the delete at %d: %+v %v", rev, d, err)
	}
}

// min_revision: a check asking for a revision the store has not reached
// waits, then answers 503 naming it; WithReadYourWrites sends the client's
// own latest write.
func TestMinRevision(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	c := s.NewClient(client.WithToken(harness.Token), client.WithReadYourWrites())
	ctx := context.Background()
	_, rev, err := c.CreateAssignment(ctx, grant("ann", "edit_users", permatrix.ServiceScope))
	if err != nil {
		t.Fatal(err)
	}
	if c.Revision() != rev {
		t.Fatalf("Revision %d, the write returned %d", c.Revision(), rev)
	}
	ch := permatrix.Check{Subject: "ann", System: tm, Action: "edit_users"}
	if d, err := c.Check(ctx, ch); err != nil || !d.Allow || d.Revision < rev {
		t.Fatalf("read your writes: %+v %v", d, err)
	}
	ahead := rev + 1000
	ch.MinRevision = ahead
	_, err = c.Check(ctx, ch)
	wantError(t, err, 503, permatrix.EUNAVAILABLE, fmt.Sprint(ahead))
	res, err := c.CheckBatch(ctx, []permatrix.Check{ch, {Subject: "ann", System: tm, Action: "edit_users"}})
	if err != nil || len(res) != 2 || permatrix.ErrorCode(res[0].Err) != permatrix.EUNAVAILABLE || res[1].Decision == nil || !res[1].Decision.Allow {
		t.Fatalf("batch with one item ahead: %+v %v", res, err)
	}
}

func TestCheckBatch(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	c := s.API()
	ctx := context.Background()
	s.Assign(grant("ann", "edit_users", permatrix.ServiceScope))
	res, err := c.CheckBatch(ctx, []permatrix.Check{
		{Subject: "ann", System: tm, Action: "edit_users"},
		{Subject: "ann", System: tm, Action: "fly"},
		{Subject: "bob", System: tm, Action: "edit_users"},
	})
	if err != nil || len(res) != 3 {
		t.Fatalf("%v %v", res, err)
	}
	if res[0].Decision == nil || !res[0].Decision.Allow || res[2].Decision == nil || res[2].Decision.Allow {
		t.Fatalf("decisions: %+v", res)
	}
	var e *client.Error
	if res[1].Decision != nil || !errors.As(res[1].Err, &e) || e.Code != permatrix.EINVALID || e.StatusCode != 0 || !strings.Contains(e.Message, "unknown action") {
		t.Fatalf("invalid item: %+v", res[1])
	}
	if _, err := c.CheckBatch(ctx, make([]permatrix.Check, client.MaxBatch+1)); permatrix.ErrorCode(err) != permatrix.EINVALID {
		t.Fatalf("over the batch limit: %v", err)
	}
	if res, err := c.CheckBatch(ctx, nil); err != nil || len(res) != 0 {
		t.Fatalf("empty batch: %v %v", res, err)
	}
}

// Groups, custom roles (a name with a slash is one path segment), projects.
func TestGroupsRolesProjects(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	c := s.API()
	ctx := context.Background()
	s.Assign(permatrix.Assignment{Subject: "group:a/b", System: tm, Permission: "edit_users", Scope: permatrix.ServiceScope})
	if _, err := c.AddMember(ctx, "a/b", "gus"); err != nil {
		t.Fatal(err)
	}
	if m, rev, err := c.Members(ctx, "a/b"); err != nil || fmt.Sprint(m) != "[gus]" || rev == 0 {
		t.Fatalf("members: %v %d %v", m, rev, err)
	}
	if !s.Allowed(permatrix.Check{Subject: "gus", System: tm, Action: "edit_users"}) {
		t.Fatal("member of a/b denied")
	}
	if _, err := c.RemoveMember(ctx, "a/b", "gus"); err != nil {
		t.Fatal(err)
	}
	_, err := c.RemoveMember(ctx, "a/b", "gus")
	wantError(t, err, 404, permatrix.ENOTFOUND, "")

	role := permatrix.Role{System: "blueprism", Name: "dev/ops", Permissions: []string{"edit_process"}}
	if _, err := c.PutRole(ctx, role); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Role(ctx, "blueprism", "dev/ops"); err != nil || r.Name != "dev/ops" || fmt.Sprint(r.Permissions) != "[edit_process]" {
		t.Fatalf("role: %+v %v", r, err)
	}
	_, err = c.PutRole(ctx, permatrix.Role{System: "blueprism", Name: "x", Permissions: []string{"no_such_permission"}})
	wantError(t, err, 422, permatrix.EUNPROCESSABLE, "no_such_permission")
	if _, err := c.DeleteRole(ctx, "blueprism", "dev/ops"); err != nil {
		t.Fatal(err)
	}
	_, err = c.Role(ctx, "blueprism", "dev/ops")
	wantError(t, err, 404, permatrix.ENOTFOUND, "")

	w, err := c.PutProject(ctx, permatrix.Project{System: tm, ID: "p1", CreatedBy: "ann", Kind: "assisted"})
	if err != nil || w.Revision == 0 || w.Project.CreatedBy != "ann" || w.CreatorAssignment != nil {
		t.Fatalf("project: %+v %v", w, err)
	}
	if p, err := c.Project(ctx, tm, "p1"); err != nil || p.Kind != "assisted" || p.ID != "p1" {
		t.Fatalf("get project: %+v %v", p, err)
	}
	_, err = c.PutProject(ctx, permatrix.Project{System: tm, ID: "p2", Kind: "weird"})
	wantError(t, err, 400, permatrix.EINVALID, "kind")
	s.Assign(permatrix.Assignment{Subject: "user:ann", System: tm, Permission: "edit_users", Scope: projectScope("p1")})
	_, err = c.DeleteProject(ctx, tm, "p1")
	wantError(t, err, 409, permatrix.ECONFLICT, "remove them first")
	if a, err := c.Assignments(ctx, permatrix.AssignmentFilter{System: tm, ScopeType: "project", ScopeID: "p1"}); err != nil || len(a.Assignments) != 1 {
		t.Fatalf("assignments on p1: %+v %v", a, err)
	} else if _, err := c.DeleteAssignment(ctx, a.Assignments[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteProject(ctx, tm, "p1"); err != nil {
		t.Fatal(err)
	}
	_, err = c.Project(ctx, tm, "p1")
	wantError(t, err, 404, permatrix.ENOTFOUND, "")

	sys, err := c.Systems(ctx)
	if err != nil || len(sys) < 7 {
		t.Fatalf("systems: %d %v", len(sys), err)
	}
}

// Import reads the NDJSON as it streams (here from a pipe written line by
// line); a refused line stores nothing. Export streams the store.
func TestImportStreamsAndExport(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	c := s.API()
	ctx := context.Background()
	pr, pw := io.Pipe()
	go func() {
		for i := range 50 {
			fmt.Fprintf(pw, `{"subject":"user:i%d","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"service"}}`+"\n", i)
		}
		pw.Close()
	}()
	res, err := c.Import(ctx, pr)
	if err != nil || res.Imported != 50 || res.Revision == 0 {
		t.Fatalf("import: %+v %v", res, err)
	}
	bad := `{"subject":"user:ok","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"service"}}
{"subject":"user:x","system":"celonis-task-mining","permission":"create_project","scope":{"type":"project","id":"p"}}
`
	_, err = c.Import(ctx, strings.NewReader(bad))
	wantError(t, err, 422, permatrix.EUNPROCESSABLE, "line 2")
	var out strings.Builder
	n, err := c.Export(ctx, &out)
	if err != nil || n != int64(out.Len()) || !strings.Contains(out.String(), `"user:i49"`) || strings.Contains(out.String(), `"user:ok"`) {
		t.Fatalf("export (%d bytes): %v", n, err)
	}
	// Export is not bounded by the response bound; JSON answers are.
	small := s.NewClient(client.WithToken(harness.Token), client.WithMaxResponseBytes(512))
	if _, err := small.Export(ctx, io.Discard); err != nil {
		t.Fatalf("export with a small bound: %v", err)
	}
	if _, err := small.Assignments(ctx, permatrix.AssignmentFilter{Limit: 50}); err == nil || !strings.Contains(err.Error(), "over 512 bytes") {
		t.Fatalf("50 assignments in 512 bytes: %v", err)
	}
	_, err = s.NewClient().Export(ctx, io.Discard)
	wantError(t, err, 401, permatrix.EUNAUTHORIZED, "")
}

// A canceled context ends a call with the context's error.
func TestContext(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.API().Check(ctx, permatrix.Check{Subject: "a", System: tm, Action: "edit_users"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
	// A min_revision wait ends at the caller's deadline.
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.API().Check(ctx, permatrix.Check{Subject: "a", System: tm, Action: "edit_users", MinRevision: 1 << 40})
	if err == nil || time.Since(start) > 900*time.Millisecond {
		t.Fatalf("deadline: %v after %v", err, time.Since(start))
	}
}

// The client over a unix socket and over TLS.
func TestUnixSocketAndTLS(t *testing.T) {
	dir, err := os.MkdirTemp("", "pmx") // socket paths are short
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := harness.Start(t, harness.Options{Addr: "unix://" + filepath.Join(dir, "p.sock")})
	if !strings.HasPrefix(s.URL, "unix://") {
		t.Fatal(s.URL)
	}
	c := s.API()
	if c.URL() != s.URL {
		t.Fatalf("URL %s", c.URL())
	}
	if _, _, err := c.CreateAssignment(context.Background(), grant("ann", "edit_users", permatrix.ServiceScope)); err != nil {
		t.Fatal(err)
	}
	if h, err := c.Ready(context.Background()); err != nil || h.Status != "ok" {
		t.Fatalf("ready over the socket: %+v %v", h, err)
	}

	certs := harness.NewCerts(t)
	cfg, err := listen.TLSFiles{CertFile: certs.ServerCert, KeyFile: certs.ServerKey, ClientCAFile: certs.CAFile}.Config()
	if err != nil {
		t.Fatal(err)
	}
	ts := harness.Start(t, harness.Options{TLS: cfg})
	tc, err := client.New(ts.URL, client.WithHTTPClient(&http.Client{Transport: &http.Transport{TLSClientConfig: certs.ClientTLS(true)}}))
	if err != nil {
		t.Fatal(err)
	}
	if d, err := tc.Check(context.Background(), permatrix.Check{Subject: "a", System: tm, Action: "edit_users"}); err != nil || d.Allow {
		t.Fatalf("check over mTLS: %+v %v", d, err)
	}
	noCert, _ := client.New(ts.URL, client.WithHTTPClient(&http.Client{Transport: &http.Transport{TLSClientConfig: certs.ClientTLS(false)}}))
	if _, err := noCert.Ready(context.Background()); err == nil {
		t.Fatal("mTLS without a client certificate answered")
	}
}

// Ready and Live; a server that is not ready answers with what is missing.
func TestHealth(t *testing.T) {
	s := harness.Start(t, harness.Options{Diagnostic: true})
	ctx := context.Background()
	for _, u := range []string{s.URL, s.DiagnosticURL} {
		c, _ := client.New(u)
		if h, err := c.Ready(ctx); err != nil || h.Status != "ok" || !h.BundleLoaded || !h.DBOpen || !h.Store.Ready {
			t.Fatalf("%s ready: %+v %v", u, h, err)
		}
		if err := c.Live(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing listening: a port held bound, not listening (a port found
	// free and closed could be another test process's by the dial).
	dead := "http://" + harness.ReservePort(t).Addr
	c, _ := client.New(dead)
	if _, err := c.Ready(ctx); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("nothing listening: %v", err)
	}
	// Closing the store makes the server not ready: 503 with the reason.
	if err := s.DB.Close(); err != nil {
		t.Fatal(err)
	}
	h, err := s.NewClient().Ready(ctx)
	e := wantError(t, err, 503, permatrix.EUNAVAILABLE, "not ready")
	if h == nil || h.Status != "unavailable" {
		t.Fatalf("report: %+v (%s)", h, e.Message)
	}
}

// Behind a real reverse proxy (nginx): the base URL's path prefix is kept,
// and the proxy's own error pages (no envelope) are errors with the code of
// their status.
func TestBehindAProxy(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	dead := harness.ReservePort(t).Addr // refused throughout, as a port found free and closed is not
	proxy := startNginx(t, fmt.Sprintf(`
  location "/perma trix/" { proxy_pass %s/; }
  location /down/ { proxy_pass http://%s/; }`, s.URL, dead))

	c, err := client.New(proxy+"/perma%20trix/", client.WithToken(harness.Token))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	role := permatrix.Role{System: "blueprism", Name: "a b", Permissions: []string{"edit_process"}}
	if _, err := c.PutRole(ctx, role); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Role(ctx, "blueprism", "a b"); err != nil || r.Name != "a b" {
		t.Fatalf("through the proxy: %+v %v", r, err)
	}
	_, err = c.Assignment(ctx, "nope")
	wantError(t, err, 404, permatrix.ENOTFOUND, "") // the server's envelope, through the proxy

	down, _ := client.New(proxy + "/down")
	_, err = down.Check(ctx, permatrix.Check{Subject: "a", System: tm, Action: "edit_users"})
	e := wantError(t, err, 502, permatrix.EUNAVAILABLE, "unexpected answer 502 Bad Gateway")
	if !strings.Contains(e.Message, "nginx") {
		t.Fatalf("the proxy's page should be quoted: %s", e.Message)
	}
	nowhere, _ := client.New(proxy + "/elsewhere")
	_, err = nowhere.Check(ctx, permatrix.Check{Subject: "a", System: tm, Action: "edit_users"})
	wantError(t, err, 404, permatrix.ENOTFOUND, "unexpected answer 404")
}

// startNginx runs nginx with the locations in one server block and returns
// its URL (harness.StartNginx: on a port of its own).
func startNginx(t *testing.T, locations string) string {
	t.Helper()
	return harness.StartNginx(t, func(dir, addr, readiness string) string {
		return fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  %[4]s
  server {
    listen %[2]s;
%[3]s
  }
}
`, dir, addr, locations, readiness)
	})
}

// JSON cannot carry a string that is not valid UTF-8: encoding/json sent
// U+FFFD in place of each bad byte, so the server stored, or decided for,
// another id than the caller's — one that "jos\xe9" and "jos\xe8" share.
// The client refuses such a body before sending it (a batch's bad check
// fails alone), as the server refuses such an id in a path or a header.
func TestInvalidUTF8IsNotSent(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	c := s.API()
	ctx := context.Background()
	var before strings.Builder
	if _, err := c.Export(ctx, &before); err != nil {
		t.Fatal(err)
	}
	local := func(what string, err error, at string) {
		t.Helper()
		var pe *permatrix.Error
		if !errors.As(err, &pe) || pe.Code != permatrix.EINVALID || !strings.Contains(pe.Message, at+" is not valid UTF-8") {
			t.Errorf("%s: %v, want a client-side invalid error naming %s", what, err, at)
		}
		var ce *client.Error
		if errors.As(err, &ce) {
			t.Errorf("%s: the request was sent: %v", what, err)
		}
	}
	_, _, err := c.CreateAssignment(ctx, grant("jos\xe9", "edit_users", projectScope("p1")))
	local("assignment subject", err, "subject")
	_, _, err = c.CreateAssignment(ctx, grant("jose", "edit_users", projectScope("p\xff")))
	local("assignment scope id", err, "scope.id")
	_, err = c.PutRole(ctx, permatrix.Role{System: "blueprism", Name: "r", Permissions: []string{"edit_process", "edit\xff"}})
	local("role permission", err, "permissions[1]")
	_, err = c.PutProject(ctx, permatrix.Project{System: "uipath-task-mining-cloud", ID: "p1", CreatedBy: "a\xff"})
	local("project creator", err, "created_by")
	_, err = c.Check(ctx, permatrix.Check{Subject: "jos\xe9", System: tm, Action: "edit_users"})
	local("check subject", err, "subject")
	_, err = c.Check(ctx, permatrix.Check{Subject: "jose", System: tm, Action: "edit_users", Context: map[string]any{"k": []any{"\xff"}}})
	local("check context", err, "context.k[0]")
	res, err := c.CheckBatch(ctx, []permatrix.Check{
		{Subject: "jose", System: tm, Action: "edit_users"},
		{Subject: "jose", System: tm, Action: "edit_users", Groups: []string{"g\xe9"}},
	})
	if err != nil || len(res) != 2 || res[0].Decision == nil || res[0].Err != nil {
		t.Fatalf("batch: %+v %v", res, err)
	}
	var ie *client.Error
	if !errors.As(res[1].Err, &ie) || ie.Code != permatrix.EINVALID || !strings.Contains(ie.Message, "groups[0] is not valid UTF-8") {
		t.Fatalf("batch item with a bad group: %v", res[1].Err)
	}
	var after strings.Builder
	if _, err := c.Export(ctx, &after); err != nil {
		t.Fatal(err)
	}
	if after.String() != before.String() {
		t.Fatalf("the store changed:\n%s\n%s", before.String(), after.String())
	}
}

// Backup streams the store file at one revision: a sound store there. On
// an etcd store the server has none to send (409).
func TestBackup(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	c := s.API()
	ctx := context.Background()
	_, rev, err := c.CreateAssignment(ctx, grant("bk", "edit_users", permatrix.ServiceScope))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, err := c.Backup(ctx, f)
	if harness.StoreKind() == "etcd" {
		wantError(t, err, 409, permatrix.ECONFLICT, "store copy --from etcd://")
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != info.Size || info.Revision < rev || info.Format != 3 {
		t.Fatalf("backup %+v, file %v %v", info, fi, err)
	}
	r, err := bolt.Check(path)
	if err != nil || r.Revision != info.Revision || r.Assignments != 1 {
		t.Fatalf("the backup: %+v %v", r, err)
	}
}

// TestSelfReferringBodyIsAnError: a check whose context holds itself is
// an encoding error, in a single check and in a batch; the UTF-8 walk
// (which follows values) ran first and never ended, overflowing the stack.
// A real U+FFFD in an id is sent as it is.
func TestSelfReferringBodyIsAnError(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	c := s.API()
	ctx := context.Background()
	loop := map[string]any{}
	loop["self"] = loop
	ch := permatrix.Check{Subject: "ann", System: "celonis-task-mining", Action: "edit_users", Context: loop}
	if _, err := c.Check(ctx, ch); err == nil || !strings.Contains(err.Error(), "encoding") {
		t.Errorf("a self-referring context: %v, want an encoding error", err)
	}
	if _, err := c.CheckBatch(ctx, []permatrix.Check{ch}); err == nil {
		t.Error("a self-referring context in a batch: no error")
	}
	if _, err := c.Check(ctx, permatrix.Check{Subject: "ann\ufffd", System: "celonis-task-mining", Action: "edit_users"}); err != nil {
		t.Errorf("a subject holding U+FFFD itself: %v", err)
	}
}

// Members reads a group larger than a page a page at a time: every member,
// in order, once.
func TestMembersOfMoreThanAPage(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	c := s.API()
	ctx := context.Background()
	var lines strings.Builder
	var want []string
	for i := range permatrix.MaxPageLimit + 2 {
		u := fmt.Sprintf("u%05d", i)
		want = append(want, u)
		fmt.Fprintf(&lines, `{"membership":{"group":"big","user":%q}}`+"\n", u)
	}
	if _, err := c.Import(ctx, strings.NewReader(lines.String())); err != nil {
		t.Fatal(err)
	}
	m, rev, err := c.Members(ctx, "big")
	if err != nil || rev == 0 || fmt.Sprint(m) != fmt.Sprint(want) {
		t.Fatalf("members: %d of %d, revision %d, %v", len(m), len(want), rev, err)
	}
	if m, _, err := c.Members(ctx, "none"); err != nil || m == nil || len(m) != 0 {
		t.Fatalf("an unknown group's members: %#v %v", m, err)
	}
}

// A filter no index serves (a system and a scope type without its id)
// matching nothing on a store of many assignments: each page stops after
// its read budget, empty, with a cursor further on; AllAssignments follows
// them to the end in a few requests, yielding nothing and no error — it
// neither stops at the first empty page nor pages for ever.
func TestAllAssignmentsEndsWhereNothingMatches(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	ctx := context.Background()
	const stored = 4000
	var lines strings.Builder
	for i := range stored {
		fmt.Fprintf(&lines, `{"subject":"user:u%05d","system":%q,"permission":"edit_users","scope":{"type":"service"}}`+"\n", i, tm)
	}
	if _, err := s.API().Import(ctx, strings.NewReader(lines.String())); err != nil {
		t.Fatal(err)
	}
	var requests atomic.Int64
	hc := *s.Client
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	hc.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		requests.Add(1)
		return base.RoundTrip(r)
	})
	c := s.NewClient(client.WithToken(harness.Token), client.WithHTTPClient(&hc))
	for a, err := range c.AllAssignments(ctx, permatrix.AssignmentFilter{System: tm, ScopeType: "project", Limit: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		t.Fatalf("matched %+v", a)
	}
	// A page of limit 1 reads 16 × 2 + 1024 entries at most: 4 pages
	// read 4,000, and a page cannot read fewer than 1,024 but at the end.
	if got := requests.Load(); got < 2 || got > stored/1024+1 {
		t.Errorf("%d requests to list nothing of %d assignments, want between 2 and %d", got, stored, stored/1024+1)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
