package http_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"go.yaml.in/yaml/v3"

	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/console"
	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
)

// apiDocPath is docs/api.yaml, relative to this package's directory (where
// go test runs).
const apiDocPath = "../../docs/api.yaml"

const docTestToken = "api-doc-test-token"

// operationMethods are the keys of an OpenAPI path item that are operations.
var operationMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// newDocTestServer builds the real server over a temporary store and the
// embedded bundle, as test/harness does, without listening.
func newDocTestServer(t *testing.T) *permhttp.Server {
	t.Helper()
	return newTestServer(t, permhttp.Config{AdminToken: docTestToken, Console: console.Handler(), Pprof: true})
}

// newTestServer is newDocTestServer with another configuration (its
// Logger discards unless set).
func newTestServer(t *testing.T, cfg permhttp.Config) *permhttp.Server {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "permatrix.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := pdp.New(db, opa.NewEngine(db), log, nil)
	b, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Activate(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if cfg.Logger == nil {
		cfg.Logger = log
	}
	return permhttp.NewServer(svc, cfg)
}

// loadAPIDoc parses docs/api.yaml into plain maps and slices.
func loadAPIDoc(t *testing.T) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(apiDocPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s does not parse as YAML: %v", apiDocPath, err)
	}
	if doc == nil {
		t.Fatalf("%s is empty", apiDocPath)
	}
	return doc
}

// docOperation is one operation of the document.
type docOperation struct {
	Method string         // upper case
	Path   string         // OpenAPI syntax
	Op     map[string]any // the operation object
	Item   map[string]any // its path item (for path-level parameters)
}

func (o docOperation) String() string { return o.Method + " " + o.Path }

// docOperations lists the document's operations, sorted.
func docOperations(t *testing.T, doc map[string]any) []docOperation {
	t.Helper()
	paths, ok := doc["paths"].(map[string]any)
	if !ok || len(paths) == 0 {
		t.Fatalf("%s has no paths", apiDocPath)
	}
	var ops []docOperation
	for path, v := range paths {
		item, ok := v.(map[string]any)
		if !ok {
			t.Errorf("path %s: not an object", path)
			continue
		}
		for _, m := range operationMethods {
			if op, ok := item[m].(map[string]any); ok {
				ops = append(ops, docOperation{Method: strings.ToUpper(m), Path: path, Op: op, Item: item})
			} else if item[m] != nil {
				t.Errorf("%s %s: not an object", strings.ToUpper(m), path)
			}
		}
	}
	slices.SortFunc(ops, func(a, b docOperation) int { return strings.Compare(a.String(), b.String()) })
	return ops
}

// openAPIPath turns Echo's route syntax into OpenAPI's: ":name" → "{name}"
// and the wildcard "*" → "{path}" (the Data API's /v1/data/{path}).
func openAPIPath(echoPath string) string {
	segs := strings.Split(echoPath, "/")
	for i, s := range segs {
		switch {
		case s == "*":
			segs[i] = "{path}"
		case strings.HasPrefix(s, ":"):
			segs[i] = "{" + s[1:] + "}"
		}
	}
	return strings.Join(segs, "/")
}

