package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/decisionlog"
	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/internal/matrix"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
)

// do sends a request to h and decodes a JSON answer into out (if not nil).
func do(t *testing.T, h http.Handler, method, path string, body []byte, token string, out any) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if out != nil && strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
			t.Fatalf("%s %s: %v %s", method, path, err, w.Body)
		}
	}
	return w
}

// TestMatrixEndpoint: GET /v1/matrix/{system} is the matrix the CLI
// builds from the same bundle, concurrent first requests included; an
// unknown system is a 404 in the envelope.
func TestMatrixEndpoint(t *testing.T) {
	h := newDocTestServer(t).Handler()
	b, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	want, err := matrix.Build(context.Background(), b, "uipath-task-mining-cloud", matrix.Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantJSON, _ := json.Marshal(want)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			var got matrix.Matrix
			w := do(t, h, http.MethodGet, "/v1/matrix/uipath-task-mining-cloud", nil, "", &got)
			gotJSON, _ := json.Marshal(got)
			if w.Code != http.StatusOK || !bytes.Equal(gotJSON, wantJSON) {
				t.Errorf("GET /v1/matrix: %d, differs from matrix.Build: %s", w.Code, w.Body.String()[:min(200, w.Body.Len())])
			}
		})
	}
	wg.Wait()
	var e struct {
		Error struct{ Code, Message string }
	}
	if w := do(t, h, http.MethodGet, "/v1/matrix/no-such-system", nil, "", &e); w.Code != http.StatusNotFound || e.Error.Code != "not_found" {
		t.Errorf("unknown system: %d %+v", w.Code, e)
	}
}

// TestExplainEndpoint: a cell's explanation, and the refusals.
func TestExplainEndpoint(t *testing.T) {
	h := newDocTestServer(t).Handler()
	var x struct {
		Cell      matrix.Cell
		Rules     []opa.Rule
		Citations []struct {
			Document string
			Line     int
			Source   string
		}
	}
	w := do(t, h, http.MethodGet, "/v1/matrix/celonis-task-mining/explain?holder=admin&action=edit_users&scope=service", nil, "", &x)
	if w.Code != http.StatusOK || !x.Cell.Allow || len(x.Rules) == 0 || len(x.Citations) == 0 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	found := false
	for _, c := range x.Citations {
		found = found || c.Document == "celonis-task-mining-permissions-older.txt" && c.Line == 4
	}
	if !found {
		t.Errorf("the admin cell does not cite \"Admins have always all permissions.\": %+v", x.Citations)
	}
	for _, tc := range []struct {
		query string
		code  int
	}{
		{"holder=admin&action=edit_users&scope=project", http.StatusOK},
		{"holder=nobody&action=edit_users&scope=service", http.StatusNotFound},
		{"holder=admin&action=create_project&scope=project", http.StatusNotFound},
		{"action=edit_users&scope=service", http.StatusBadRequest},
		{"holder=admin&action=edit_users&scope=%00", http.StatusBadRequest},
	} {
		if w := do(t, h, http.MethodGet, "/v1/matrix/celonis-task-mining/explain?"+tc.query, nil, "", nil); w.Code != tc.code {
			t.Errorf("%s: %d, want %d: %s", tc.query, w.Code, tc.code, w.Body)
		}
	}
}

