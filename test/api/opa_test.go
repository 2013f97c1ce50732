package api_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/permatrix/permatrix/internal/decisionlog"
	"github.com/permatrix/permatrix/test/harness"
)

// OPA's REST API on the real server (docs/opa-api.md); test/differential
// compares the same requests with stock `opa run --server`.

// inputParam is "?input=<JSON>".
func inputParam(v any) string {
	raw, _ := json.Marshal(v)
	return "?input=" + url.QueryEscape(string(raw))
}

// opaError fails unless r is OPA's envelope with that status and code.
func opaError(t *testing.T, what string, r harness.Response, status int, code string) {
	t.Helper()
	if r.Status != status || r.Body["code"] != code || r.Body["message"] == "" || r.Body["error"] != nil {
		t.Errorf("%s: want %d %s in OPA's envelope, got %d %s", what, status, code, r.Status, r.Raw)
	}
}

// The finding: GET /v1/data with ?input= used to ignore the input.
func TestDataAPIGetInput(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": service})
	r := s.Do(http.MethodGet, "/v1/data/permatrix/allow"+inputParam(check("ann", "edit_users", nil)), nil, false)
	if r.Status != 200 || r.Body["result"] != true {
		t.Fatalf("GET ?input= allow: %d %s", r.Status, r.Raw)
	}
	r = s.Do(http.MethodGet, "/v1/data/permatrix/allow"+inputParam(check("bob", "edit_users", nil)), nil, false)
	if r.Status != 200 || r.Body["result"] != false {
		t.Fatalf("GET ?input= deny: %d %s", r.Status, r.Raw)
	}
	// Every Data API answer is a decision with its own id.
	ids := map[string]bool{}
	for range 5 {
		r := s.Do(http.MethodPost, "/v1/data/permatrix/allow", map[string]any{"input": check("ann", "edit_users", nil)}, false)
		id, _ := r.Body["decision_id"].(string)
		if id == "" || ids[id] {
			t.Fatalf("decision_id: %s", r.Raw)
		}
		ids[id] = true
	}
	// The input is free-form but read strictly: a key twice anywhere, or a
	// case variant of "input", is refused.
	for _, bad := range []string{`{"input":{"subject":"ann","subject":"root"}}`, `{"Input":{"subject":"ann"}}`, `{"input":{},"input":{}}`} {
		opaError(t, bad, s.Do(http.MethodPost, "/v1/data/permatrix/allow", bad, false), 400, "invalid_parameter")
	}
	opaError(t, "duplicate key in ?input=", s.Do(http.MethodGet, "/v1/data/permatrix/allow?input="+url.QueryEscape(`{"a":1,"a":2}`), nil, false), 400, "invalid_parameter")
	r = s.Do(http.MethodPost, "/v1/data/permatrix/allow", `{"Input":{}}`, false)
	if !strings.Contains(r.Body["message"].(string), `did you mean "input"`) {
		t.Errorf("case variant: %s", r.Raw)
	}
}

// POST /v0/data/{path} and POST / (the default decision): the body is the
// input, the answer the bare document, undefined is 404.
func TestDataAPIv0AndDefaultDecision(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": service})
	for _, path := range []string{"/v0/data/permatrix/allow", "/"} {
		r := s.Do(http.MethodPost, path, check("ann", "edit_users", nil), false)
		if r.Status != 200 || string(bytes.TrimSpace(r.Raw)) != "true" {
			t.Errorf("%s allow: %d %s", path, r.Status, r.Raw)
		}
		r = s.Do(http.MethodPost, path, check("bob", "edit_users", nil), false)
		if r.Status != 200 || string(bytes.TrimSpace(r.Raw)) != "false" {
			t.Errorf("%s deny: %d %s", path, r.Status, r.Raw)
		}
	}
	r := s.Do(http.MethodPost, "/v0/data/permatrix/decision", check("ann", "edit_users", nil), false)
	if r.Status != 200 || r.Body["allow"] != true || r.Body["result"] != nil {
		t.Fatalf("v0 decision: %s", r.Raw)
	}
	// Undefined: 404 undefined_document (with the admin token: not an entrypoint).
	opaError(t, "v0 undefined", s.Do(http.MethodPost, "/v0/data/permatrix/nope", "{}", true), 404, "undefined_document")
	// Not an entrypoint: the admin token, as for /v1/data.
	opaError(t, "v0 store", s.Do(http.MethodPost, "/v0/data/store/grants", "{}", false), 401, "unauthorized")
	opaError(t, "v0 root", s.Do(http.MethodPost, "/v0/data", "{}", false), 401, "unauthorized")
	if r := s.Do(http.MethodPost, "/v0/data/store/grants", "{}", true); r.Status != 200 || r.Body["user:ann"] == nil {
		t.Errorf("v0 store with the token: %d %s", r.Status, r.Raw)
	}
	opaError(t, "v0 duplicate key", s.Do(http.MethodPost, "/", `{"subject":"ann","subject":"root"}`, false), 400, "invalid_parameter")
	opaError(t, "v0 YAML", s.Do(http.MethodPost, "/", "subject: ann", false, "Content-Type", "application/yaml"), 415, "unsupported_media_type")
	// Only POST: GET / is OPA's HTML page, not served.
	opaError(t, "GET /", s.Do(http.MethodGet, "/", nil, false), 405, "method_not_allowed")
}

