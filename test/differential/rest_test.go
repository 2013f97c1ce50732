package differential_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/permatrix/permatrix/test/harness"
)

// This half of the differential test sends identical requests to permatrix
// and to stock `opa run --server` (same version, same policies, data and an
// export of the store) and compares the answers wherever OPA's are
// deterministic: results, undefined documents, warnings, error codes and
// messages, explanations, the Query and Compile APIs' results, the
// policies. What differs on purpose (docs/opa-api.md) is asserted as such.

// stockServer runs `opa run --server` on the repository's policies and
// data and the export at exportPath, with the default decision permatrix
// serves and decision logging on (so that OPA answers decision ids too).
//
// Its address is found free and given to opa later: another test process
// may take it meanwhile, and opa exits (address in use) while the other
// process answers /health — so opa is taken to serve once the answer on
// the address carries a label of this run's (/v1/config), and one whose
// address was taken is started again on another (five tries).
func stockServer(t *testing.T, bin, exportPath string) string {
	t.Helper()
	for attempt := 1; ; attempt++ {
		base, err := startStock(t, bin, exportPath, attempt)
		if err == nil {
			return base
		}
		if attempt == 5 || !errors.Is(err, errStockAddrTaken) {
			t.Fatal(err)
		}
		t.Logf("stock opa: %v; again on another address", err)
	}
}

// errStockAddrTaken is another process answering on stock opa's address.
var errStockAddrTaken = errors.New("the address was taken")