// serverOperations lists the server's routes as "METHOD /openapi/path",
// leaving out Echo's internal route-not-found catch-alls (a group with
// middleware registers them; they are not endpoints).
func serverOperations(srv *permhttp.Server) []string {
	var out []string
	for _, r := range srv.Routes() {
		method, path, _ := strings.Cut(r, " ")
		if method == echo.RouteNotFound {
			continue
		}
		out = append(out, method+" "+openAPIPath(path))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestAPIDocCoversRoutes: docs/api.yaml describes every route the server
// serves, and nothing else.
func TestAPIDocCoversRoutes(t *testing.T) {
	srv := newDocTestServer(t)
	routes := serverOperations(srv)
	if len(routes) == 0 {
		t.Fatal("the server has no routes")
	}
	var documented []string
	for _, o := range docOperations(t, loadAPIDoc(t)) {
		documented = append(documented, o.String())
	}

	var undocumented, absent []string
	for _, r := range routes {
		// A GET route's HEAD is described by its GET (api.yaml's
		// description says every GET answers HEAD).
		if path, ok := strings.CutPrefix(r, http.MethodHead+" "); ok && slices.Contains(documented, http.MethodGet+" "+path) && !slices.Contains(documented, r) {
			continue
		}
		if !slices.Contains(documented, r) {
			undocumented = append(undocumented, r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(routes, d) {
			absent = append(absent, d)
		}
	}
	if len(undocumented) > 0 {
		t.Errorf("routes the server serves that %s does not describe:\n\t%s", apiDocPath, strings.Join(undocumented, "\n\t"))
	}
	if len(absent) > 0 {
		t.Errorf("operations %s describes that the server does not serve:\n\t%s", apiDocPath, strings.Join(absent, "\n\t"))
	}
}

var (
	openAPIVersion = regexp.MustCompile(`^3\.\d+\.\d+$`)
	pathParam      = regexp.MustCompile(`\{([^}]+)\}`)
	statusKey      = regexp.MustCompile(`^([1-5][0-9][0-9]|[1-5]XX|default)$`)
)

// TestAPIDocWellFormed checks what the route test does not: the version,
// that every operation has a summary and responses, that path parameters
// are declared and every $ref resolves.
func TestAPIDocWellFormed(t *testing.T) {
	doc := loadAPIDoc(t)
	v, _ := doc["openapi"].(string)
	if !openAPIVersion.MatchString(v) {
		t.Errorf("openapi: want a 3.x.y version string, got %#v", doc["openapi"])
	}
	info, _ := doc["info"].(map[string]any)
	if s, _ := info["title"].(string); s == "" {
		t.Error("info.title is missing")
	}
	if s, _ := info["version"].(string); s == "" {
		t.Error("info.version is missing (or not a string)")
	}

	opIDs := map[string]string{}
	for _, o := range docOperations(t, doc) {
		if s, _ := o.Op["summary"].(string); strings.TrimSpace(s) == "" {
			t.Errorf("%s: no summary", o)
		}
		responses, _ := o.Op["responses"].(map[string]any)
		if len(responses) == 0 {
			t.Errorf("%s: no responses", o)
		}
		for code := range responses {
			if !statusKey.MatchString(code) {
				t.Errorf("%s: response key %q is not a status code", o, code)
			}
		}
		if id, _ := o.Op["operationId"].(string); id != "" {
			if prev, dup := opIDs[id]; dup {
				t.Errorf("%s: operationId %q is also used by %s", o, id, prev)
			}
			opIDs[id] = o.String()
		}

		declared := map[string]bool{}
		for _, list := range []any{o.Item["parameters"], o.Op["parameters"]} {
			params, _ := list.([]any)
			for _, p := range params {
				pm, _ := resolve(doc, p).(map[string]any)
				if pm["in"] == "path" {
					name, _ := pm["name"].(string)
					declared[name] = true
					if pm["required"] != true {
						t.Errorf("%s: path parameter %q must be required: true", o, name)
					}
				}
			}
		}
		for _, m := range pathParam.FindAllStringSubmatch(o.Path, -1) {
			if !declared[m[1]] {
				t.Errorf("%s: path parameter {%s} is not declared", o, m[1])
			}
			delete(declared, m[1])
		}
		for name := range declared {
			t.Errorf("%s: declares path parameter %q that its path does not have", o, name)
		}
	}

	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok && lookupRef(doc, ref) == nil {
				t.Errorf("%s: $ref %q does not resolve", where, ref)
			}
			for k, e := range x {
				walk(where+"/"+k, e)
			}
		case []any:
			for _, e := range x {
				walk(where, e)
			}
		}
	}
	walk("#", doc)
}

// TestAPIDocSecurity: exactly the operations that declare the bearer scheme
// answer 401 without a token, and they document that 401.
func TestAPIDocSecurity(t *testing.T) {
	doc := loadAPIDoc(t)
	schemes, _ := lookupRef(doc, "#/components/securitySchemes").(map[string]any)
	if len(schemes) == 0 {
		t.Fatal("components.securitySchemes is missing")
	}
	h := newDocTestServer(t).Handler()
	for _, o := range docOperations(t, doc) {
		bearer := false
		reqs, _ := o.Op["security"].([]any)
		if o.Op["security"] == nil {
			reqs, _ = doc["security"].([]any) // the document's default
		}
		for _, r := range reqs {
			rm, _ := r.(map[string]any)
			for name := range rm {
				s, _ := schemes[name].(map[string]any)
				if s == nil {
					t.Errorf("%s: unknown security scheme %q", o, name)
				} else if s["type"] == "http" && strings.EqualFold(s["scheme"].(string), "bearer") {
					bearer = true
				}
			}
		}

		path := pathParam.ReplaceAllString(o.Path, "x")
		req := httptest.NewRequest(o.Method, path, nil)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		got401 := w.Code == http.StatusUnauthorized
		responses, _ := o.Op["responses"].(map[string]any)
		// Any declared scheme means "answers 401 without its credentials".
		secured := bearer || len(reqs) > 0 && len(reqs[0].(map[string]any)) > 0
		switch {
		case secured && !got401:
			t.Errorf("%s declares auth, but without credentials it answers %d, not 401", o, w.Code)
		case !secured && got401:
			t.Errorf("%s answers 401 without credentials, but declares no auth", o)
		case secured && responses["401"] == nil:
			t.Errorf("%s needs credentials but documents no 401 response", o)
		}
	}
}

// resolve follows v's $ref, if it has one.
func resolve(doc map[string]any, v any) any {
	if m, ok := v.(map[string]any); ok {
		if ref, ok := m["$ref"].(string); ok {
			return lookupRef(doc, ref)
		}
	}
	return v
}

// lookupRef returns what a local reference ("#/a/b") points at, or nil.
func lookupRef(doc map[string]any, ref string) any {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil
	}
	var cur any = doc
	for _, seg := range strings.Split(rest, "/") {
		seg = strings.ReplaceAll(strings.ReplaceAll(seg, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		if cur, ok = m[seg]; !ok {
			return nil
		}
	}
	return cur
}

// TestAPIDocImport: what docs/api.yaml says of POST /v1/import's limits is
// what pdp enforces, and every error answer declares the progress headers
// the handler sets.
func TestAPIDocImport(t *testing.T) {
	doc := loadAPIDoc(t)
	var op map[string]any
	for _, o := range docOperations(t, doc) {
		if o.String() == "POST /v1/import" {
			op = o.Op
		}
	}
	if op == nil {
		t.Fatal("POST /v1/import is not described")
	}
	var chunk map[string]any
	params, _ := op["parameters"].([]any)
	for _, p := range params {
		if pm, _ := resolve(doc, p).(map[string]any); pm["name"] == "chunk" && pm["in"] == "query" {
			chunk = pm
		}
	}
	schema, _ := chunk["schema"].(map[string]any)
	if schema["minimum"] != 0 || schema["maximum"] != pdp.MaxImportChunk {
		t.Errorf("the chunk parameter's schema %v: want 0 to %d", schema, pdp.MaxImportChunk)
	}
	thousands := func(n int) string { s := strconv.Itoa(n); return s[:len(s)-3] + "," + s[len(s)-3:] }
	desc, _ := op["description"].(string)
	for _, want := range []string{thousands(pdp.MaxAtomicImport) + " lines", "1 to " + thousands(pdp.MaxImportChunk),
		strconv.Itoa(permhttp.MaxImportLine>>10) + " KiB"} {
		if !strings.Contains(desc, want) {
			t.Errorf("the description does not say %q", want)
		}
	}
	responses, _ := op["responses"].(map[string]any)
	for _, code := range []string{"400", "403", "409", "413", "422"} {
		r, _ := resolve(doc, responses[code]).(map[string]any)
		headers, _ := r["headers"].(map[string]any)
		for _, h := range []string{"X-Permatrix-Imported", "X-Permatrix-Import-Last-Line", "X-Permatrix-Import-Revision"} {
			if headers[h] == nil {
				t.Errorf("POST /v1/import %s does not declare %s", code, h)
			}
		}
	}
}

// TestAPIDocExportLayout: the keys of GET /v1/export's store are the ones
// docs/api.yaml's Export schema declares (and requires), and its example
// has them too (it described a layout the store no longer has: subjects
// and groups, not grants and scopes).
func TestAPIDocExportLayout(t *testing.T) {
	base := serveOn(t, newDocTestServer(t))
	for _, w := range []struct{ method, path, body string }{
		{http.MethodPost, "/v1/assignments", `{"subject":"user:bob","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"project","id":"p1"}}`},
		{http.MethodPut, "/v1/groups/g1/members/alice", ""},
		{http.MethodPut, "/v1/systems/blueprism/roles/release_manager", `{"permissions":["audit_alerts"]}`},
		{http.MethodPut, "/v1/systems/uipath-task-mining-cloud/projects/p9", `{"created_by":"alice","kind":"assisted"}`},
	} {
		if status, body := requestBody(t, w.method, base+w.path, docTestToken, strings.NewReader(w.body)); status/100 != 2 {
			t.Fatalf("%s %s: %d %s", w.method, w.path, status, body)
		}
	}
	status, raw := request(t, http.MethodGet, base+"/v1/export", docTestToken)
	var export struct{ Store map[string]any }
	if status != http.StatusOK || json.Unmarshal(raw, &export) != nil {
		t.Fatalf("GET /v1/export: %d %s", status, raw)
	}
	keys := func(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }
	got := keys(export.Store)

	doc := loadAPIDoc(t)
	schema, _ := lookupRef(doc, "#/components/schemas/Export/properties/store").(map[string]any)
	props, _ := schema["properties"].(map[string]any)
	if declared := keys(props); !slices.Equal(declared, got) {
		t.Errorf("the Export schema declares the store keys %v, the export has %v", declared, got)
	}
	var required []string
	for _, r := range schema["required"].([]any) {
		required = append(required, r.(string))
	}
	if slices.Sort(required); !slices.Equal(required, got) {
		t.Errorf("the Export schema requires the store keys %v, the export has %v", required, got)
	}
	for _, o := range docOperations(t, doc) {
		if o.String() != "GET /v1/export" {
			continue
		}
		ok, _ := o.Op["responses"].(map[string]any)["200"].(map[string]any)
		example, _ := ok["content"].(map[string]any)["application/json"].(map[string]any)["example"].(map[string]any)
		store, _ := example["store"].(map[string]any)
		if ex := keys(store); !slices.Equal(ex, got) {
			t.Errorf("the example of GET /v1/export has the store keys %v, the export has %v", ex, got)
		}
	}
}