// explain needs the admin token even on an entrypoint; metrics,
// instrument, provenance and pretty do not.
func TestDataAPIParameters(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	path := "/v1/data/permatrix/allow" + inputParam(check("ann", "edit_users", nil))
	for _, mode := range []string{"notes", "fails", "full", "debug"} {
		opaError(t, "explain="+mode+" without the token", s.Do(http.MethodGet, path+"&explain="+mode, nil, false), 401, "unauthorized")
		r := s.Do(http.MethodGet, path+"&explain="+mode, nil, true)
		if _, ok := r.Body["explanation"].([]any); r.Status != 200 || !ok {
			t.Errorf("explain=%s: %d %s", mode, r.Status, r.Raw)
		}
	}
	// An unknown mode is no explanation, as in OPA.
	if r := s.Do(http.MethodGet, path+"&explain=everything", nil, false); r.Status != 200 || r.Body["explanation"] != nil {
		t.Errorf("explain=everything: %d %s", r.Status, r.Raw)
	}
	r := s.Do(http.MethodGet, path+"&metrics&provenance&pretty", nil, false)
	m, _ := r.Body["metrics"].(map[string]any)
	pv, _ := r.Body["provenance"].(map[string]any)
	if r.Status != 200 || m["timer_rego_query_eval_ns"] == nil || pv["opa_version"] == nil || pv["bundles"] == nil || !bytes.Contains(r.Raw, []byte("\n  \"decision_id\"")) {
		t.Errorf("metrics, provenance, pretty: %s", r.Raw)
	}
	r = s.Do(http.MethodGet, path+"&instrument", nil, false)
	if m, _ := r.Body["metrics"].(map[string]any); m["histogram_eval_op_plug"] == nil {
		t.Errorf("instrument: %s", r.Raw)
	}
	// strict-builtin-errors: a string input makes object.get fail.
	strict := "/v1/data/permatrix/decision?input=" + url.QueryEscape(`"alice"`)
	if r := s.Do(http.MethodGet, strict, nil, false); r.Status != 200 {
		t.Errorf("non-strict: %d %s", r.Status, r.Raw)
	}
	r = s.Do(http.MethodGet, strict+"&strict-builtin-errors", nil, false)
	opaError(t, "strict", r, 500, "internal_error")
	if errs, _ := r.Body["errors"].([]any); len(errs) != 1 || errs[0].(map[string]any)["code"] != "eval_type_error" {
		t.Errorf("strict: %s", r.Raw)
	}
	// A POST body without input: evaluated without, with OPA's warning.
	r = s.Do(http.MethodPost, "/v1/data/permatrix/allow", "", false)
	if w, _ := r.Body["warning"].(map[string]any); r.Status != 200 || w["code"] != "api_usage_warning" || r.Body["result"] != false {
		t.Errorf("no input: %s", r.Raw)
	}
	// min_revision works on OPA's paths too: a revision the store has not
	// reached times out (503, OPA's envelope).
	rev := s.Svc.Revision()
	if r := s.Do(http.MethodGet, fmt.Sprintf("%s&min_revision=%d", path, rev), nil, false); r.Status != 200 {
		t.Errorf("min_revision reached: %d %s", r.Status, r.Raw)
	}
	opaError(t, "min_revision ahead", s.Do(http.MethodPost, "/v0/data/permatrix/allow", check("ann", "edit_users", nil), false,
		"X-Permatrix-Min-Revision", fmt.Sprint(rev+1000)), 503, "unavailable")
}