func startStock(t *testing.T, bin, exportPath string, attempt int) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	logs, err := os.Create(filepath.Join(t.TempDir(), "opa.log"))
	if err != nil {
		t.Fatal(err)
	}
	run := fmt.Sprintf("%d-%d-%d", os.Getpid(), time.Now().UnixNano(), attempt)
	cmd := exec.Command(bin, "run", "--server", "--addr", addr, "--ignore", "*_test.rego",
		"--set", "default_decision=/permatrix/allow", "--set", "decision_logs.console=true", "--set", "status.console=true",
		"--set", "labels.test_run="+run,
		"policies", "systems:systems", exportPath)
	cmd.Dir = harness.Root()
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		logs.Close()
	})
	base := "http://" + addr
	ours := func() (answered, same bool) {
		resp, err := http.Get(base + "/v1/config")
		if err != nil {
			return false, false
		}
		defer resp.Body.Close()
		var cfg struct {
			Result struct {
				Labels map[string]any `json:"labels"`
			} `json:"result"`
		}
		err = json.NewDecoder(resp.Body).Decode(&cfg)
		return true, err == nil && resp.StatusCode == http.StatusOK && cfg.Result.Labels["test_run"] == run
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				answered, same := ours()
				if same {
					return base, nil
				}
				if answered {
					return "", fmt.Errorf("%w: another server answers on %s", errStockAddrTaken, addr)
				}
			}
		}
		select {
		case <-done:
			out, _ := os.ReadFile(logs.Name())
			if strings.Contains(string(out), "address already in use") {
				return "", fmt.Errorf("%w: opa exited:\n%s", errStockAddrTaken, out)
			}
			return "", fmt.Errorf("stock opa exited:\n%s", out)
		default:
		}
		if time.Now().After(deadline) {
			return "", errors.New("stock opa did not become healthy within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// answer is one server's answer.
type answer struct {
	status int
	raw    []byte
	body   any // decoded JSON (numbers as json.Number), nil if none
}

// obj is the answer's body as an object.
func (a answer) obj() map[string]any {
	m, _ := a.body.(map[string]any)
	return m
}

// request is one request sent to both servers.
type request struct {
	method, path string
	body         []byte
	headers      []string
}

func post(path string, body any) request {
	switch b := body.(type) {
	case string:
		return request{method: http.MethodPost, path: path, body: []byte(b)}
	case nil:
		return request{method: http.MethodPost, path: path}
	}
	raw, _ := json.Marshal(body)
	return request{method: http.MethodPost, path: path, body: raw}
}

func get(path string) request { return request{method: http.MethodGet, path: path} }

// withInput is path?input=<JSON of input>&extra.
func withInput(path string, input any, extra string) string {
	raw, _ := json.Marshal(input)
	q := "input=" + url.QueryEscape(string(raw))
	if extra != "" {
		q += "&" + extra
	}
	return path + "?" + q
}

// send sends r to base; both servers get the admin token (stock OPA
// ignores it).
func send(t *testing.T, base string, r request) answer {
	t.Helper()
	req, err := http.NewRequest(r.method, base+r.path, bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+harness.Token)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(r.headers); i += 2 {
		req.Header.Set(r.headers[i], r.headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := answer{status: resp.StatusCode, raw: raw}
	if len(bytes.TrimSpace(raw)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&a.body); err != nil {
			t.Fatalf("%s %s: not JSON (%v): %q", r.method, r.path, err, raw)
		}
	}
	return a
}

// pair is the two servers' answers to one request.
type pair struct{ pmx, opa answer }

// both sends r to both servers.
func both(t *testing.T, pmx, opa string, r request) pair {
	t.Helper()
	return pair{send(t, pmx, r), send(t, opa, r)}
}

// without is body with the top-level keys drop left out.
func without(body any, drop ...string) any {
	m, ok := body.(map[string]any)
	if !ok {
		return body
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		if !slices.Contains(drop, k) {
			out[k] = v
		}
	}
	return out
}

// same fails unless both answered the same status and body, top-level keys
// drop aside.
func (p pair) same(t *testing.T, what string, drop ...string) {
	t.Helper()
	if p.pmx.status != p.opa.status || !reflect.DeepEqual(without(p.pmx.body, drop...), without(p.opa.body, drop...)) {
		t.Errorf("%s:\npermatrix %d %s\nstock opa %d %s", what, p.pmx.status, clip(p.pmx.raw), p.opa.status, clip(p.opa.raw))
	}
}

// sameError fails unless both answered the same status and error code.
func (p pair) sameError(t *testing.T, what string, status int) {
	t.Helper()
	if p.pmx.status != status || p.opa.status != status || p.pmx.obj()["code"] == nil || p.pmx.obj()["code"] != p.opa.obj()["code"] {
		t.Errorf("%s: want %d with the same code:\npermatrix %d %s\nstock opa %d %s", what, status, p.pmx.status, clip(p.pmx.raw), p.opa.status, clip(p.opa.raw))
	}
}

// decisionIDs fails unless both answers carry a decision id.
func (p pair) decisionIDs(t *testing.T, what string) {
	t.Helper()
	for name, a := range map[string]answer{"permatrix": p.pmx, "stock opa": p.opa} {
		if id, _ := a.obj()["decision_id"].(string); id == "" {
			t.Errorf("%s: %s answered no decision_id: %s", what, name, clip(a.raw))
		}
	}
}

func clip(b []byte) string {
	if len(b) > 1500 {
		return string(b[:1500]) + "…"
	}
	return string(b)
}

func gzipped(t *testing.T, b []byte) []byte {
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

// compareREST runs the comparison: s is the populated permatrix, checks
// the generated checks, exportPath the store's export.
func compareREST(t *testing.T, opaBin string, s *harness.Server, exportPath string, checks []map[string]any) {
	pmx, stock := s.URL, stockServer(t, opaBin, exportPath)
	do := func(r request) pair { t.Helper(); return both(t, pmx, stock, r) }

	t.Run("data API decisions", func(t *testing.T) {
		allowed := 0
		for i, c := range checks[:min(len(checks), 150)] {
			p := do(post("/v1/data/permatrix/decision", map[string]any{"input": c}))
			p.same(t, fmt.Sprintf("POST /v1/data/permatrix/decision %v", c), "decision_id")
			p.decisionIDs(t, "POST /v1/data/permatrix/decision")
			p = do(get(withInput("/v1/data/permatrix/allow", c, "")))
			p.same(t, fmt.Sprintf("GET /v1/data/permatrix/allow?input=%v", c), "decision_id")
			p.decisionIDs(t, "GET /v1/data/permatrix/allow")
			if p.pmx.obj()["result"] == true {
				allowed++
			}
			raw, _ := json.Marshal(c)
			do(post("/v0/data/permatrix/allow", string(raw))).same(t, fmt.Sprintf("POST /v0/data/permatrix/allow %s", raw))
			if i%3 == 0 {
				do(post("/", string(raw))).same(t, fmt.Sprintf("POST / %s", raw))
			}
		}
		if allowed == 0 {
			t.Fatal("no check allowed through GET ?input=: the input is ignored")
		}
	})

	t.Run("inputs", func(t *testing.T) {
		for _, body := range []string{`{"input":"alice"}`, `{"input":42}`, `{"input":null}`, `{}`, ``, `{"input":{}}`, `{"input":[1,2]}`,
			`{"input":{"subject":"u1","system":"celonis-task-mining","action":"edit_users","context":{"n":12345678901234567890}}}`} {
			for _, path := range []string{"/v1/data/permatrix/allow", "/v1/data/permatrix/decision"} {
				do(post(path, body)).same(t, "POST "+path+" "+body, "decision_id")
			}
		}
		for _, body := range []string{``, `null`, `"alice"`, `[1]`, `{}`, `{"subject":"u1"}`} {
			do(post("/v0/data/permatrix/decision", body)).same(t, "POST /v0/data/permatrix/decision "+body)
			do(post("/", body)).same(t, "POST / "+body)
		}
		for _, in := range []string{`null`, `"alice"`, `{}`, `[]`} {
			do(get("/v1/data/permatrix/decision?input="+url.QueryEscape(in))).same(t, "GET ?input="+in, "decision_id")
		}
		// The last input parameter wins.
		do(get("/v1/data/permatrix/allow?input=1&input="+url.QueryEscape(`{"subject":"u1"}`))).same(t, "two input parameters", "decision_id")
		c, _ := json.Marshal(map[string]any{"input": checks[0]})
		gz := do(request{method: http.MethodPost, path: "/v1/data/permatrix/decision", body: gzipped(t, c), headers: []string{"Content-Encoding", "gzip"}})
		gz.same(t, "gzip body", "decision_id")
		if plain := send(t, pmx, post("/v1/data/permatrix/decision", string(c))); !reflect.DeepEqual(without(plain.body, "decision_id"), without(gz.pmx.body, "decision_id")) {
			t.Errorf("gzip and plain bodies differ: %s / %s", gz.pmx.raw, plain.raw)
		}
	})

	t.Run("documents", func(t *testing.T) {
		for _, path := range []string{"/v1/data/store", "/v1/data/systems", "/v1/data/systems/blueprism/actions", "/v1/data/permatrix/nope",
			"/v1/data/store/grants/nobody", "/v1/data/systems/blueprism/documents/0", "/v1/data/systems/blueprism/documents/99",
			// OPA reads "1.0" as the index 1 (util.Atoi64), "1.5" as a key.
			"/v1/data/systems/celonis-storage-manager/scope_types/1.0", "/v1/data/systems/celonis-storage-manager/scope_types/1.5",
			// No custom role is stored: an empty index is {} in the
			// export, and so in permatrix.
			"/v1/data/store/roles", "/v1/data/store/grants"} {
			do(get(path)).same(t, "GET "+path, "decision_id")
			do(post(path, `{"input":{}}`)).same(t, "POST "+path, "decision_id")
		}
		for _, path := range []string{"/v0/data/permatrix/nope", "/v0/data/store/grants/nobody", "/v0/data/permatrix/systems/uipath_task_mining_cloud/project",
			"/v0/data/systems/blueprism/scope_types"} {
			do(post(path, `{}`)).same(t, "POST "+path)
		}
	})

	t.Run("errors", func(t *testing.T) {
		p := do(get("/v1/data/permatrix/allow?input=%7Bnot-json"))
		p.sameError(t, "malformed input parameter", http.StatusBadRequest)
		for _, a := range []answer{p.pmx, p.opa} {
			if msg, _ := a.obj()["message"].(string); !strings.HasPrefix(msg, "parameter contains malformed input document") {
				t.Errorf("malformed input parameter: %s", a.raw)
			}
		}
		do(get("/v1/data/permatrix/allow?input=")).sameError(t, "empty input parameter", http.StatusBadRequest)
		for _, body := range []string{`{`, `{"input":}`, `[`} {
			do(post("/v1/data/permatrix/allow", body)).sameError(t, "malformed body "+body, http.StatusBadRequest)
			do(post("/v0/data/permatrix/allow", body)).sameError(t, "malformed v0 body "+body, http.StatusBadRequest)
		}
	})

	t.Run("explain, metrics, provenance, pretty", func(t *testing.T) {
		c := checks[1]
		for _, mode := range []string{"notes", "fails", "full", "debug"} {
			for _, pretty := range []string{"", "&pretty"} {
				path := withInput("/v1/data/permatrix/allow", c, "explain="+mode+pretty)
				p := do(get(path))
				if mode == "notes" || pretty != "" {
					p.same(t, "GET "+path, "decision_id")
					continue
				}
				// Trace events name generated variables, which differ with
				// how the query was prepared: compare the events' ops and
				// node types.
				if !reflect.DeepEqual(traceShape(p.pmx), traceShape(p.opa)) || len(traceShape(p.pmx)) == 0 {
					t.Errorf("explain=%s: traces differ\npermatrix %s\nstock opa %s", mode, clip(p.pmx.raw), clip(p.opa.raw))
				}
			}
		}
		p := do(get(withInput("/v1/data/permatrix/allow", c, "metrics")))
		p.same(t, "?metrics", "decision_id", "metrics")
		for _, k := range []string{"timer_rego_query_eval_ns", "timer_server_handler_ns", "counter_server_query_cache_hit", "timer_rego_input_parse_ns"} {
			for name, a := range map[string]answer{"permatrix": p.pmx, "stock opa": p.opa} {
				if m, _ := a.obj()["metrics"].(map[string]any); m[k] == nil {
					t.Errorf("?metrics: %s has no %s: %s", name, k, clip(a.raw))
				}
			}
		}
		p = do(get(withInput("/v1/data/permatrix/allow", c, "instrument")))
		for name, a := range map[string]answer{"permatrix": p.pmx, "stock opa": p.opa} {
			m, _ := a.obj()["metrics"].(map[string]any)
			if m["histogram_eval_op_plug"] == nil {
				t.Errorf("?instrument: %s has no instrumentation: %s", name, clip(a.raw))
			}
		}
		p = do(post("/v1/data/permatrix/allow?provenance", map[string]any{"input": c}))
		p.same(t, "?provenance", "decision_id", "provenance")
		for name, a := range map[string]answer{"permatrix": p.pmx, "stock opa": p.opa} {
			pv, _ := a.obj()["provenance"].(map[string]any)
			for _, k := range []string{"version", "build_commit", "build_timestamp", "build_hostname"} {
				if _, ok := pv[k]; !ok {
					t.Errorf("?provenance: %s has no %s: %s", name, k, a.raw)
				}
			}
		}
		if b := p.pmx.obj()["provenance"].(map[string]any)["bundles"].(map[string]any)["permatrix"]; b == nil {
			t.Errorf("?provenance: no bundle revision: %s", p.pmx.raw)
		}
		p = do(get(withInput("/v1/data/permatrix/decision", c, "pretty")))
		p.same(t, "?pretty", "decision_id")
		if !bytes.Contains(p.pmx.raw, []byte("\n  \"result\"")) || !bytes.Contains(p.opa.raw, []byte("\n  \"result\"")) {
			t.Errorf("?pretty: not indented:\n%s\n%s", p.pmx.raw, p.opa.raw)
		}
		p = do(get(withInput("/v1/data/permatrix/decision", c, "pretty=false")))
		if bytes.Contains(p.pmx.raw, []byte("\n")) && bytes.Index(p.pmx.raw, []byte("\n")) < len(p.pmx.raw)-1 {
			t.Errorf("?pretty=false: indented: %s", p.pmx.raw)
		}
	})

	t.Run("strict builtin errors", func(t *testing.T) {
		// object.get on a string input is a builtin error: undefined by
		// default (a decision), a 500 evaluation error when strict.
		path := "/v1/data/permatrix/decision?input=" + url.QueryEscape(`"alice"`)
		p := do(get(path))
		p.same(t, "non-strict builtin error", "decision_id")
		if p.pmx.status != http.StatusOK {
			t.Errorf("non-strict builtin error: %d %s", p.pmx.status, p.pmx.raw)
		}
		p = do(get(path + "&strict-builtin-errors"))
		p.sameError(t, "strict builtin error", http.StatusInternalServerError)
		// The evaluation errors are the same, less OPA's stack traces
		// (permatrix logs them; they map the policy's rules).
		for _, a := range []answer{p.pmx, p.opa} {
			for _, e := range a.obj()["errors"].([]any) {
				delete(e.(map[string]any), "stack_trace")
			}
		}
		if errs := p.pmx.obj()["errors"]; len(errs.([]any)) != 1 || !reflect.DeepEqual(errs, p.opa.obj()["errors"]) {
			t.Errorf("strict builtin error:\npermatrix %s\nstock opa %s", p.pmx.raw, clip(p.opa.raw))
		}
	})

	t.Run("query API", func(t *testing.T) {
		ids := `ids := {id | some id, _ in data.store.projects["uipath-task-mining-cloud"]; data.permatrix.allow with input as {"subject": "u1", "system": "uipath-task-mining-cloud", "action": "read_project", "resource": {"type": "project", "id": id}}}`
		do(get("/v1/query?q="+url.QueryEscape(ids))).same(t, "GET /v1/query what u1 may read")
		do(post("/v1/query", map[string]any{"query": "x := input.a; y := data.systems[x].vendor", "input": map[string]any{"a": "blueprism"}})).same(t, "POST /v1/query with input")
		do(get("/v1/query?q="+url.QueryEscape("1 == 2"))).same(t, "query without result")
		do(get("/v1/query?q="+url.QueryEscape("some x in [1, 2, 3]"))).same(t, "query with three results")
		do(get("/v1/query?q="+url.QueryEscape("x := [1, 2]; x[_] > 1"))).same(t, "query with a wildcard")
		do(get("/v1/query?q="+url.QueryEscape("1 =="))).same(t, "query that does not parse")
		do(get("/v1/query?q="+url.QueryEscape("x := y"))).same(t, "query that does not compile")
		do(get("/v1/query")).same(t, "query without q")
		do(get("/v1/query?q="+url.QueryEscape(`x := data.systems["celonis-storage-manager"].scope_types["1.0"]`))).same(t, "query of an index with decimal zeroes")
		// An empty query is stock OPA's 500 ("cannot evaluate empty
		// query"); permatrix's 400: a bad request is never a fault.
		if p := do(get("/v1/query?q=")); p.opa.status != 500 || p.pmx.status != 400 || p.pmx.obj()["code"] != "invalid_parameter" {
			t.Errorf("empty query: permatrix %d %s, stock opa %d %s", p.pmx.status, p.pmx.raw, p.opa.status, p.opa.raw)
		}
		do(get("/v1/query?q="+url.QueryEscape(`http.send({"method": "get", "url": "http://127.0.0.1:1"})`))).same(t, "http.send refused")
		do(get("/v1/query?q=x%3A%3D1&explain=notes")).same(t, "query explain=notes")
	})

	t.Run("compile API", func(t *testing.T) {
		filter := map[string]any{"query": "data.permatrix.allow == true",
			"input":    map[string]any{"subject": "u1", "system": "uipath-task-mining-cloud", "action": "read_project", "resource": map[string]any{"type": "project"}},
			"unknowns": []string{"input.resource.id"}}
		do(post("/v1/compile", filter)).same(t, "compile: the projects u1 may read")
		// Partial evaluation with support modules: stock opa itself orders
		// and names them differently from one process to the next, so only
		// the shape is compared.
		filter["query"] = "data.permatrix.systems.uipath_task_mining_cloud.decision.allow == true"
		p := do(post("/v1/compile", filter))
		for name, a := range map[string]answer{"permatrix": p.pmx, "stock opa": p.opa} {
			res, _ := a.obj()["result"].(map[string]any)
			if q, _ := res["queries"].([]any); a.status != 200 || len(q) != 1 {
				t.Errorf("compile: the system package's decision: %s: %d %s", name, a.status, clip(a.raw))
			}
			if sup, _ := res["support"].([]any); len(sup) == 0 {
				t.Errorf("compile: the system package's decision: %s: no support modules: %s", name, clip(a.raw))
			}
		}
		do(post("/v1/compile", map[string]any{"query": "input.x == 1"})).same(t, "compile with the default unknowns")
		do(post("/v1/compile", map[string]any{"query": "input.x == 1", "unknowns": []string{}})).same(t, "compile with no unknowns")
		do(post("/v1/compile", map[string]any{"query": "1 =="})).same(t, "compile a query that does not parse")
		do(post("/v1/compile", map[string]any{"query": ""})).same(t, "compile an empty query")
		do(post("/v1/compile", map[string]any{"query": "x == 1", "unknowns": []string{"["}})).sameError(t, "compile bad unknowns", http.StatusBadRequest)
	})

	t.Run("policy API", func(t *testing.T) {
		p := do(get("/v1/policies"))
		ids := func(a answer) map[string]string {
			out := map[string]string{}
			list, _ := a.obj()["result"].([]any)
			for _, x := range list {
				m := x.(map[string]any)
				out[m["id"].(string)] = m["raw"].(string)
			}
			return out
		}
		pm, om := ids(p.pmx), ids(p.opa)
		if p.pmx.status != 200 || len(pm) < 5 || !reflect.DeepEqual(pm, om) {
			t.Errorf("GET /v1/policies: ids or sources differ:\npermatrix %v\nstock opa %v", slices.Sorted(maps.Keys(pm)), slices.Sorted(maps.Keys(om)))
		}
		for id := range pm {
			do(get("/v1/policies/"+id)).same(t, "GET /v1/policies/"+id)
		}
		do(get("/v1/policies/nope")).same(t, "GET /v1/policies/nope")
	})

	t.Run("status and config", func(t *testing.T) {
		for _, path := range []string{"/v1/status", "/v1/config"} {
			p := do(get(path))
			for name, a := range map[string]answer{"permatrix": p.pmx, "stock opa": p.opa} {
				res, _ := a.obj()["result"].(map[string]any)
				labels, _ := res["labels"].(map[string]any)
				if a.status != 200 || labels["id"] == nil || labels["version"] == nil {
					t.Errorf("%s: %s: %d %s", path, name, a.status, clip(a.raw))
				}
				if path == "/v1/config" && res["default_decision"] != "/permatrix/allow" {
					t.Errorf("%s: %s: default_decision %v", path, name, res["default_decision"])
				}
				if path == "/v1/status" {
					plugins, _ := res["plugins"].(map[string]any)
					for pn, st := range plugins {
						if st.(map[string]any)["state"] != "OK" {
							t.Errorf("%s: %s: plugin %s is %v", path, name, pn, st)
						}
					}
				}
			}
		}
	})
}

// traceShape is a trace's events as "op type" strings.
func traceShape(a answer) []string {
	var out []string
	list, _ := a.obj()["explanation"].([]any)
	for _, e := range list {
		m, _ := e.(map[string]any)
		out = append(out, fmt.Sprint(m["op"], " ", m["type"]))
	}
	return out
}