// candidate writes the repository's policies and data, changed by edit,
// as a .tar.gz bundle.
func candidate(t *testing.T, edit func(dir string)) []byte {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join("..", "..")
	if err := os.CopyFS(filepath.Join(dir, "policies"), os.DirFS(filepath.Join(root, "policies"))); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dir, "systems"), os.DirFS(filepath.Join(root, "systems"))); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(dir)
	}
	b, err := opa.ReadBundle(context.Background(), dir, opa.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := opa.WriteBundle(&buf, b, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestMatrixDiffEndpoint: the operator's only; the serving bundle itself
// changes nothing; a changed catalog changes its cells; uploads that are
// not bundles, reach the network or lack the system are 422s.
func TestMatrixDiffEndpoint(t *testing.T) {
	h := newDocTestServer(t).Handler()
	same := candidate(t, nil)
	const path = "/v1/matrix/uipath-task-mining-suite/diff"
	if w := do(t, h, http.MethodPost, path, same, "", nil); w.Code != http.StatusUnauthorized {
		t.Errorf("without the token: %d", w.Code)
	}
	type answer struct {
		Diff  matrix.Diff
		Error struct{ Code, Message string }
	}
	var a answer
	if w := do(t, h, http.MethodPost, path, same, docTestToken, &a); w.Code != http.StatusOK || len(a.Diff.Changes) != 0 || a.Diff.Cells == 0 {
		t.Errorf("the serving bundle as candidate: %d %+v", w.Code, a)
	}

	// A Process SME may now install the desktop app (the catalog's matrix
	// is what the suite's Rego reads): process_sme × install_desktop_app
	// flips wherever the matrix checks it.
	changed := candidate(t, func(dir string) {
		f := filepath.Join(dir, "systems", "uipath-task-mining-suite", "data.json")
		var doc map[string]any
		raw, _ := os.ReadFile(f)
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		doc["matrix"].(map[string]any)["process_sme"].(map[string]any)["install_desktop_app"] = true
		raw, _ = json.Marshal(doc)
		os.WriteFile(f, raw, 0o644)
	})
	a = answer{}
	if w := do(t, h, http.MethodPost, path, changed, docTestToken, &a); w.Code != http.StatusOK {
		t.Fatalf("changed candidate: %d %s", w.Code, w.Body)
	}
	var flips []string
	for _, c := range a.Diff.Changes {
		if c.Was == nil || c.Now == nil || *c.Was || !*c.Now || c.Role != "process_sme" || c.Action != "install_desktop_app" {
			t.Errorf("unexpected change %+v", c)
		}
		flips = append(flips, c.Role+"@"+c.Scope)
	}
	if len(flips) == 0 || a.Diff.CandidateRevision == a.Diff.BaseRevision {
		t.Errorf("changes %v, revisions %s → %s", flips, a.Diff.BaseRevision, a.Diff.CandidateRevision)
	}

	network := candidate(t, func(dir string) {
		os.WriteFile(filepath.Join(dir, "policies", "uipath", "exfil.rego"), []byte("package permatrix.uipath_exfil\n\nleak := http.send({\"method\": \"get\", \"url\": \"http://127.0.0.1:9\"})\n"), 0o644)
	})
	// A schema's $ref is loaded from any file or host.
	schema := candidate(t, func(dir string) {
		os.WriteFile(filepath.Join(dir, "policies", "uipath", "exfil.rego"), []byte("package permatrix.uipath_exfil\n\nleak := json.match_schema({}, {\"$ref\": \"file:///etc/hostname\"})\n"), 0o644)
	})
	for _, tc := range []struct {
		name string
		body []byte
		code int
		msg  string
	}{
		{"empty", nil, http.StatusBadRequest, "must be a .tar.gz"},
		{"schema builtin", schema, http.StatusUnprocessableEntity, "policies/uipath/exfil.rego:3 json.match_schema"},
		{"not a bundle", []byte("hello"), http.StatusUnprocessableEntity, "not a .tar.gz"},
		{"network builtin", network, http.StatusUnprocessableEntity, "policies/uipath/exfil.rego:3 http.send"},
		{"no such system", same, http.StatusNotFound, "unknown system"},
	} {
		a = answer{}
		p := path
		if tc.name == "no such system" {
			p = "/v1/matrix/nope/diff"
		}
		if w := do(t, h, http.MethodPost, p, tc.body, docTestToken, &a); w.Code != tc.code || !strings.Contains(a.Error.Message, tc.msg) {
			t.Errorf("%s: %d %+v, want %d with %q", tc.name, w.Code, a.Error, tc.code, tc.msg)
		}
	}
}

// TestDocumentsEndpoint: the vendor documents, as text that is never
// sniffed as anything else.
func TestDocumentsEndpoint(t *testing.T) {
	h := newDocTestServer(t).Handler()
	var list struct{ Documents []string }
	if w := do(t, h, http.MethodGet, "/v1/documents", nil, "", &list); w.Code != http.StatusOK || len(list.Documents) < 6 {
		t.Fatalf("%d %+v", w.Code, list)
	}
	w := do(t, h, http.MethodGet, "/v1/documents/celonis-task-mining-permissions-older.txt", nil, "", nil)
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "text/plain; charset=utf-8" || w.Header().Get("X-Content-Type-Options") != "nosniff" ||
		strings.Split(w.Body.String(), "\n")[3] != "Admins have always all permissions." {
		t.Errorf("%d %v %q", w.Code, w.Header(), w.Body.String()[:80])
	}
	for _, p := range []string{"/v1/documents/nope.txt", "/v1/documents/..%2Fapi.yaml", "/v1/documents/%2e%2e"} {
		if w := do(t, h, http.MethodGet, p, nil, "", nil); w.Code != http.StatusNotFound {
			t.Errorf("%s: %d", p, w.Code)
		}
	}
}

// TestReplayEndpoint: the server's own decision log replayed under a
// candidate: 409 without a log file, the operator's only, and the flips
// the candidate alone makes.
func TestReplayEndpoint(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "permatrix.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	logFile := filepath.Join(dir, "decisions.log")
	w, err := decisionlog.Open(logFile)
	if err != nil {
		t.Fatal(err)
	}
	svc := pdp.New(db, opa.NewEngine(db), slog.New(slog.NewTextHandler(io.Discard, nil)), w)
	b, _ := opa.ReadDefault()
	if _, err := svc.Activate(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	h := permhttp.NewServer(svc, permhttp.Config{AdminToken: docTestToken, DecisionLogFile: logFile}).Handler()
	same := candidate(t, nil)
	if w := do(t, h, http.MethodPost, "/v1/replay", same, "", nil); w.Code != http.StatusUnauthorized {
		t.Errorf("without the token: %d", w.Code)
	}
	if w := do(t, newDocTestServer(t).Handler(), http.MethodPost, "/v1/replay", same, docTestToken, nil); w.Code != http.StatusConflict {
		t.Errorf("without a log file: %d %s", w.Code, w.Body)
	}
	// Logged: a process SME asked to install the desktop app (denied), and
	// a user (allowed); then a line being written, cut short.
	for _, sub := range []string{"sme", "usr"} {
		role := map[string]string{"sme": "process_sme", "usr": "user"}[sub]
		body, _ := json.Marshal(map[string]any{"subject": "user:" + sub, "system": "uipath-task-mining-suite", "role": role, "scope": map[string]any{"type": "service"}})
		if w := do(t, h, http.MethodPost, "/v1/assignments", body, docTestToken, nil); w.Code != http.StatusCreated {
			t.Fatalf("assign: %d %s", w.Code, w.Body)
		}
		check, _ := json.Marshal(map[string]any{"subject": sub, "system": "uipath-task-mining-suite", "action": "install_desktop_app"})
		if w := do(t, h, http.MethodPost, "/v1/check", check, "", nil); w.Code != http.StatusOK {
			t.Fatalf("check: %d %s", w.Code, w.Body)
		}
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(logFile, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"decision_id":"partial","inp`)
	f.Close()

	changed := candidate(t, func(dir string) {
		f := filepath.Join(dir, "systems", "uipath-task-mining-suite", "data.json")
		var doc map[string]any
		raw, _ := os.ReadFile(f)
		json.Unmarshal(raw, &doc)
		doc["matrix"].(map[string]any)["process_sme"].(map[string]any)["install_desktop_app"] = true
		raw, _ = json.Marshal(doc)
		os.WriteFile(f, raw, 0o644)
	})
	var a struct {
		Report struct {
			Decisions, Flips int
			Groups           []struct {
				System, Action string
				DenyToAllow    int `json:"deny_to_allow"`
			}
		}
		Log struct{ Entries int }
	}
	if w := do(t, h, http.MethodPost, "/v1/replay", changed, docTestToken, &a); w.Code != http.StatusOK {
		t.Fatalf("replay: %d %s", w.Code, w.Body)
	}
	if a.Log.Entries != 2 || a.Report.Decisions != 2 || a.Report.Flips != 1 || len(a.Report.Groups) != 1 ||
		a.Report.Groups[0].Action != "install_desktop_app" || a.Report.Groups[0].DenyToAllow != 1 {
		t.Errorf("replay report: %+v", a)
	}
}

// TestMatrixSaysCandidateUploadLimit: a system's matrix says how large a
// candidate bundle the server takes to compare with it — its body limit —
// so that a client (the console) can refuse a larger file before reading
// it; a body of that size is read, one byte more is the 413.
func TestMatrixSaysCandidateUploadLimit(t *testing.T) {
	for _, tc := range []struct{ configured, want int64 }{{0, 1 << 20}, {4096, 4096}} {
		h := newTestServer(t, permhttp.Config{AdminToken: docTestToken, BodyLimit: tc.configured}).Handler()
		var m struct {
			System               string
			CandidateUploadLimit *int64 `json:"candidate_upload_limit"`
		}
		if w := do(t, h, http.MethodGet, "/v1/matrix/blueprism", nil, "", &m); w.Code != http.StatusOK || m.System != "blueprism" {
			t.Fatalf("GET /v1/matrix/blueprism: %d %s", w.Code, w.Body.String()[:min(200, w.Body.Len())])
		}
		if m.CandidateUploadLimit == nil || *m.CandidateUploadLimit != tc.want {
			t.Errorf("body limit %d: candidate_upload_limit %v, want %d", tc.configured, m.CandidateUploadLimit, tc.want)
			continue
		}
		for _, path := range []string{"/v1/matrix/blueprism/diff", "/v1/replay"} {
			if w := do(t, h, http.MethodPost, path, bytes.Repeat([]byte{'x'}, int(tc.want)), docTestToken, nil); w.Code == http.StatusRequestEntityTooLarge {
				t.Errorf("POST %s of candidate_upload_limit bytes: 413", path)
			}
			if w := do(t, h, http.MethodPost, path, bytes.Repeat([]byte{'x'}, int(tc.want)+1), docTestToken, nil); w.Code != http.StatusRequestEntityTooLarge {
				t.Errorf("POST %s of candidate_upload_limit+1 bytes: %d, want 413", path, w.Code)
			}
		}
	}
}