func gzipBody(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// gzip bodies: read as the plain ones, bounded by the same limit.
func TestGzipBodies(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": service})
	body, _ := json.Marshal(map[string]any{"input": check("ann", "edit_users", nil)})
	r := s.Do(http.MethodPost, "/v1/data/permatrix/allow", gzipBody(t, body), false, "Content-Encoding", "gzip")
	if r.Status != 200 || r.Body["result"] != true {
		t.Fatalf("gzip data API: %d %s", r.Status, r.Raw)
	}
	// permatrix's own endpoints too.
	c, _ := json.Marshal(check("ann", "edit_users", nil))
	if r := s.Do(http.MethodPost, "/v1/check", gzipBody(t, c), false, "Content-Encoding", "gzip"); r.Status != 200 || r.Body["allow"] != true {
		t.Fatalf("gzip check: %d %s", r.Status, r.Raw)
	}
	// A gzip bomb: 64 MiB of spaces in ~64 KiB stops at the 1 MiB limit.
	bomb := gzipBody(t, append(append([]byte(`{"input":`), bytes.Repeat([]byte(" "), 64<<20)...), "1}"...))
	if len(bomb) > 1<<20 {
		t.Fatalf("the bomb is %d bytes compressed", len(bomb))
	}
	opaError(t, "gzip bomb", s.Do(http.MethodPost, "/v1/data/permatrix/allow", bomb, false, "Content-Encoding", "gzip"), 413, "too_large")
	if r := s.Do(http.MethodPost, "/v1/check", bomb, false, "Content-Encoding", "gzip"); r.Status != 413 {
		t.Errorf("gzip bomb to /v1/check: %d %s", r.Status, r.Raw)
	}
	opaError(t, "not gzip", s.Do(http.MethodPost, "/v1/data/permatrix/allow", body, false, "Content-Encoding", "gzip"), 400, "invalid_parameter")
	opaError(t, "brotli", s.Do(http.MethodPost, "/v1/data/permatrix/allow", body, false, "Content-Encoding", "br"), 415, "unsupported_media_type")
	// Forward-auth reads no body: a Content-Encoding it describes is not refused.
	if r := s.Do(http.MethodGet, "/v1/forward-auth", nil, false, "Content-Encoding", "br", "X-Forwarded-User", "ann",
		"X-Permatrix-System", tm, "X-Permatrix-Action", "edit_users"); r.Status != 200 {
		t.Errorf("forward-auth with Content-Encoding: %d %s", r.Status, r.Raw)
	}
}

// The operator's OPA endpoints: 401 without the token (OPA's envelope,
// WWW-Authenticate), 200 with it.
func TestOPAOperatorEndpoints(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Do(http.MethodPut, "/v1/systems/uipath-task-mining-cloud/projects/p1", map[string]any{"created_by": "bob"}, true)
	s.Do(http.MethodPut, "/v1/systems/uipath-task-mining-cloud/projects/p2", map[string]any{"created_by": "bob"}, true)
	s.Assign(map[string]any{"subject": "user:alice", "system": "uipath-task-mining-cloud", "role": "business_analyst", "scope": project("p2")})
	ids := `ids := {id | some id, _ in data.store.projects["uipath-task-mining-cloud"]; data.permatrix.allow with input as {"subject": "alice", "system": "uipath-task-mining-cloud", "action": "read_project", "resource": {"type": "project", "id": id}}}`
	compile := map[string]any{"query": "data.permatrix.allow == true", "unknowns": []string{"input.resource.id"},
		"input": map[string]any{"subject": "alice", "system": "uipath-task-mining-cloud", "action": "read_project", "resource": map[string]any{"type": "project"}}}
	for _, c := range []struct {
		method, path string
		body         any
		ok           func(r harness.Response) bool
	}{
		{"GET", "/v1/query?q=" + url.QueryEscape(ids), nil, func(r harness.Response) bool {
			res, _ := r.Body["result"].([]any)
			return len(res) == 1 && fmt.Sprint(res[0].(map[string]any)["ids"]) == "[p2]"
		}},
		{"POST", "/v1/query", map[string]any{"query": "x := input.a", "input": map[string]any{"a": 1}}, func(r harness.Response) bool {
			return fmt.Sprint(r.Body["result"]) == "[map[x:1]]"
		}},
		{"POST", "/v1/compile", compile, func(r harness.Response) bool {
			res, _ := r.Body["result"].(map[string]any)
			q, _ := res["queries"].([]any)
			return len(q) == 1
		}},
		{"GET", "/v1/policies", nil, func(r harness.Response) bool {
			for _, m := range r.Body["result"].([]any) {
				if m.(map[string]any)["id"] == "policies/permatrix/permatrix.rego" && strings.Contains(m.(map[string]any)["raw"].(string), "package permatrix") {
					return true
				}
			}
			return false
		}},
		{"GET", "/v1/policies/policies/permatrix/permatrix.rego", nil, func(r harness.Response) bool {
			m, _ := r.Body["result"].(map[string]any)
			return m["id"] == "policies/permatrix/permatrix.rego" && m["ast"] != nil
		}},
		{"GET", "/v1/status", nil, func(r harness.Response) bool {
			res, _ := r.Body["result"].(map[string]any)
			b, _ := res["bundles"].(map[string]any)["permatrix"].(map[string]any)
			health := s.Do(http.MethodGet, "/health?bundles", nil, false)
			want := health.Body["bundles"].(map[string]any)["permatrix"].(map[string]any)["revision"]
			return b["active_revision"] == want && fmt.Sprint(res["plugins"]) == "map[bundle:map[state:OK] store:map[state:OK]]"
		}},
		{"GET", "/v1/config", nil, func(r harness.Response) bool {
			res, _ := r.Body["result"].(map[string]any)
			return res["default_decision"] == "/permatrix/allow" && !strings.Contains(string(r.Raw), harness.Token)
		}},
		// The Data API beyond the entrypoints.
		{"GET", "/v1/data/store/projects", nil, func(r harness.Response) bool { return r.Body["result"] != nil }},
		{"POST", "/v0/data/systems/uipath-task-mining-cloud/vendor", nil, func(r harness.Response) bool { return string(bytes.TrimSpace(r.Raw)) == `"uipath"` }},
	} {
		what := c.method + " " + c.path
		for _, h := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", harness.Token}} {
			r := s.Do(c.method, c.path, c.body, false, h...)
			opaError(t, what+fmt.Sprint(h), r, 401, "unauthorized")
			if strings.Contains(string(r.Raw), "user:alice") || strings.Contains(string(r.Raw), "package permatrix") {
				t.Errorf("%s without the token leaks: %s", what, r.Raw)
			}
		}
		r := s.Do(c.method, c.path, c.body, true)
		if r.Status != 200 || !c.ok(r) {
			t.Errorf("%s with the token: %d %s", what, r.Status, r.Raw)
		}
	}
	opaError(t, "unknown policy", s.Do(http.MethodGet, "/v1/policies/nope", nil, true), 404, "resource_not_found")
	opaError(t, "query that does not parse", s.Do(http.MethodGet, "/v1/query?q="+url.QueryEscape("1 =="), nil, true), 400, "invalid_parameter")
	opaError(t, "http.send", s.Do(http.MethodGet, "/v1/query?q="+url.QueryEscape(`http.send({"method":"get","url":"http://127.0.0.1:1"})`), nil, true), 400, "invalid_parameter")
	opaError(t, "compile unknown key", s.Do(http.MethodPost, "/v1/compile", `{"query":"x","unknown":1}`, true), 400, "invalid_parameter")
	// Read-only: OPA's writes are not served.
	for _, w := range [][2]string{{"PUT", "/v1/data/store"}, {"PATCH", "/v1/data/store"}, {"DELETE", "/v1/data/store/grants"}, {"PUT", "/v1/policies/x.rego"}, {"DELETE", "/v1/policies/policies/permatrix/permatrix.rego"}} {
		opaError(t, w[0]+" "+w[1], s.Do(w[0], w[1], `{}`, true), 405, "method_not_allowed")
	}
	if r := s.Do(http.MethodGet, "/v1/policies", nil, true); len(r.Body["result"].([]any)) < 5 {
		t.Errorf("policies after the refused writes: %s", r.Raw)
	}
	// permatrix's own endpoints keep their envelope.
	if r := s.Do(http.MethodGet, "/v1/export", nil, false); r.Status != 401 || r.Body["error"] == nil {
		t.Errorf("export: %d %s", r.Status, r.Raw)
	}
}

// Data API evaluations are decisions: the decision id answered is the one
// in the decision log, with the input, result and revisions.
func TestDataAPIDecisionsLogged(t *testing.T) {
	file := filepath.Join(t.TempDir(), "decisions.log")
	dl, err := decisionlog.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	s := harness.Start(t, harness.Options{DecisionLog: dl})
	rev := s.Svc.Revision()
	r := s.Do(http.MethodPost, "/v1/data/permatrix/allow", map[string]any{"input": check("ann", "edit_users", nil)}, false)
	s.Do(http.MethodPost, "/v0/data/permatrix/decision", `"alice"`, false)
	s.Do(http.MethodGet, "/v1/query?q=x%3A%3D1", nil, true)
	if err := dl.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries, err := decisionlog.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		t.Fatalf("%d evaluations logged, want 3: %+v", len(entries), entries)
	}
	e := entries[0]
	in, _ := e.Input.(map[string]any)
	if e.DecisionID != r.Body["decision_id"] || e.Path != "permatrix/allow" || in["subject"] != "ann" || e.Result != false ||
		e.StoreRevision() != rev || e.BundleRevision() == "" {
		t.Errorf("data API entry: %+v (answer %s)", e, r.Raw)
	}
	if e := entries[1]; e.Path != "permatrix/decision" || e.Input != "alice" || e.DecisionID == "" {
		t.Errorf("v0 entry: %+v", e)
	}
	if e := entries[2]; e.Query != "x:=1" || e.Path != "" {
		t.Errorf("query entry: %+v", e)
	}
}

// A check's own min_revision (a key of the check, as /v1/check reads it)
// is its consistency token on the Data API's entrypoints too: a client that
// sends the same check object to /v1/check and to the Data API gets the
// same read-your-writes. It was type-checked and ignored: a replica behind
// the write answered from before it.
func TestDataAPIInputMinRevision(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": service})
	rev := s.Svc.Revision()
	withToken := func(min uint64) map[string]any {
		c := check("ann", "edit_users", nil)
		c["min_revision"] = min
		return c
	}
	for _, tc := range []struct {
		name, method, path string
		body               func(min uint64) any
	}{
		{"v1 POST", http.MethodPost, "/v1/data/permatrix/decision", func(min uint64) any { return map[string]any{"input": withToken(min)} }},
		{"v0 POST", http.MethodPost, "/v0/data/permatrix/allow", func(min uint64) any { return withToken(min) }},
		{"default decision", http.MethodPost, "/", func(min uint64) any { return withToken(min) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := s.Do(tc.method, tc.path, tc.body(rev), false); r.Status != 200 {
				t.Errorf("token reached: %d %s", r.Status, r.Raw)
			}
			opaError(t, "token ahead", s.Do(tc.method, tc.path, tc.body(rev+1000), false), 503, "unavailable")
		})
	}
	t.Run("v1 GET", func(t *testing.T) {
		if r := s.Do(http.MethodGet, "/v1/data/permatrix/allow"+inputParam(withToken(rev)), nil, false); r.Status != 200 || r.Body["result"] != true {
			t.Errorf("token reached: %d %s", r.Status, r.Raw)
		}
		opaError(t, "token ahead", s.Do(http.MethodGet, "/v1/data/permatrix/allow"+inputParam(withToken(rev+1000)), nil, false), 503, "unavailable")
	})
	// The later of the two tokens wins: the body's beside the input, and the input's.
	r := s.Do(http.MethodPost, "/v1/data/permatrix/decision", map[string]any{"input": withToken(rev + 1000), "min_revision": rev}, false)
	opaError(t, "the input's token ahead of the body's", r, 503, "unavailable")
	// A token that is no whole number is the input's error, as before, not a wait.
	r = s.Do(http.MethodPost, "/v1/data/permatrix/decision", map[string]any{"input": map[string]any{"subject": "ann", "system": tm, "action": "edit_users", "min_revision": 1.5}}, false)
	if res, _ := r.Body["result"].(map[string]any); r.Status != 200 || res["allow"] != false || len(res["errors"].([]any)) != 1 {
		t.Errorf("a fractional token: %d %s", r.Status, r.Raw)
	}
}

// A path above an entrypoint (data.permatrix, data itself) evaluates the
// entrypoints with the input as theirs: its answer holds the check's
// decision, so the check's own min_revision is waited for there too. It
// was not (IsEntrypoint is at or below an entrypoint only): the operator
// reading the package got the decision from below the token. A path
// that holds no entrypoint (data.systems) decides nothing: it does not
// wait for a min_revision in its input.
func TestDataAPIInputMinRevisionAboveAnEntrypoint(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": service})
	rev := s.Svc.Revision()
	withToken := func(min uint64) map[string]any {
		c := check("ann", "edit_users", nil)
		c["min_revision"] = min
		return c
	}
	for _, tc := range []struct{ name, path string }{
		{"v1 package", "/v1/data/permatrix"},
		{"v1 root", "/v1/data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := s.Do(http.MethodPost, tc.path, map[string]any{"input": withToken(rev)}, true); r.Status != 200 {
				t.Errorf("token reached: %d %.300s", r.Status, r.Raw)
			}
			opaError(t, "token ahead", s.Do(http.MethodPost, tc.path, map[string]any{"input": withToken(rev + 1000)}, true), 503, "unavailable")
		})
	}
	t.Run("v0 package", func(t *testing.T) {
		if r := s.Do(http.MethodPost, "/v0/data/permatrix", withToken(rev), true); r.Status != 200 {
			t.Errorf("token reached: %d %.300s", r.Status, r.Raw)
		}
		opaError(t, "token ahead", s.Do(http.MethodPost, "/v0/data/permatrix", withToken(rev+1000), true), 503, "unavailable")
	})
	t.Run("no entrypoint below", func(t *testing.T) {
		if r := s.Do(http.MethodPost, "/v1/data/systems", map[string]any{"input": withToken(rev + 1000)}, true); r.Status != 200 {
			t.Errorf("waited for the input's token where nothing decides: %d %.300s", r.Status, r.Raw)
		}
	})
}

// The Query and Compile APIs read data.store as the Data API does, and
// their answers are decisions too (logged so): a consistency token — the
// min_revision parameter or the X-Permatrix-Min-Revision header — was
// ignored there, the answer given from below it, where the Data API
// waits for it and answers 503 when it is not reached.
func TestQueryAndCompileWaitForTheToken(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": service})
	rev := s.Svc.Revision()
	query := map[string]any{"query": "data.permatrix.allow == true", "input": check("ann", "edit_users", nil)}
	compile := map[string]any{"query": "data.permatrix.allow == true", "unknowns": []string{"input.resource"}, "input": map[string]any{"subject": "ann", "system": tm, "action": "edit_users"}}
	for _, tc := range []struct {
		name, method, path string
		body               any
	}{
		{"query GET", http.MethodGet, "/v1/query?q=data.store", nil},
		{"query POST", http.MethodPost, "/v1/query", query},
		{"compile", http.MethodPost, "/v1/compile", compile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sep := "?"
			if strings.Contains(tc.path, "?") {
				sep = "&"
			}
			if r := s.Do(tc.method, tc.path+sep+fmt.Sprintf("min_revision=%d", rev), tc.body, true); r.Status != 200 {
				t.Errorf("token reached: %d %.300s", r.Status, r.Raw)
			}
			opaError(t, "parameter ahead", s.Do(tc.method, tc.path+sep+fmt.Sprintf("min_revision=%d", rev+1000), tc.body, true), 503, "unavailable")
			opaError(t, "header ahead", s.Do(tc.method, tc.path, tc.body, true, "X-Permatrix-Min-Revision", fmt.Sprint(rev+1000)), 503, "unavailable")
		})
	}
}
