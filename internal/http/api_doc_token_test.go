package http_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/permatrix/permatrix/internal/bolt"
	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
)

// tokenOperations are the decisions (a subject's effective permissions
// too) and the Data API: every one takes a
// consistency token (docs/fleet.md), as a query parameter and a header,
// and answers a token its store does not reach with 503.
// headerOnly are the token operations whose query is not theirs: below
// /v1/forward-auth (Envoy's HTTP service) it is the original request's.
var headerOnly = map[string]bool{"GET /v1/forward-auth/{path}": true}

var tokenOperations = []struct {
	method, path string // as in docs/api.yaml
	url, body    string // a request that decides, for the behaviour
	header       map[string]string
	status       int    // the answer to an unreachable token
	inBody       string // its body holds this
}{
	{"POST", "/v1/check", "/v1/check", `{"subject":"a","system":"celonis-task-mining","action":"edit_users"}`, nil, 503, "not applied here yet"},
	{"POST", "/v1/check/batch", "/v1/check/batch", `{"checks":[{"subject":"a","system":"celonis-task-mining","action":"edit_users"}]}`, nil, 200, "not applied here yet"},
	{"GET", "/v1/forward-auth", "/v1/forward-auth", "", map[string]string{"X-Forwarded-User": "a", "X-Permatrix-System": "celonis-task-mining", "X-Permatrix-Action": "edit_users"}, 503, "not applied here yet"},
	{"GET", "/v1/forward-auth/{path}", "/v1/forward-auth/x", "", map[string]string{"X-Forwarded-User": "a", "X-Permatrix-System": "celonis-task-mining", "X-Permatrix-Action": "edit_users"}, 503, "not applied here yet"},
	{"POST", "/", "/", `{"subject":"a","system":"celonis-task-mining","action":"edit_users"}`, nil, 503, "not applied here yet"},
	{"POST", "/v0/data/{path}", "/v0/data/permatrix/allow", `{"subject":"a","system":"celonis-task-mining","action":"edit_users"}`, nil, 503, "not applied here yet"},
	{"POST", "/v0/data", "/v0/data", `{}`, map[string]string{"Authorization": "Bearer " + docTestToken}, 503, "not applied here yet"},
	{"GET", "/v1/data/{path}", "/v1/data/permatrix/allow", "", nil, 503, "not applied here yet"},
	{"POST", "/v1/data/{path}", "/v1/data/permatrix/allow", `{"input":{"subject":"a","system":"celonis-task-mining","action":"edit_users"}}`, nil, 503, "not applied here yet"},
	{"GET", "/v1/data", "/v1/data", "", map[string]string{"Authorization": "Bearer " + docTestToken}, 503, "not applied here yet"},
	{"POST", "/v1/data", "/v1/data", `{}`, map[string]string{"Authorization": "Bearer " + docTestToken}, 503, "not applied here yet"},
	{"GET", "/v1/subjects/{user}/permissions", "/v1/subjects/a/permissions", "", nil, 503, "not applied here yet"},
	{"GET", "/v1/query", "/v1/query?q=data.store", "", map[string]string{"Authorization": "Bearer " + docTestToken}, 503, "not applied here yet"},
	{"POST", "/v1/query", "/v1/query", `{"query":"data.permatrix.allow == true"}`, map[string]string{"Authorization": "Bearer " + docTestToken}, 503, "not applied here yet"},
	{"POST", "/v1/compile", "/v1/compile", `{"query":"data.permatrix.allow == true","unknowns":["input"]}`, map[string]string{"Authorization": "Bearer " + docTestToken}, 503, "not applied here yet"},
}

// TestAPIDocConsistencyToken: docs/api.yaml declares the min_revision query
// parameter and the X-Permatrix-Min-Revision header on every decision and
// Data API operation, the body field where there is a body of ours — and
// the server honours each as documented.
func TestAPIDocConsistencyToken(t *testing.T) {
	doc := loadAPIDoc(t)
	ops := map[string]docOperation{}
	for _, o := range docOperations(t, doc) {
		ops[o.String()] = o
	}
	for _, c := range tokenOperations {
		o, ok := ops[c.method+" "+c.path]
		if !ok {
			t.Errorf("%s %s is not in the document", c.method, c.path)
			continue
		}
		have := map[string]bool{}
		for _, list := range []any{o.Item["parameters"], o.Op["parameters"]} {
			params, _ := list.([]any)
			for _, p := range params {
				pm, _ := resolve(doc, p).(map[string]any)
				have[pm["in"].(string)+" "+pm["name"].(string)] = true
			}
		}
		switch {
		case headerOnly[c.method+" "+c.path]:
			if have["query min_revision"] || !have["header X-Permatrix-Min-Revision"] {
				t.Errorf("%s: the consistency token is declared %v; want the X-Permatrix-Min-Revision header only (the query is the original request's)", o, have)
			}
		case !have["query min_revision"] || !have["header X-Permatrix-Min-Revision"]:
			t.Errorf("%s: the consistency token is not declared as both the min_revision query parameter and the X-Permatrix-Min-Revision header", o)
		}
	}
	for _, schema := range []string{"Check", "DataRequest"} {
		props, _ := lookupRef(doc, "#/components/schemas/"+schema+"/properties").(map[string]any)
		if props["min_revision"] == nil {
			t.Errorf("schema %s has no min_revision", schema)
		}
	}

	db, err := bolt.Open(filepath.Join(t.TempDir(), "permatrix.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := pdp.New(db, opa.NewEngine(db), log, nil)
	svc.ConsistencyTimeout = 10 * time.Millisecond
	b, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Activate(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	h := permhttp.NewServer(svc, permhttp.Config{AdminToken: docTestToken, Logger: log}).Handler()
	do := func(method, url, body string, header map[string]string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	for _, c := range tokenOperations {
		// Without a token: decided (a deny is a decision too).
		plain := do(c.method, c.url, c.body, c.header)
		if plain.Code != http.StatusOK && plain.Code != http.StatusForbidden {
			t.Fatalf("%s %s without a token: %d %s", c.method, c.url, plain.Code, plain.Body)
		}
		withHeader := map[string]string{"X-Permatrix-Min-Revision": "99"}
		for k, v := range c.header {
			withHeader[k] = v
		}
		sep := "?"
		if strings.Contains(c.url, "?") {
			sep = "&"
		}
		if headerOnly[c.method+" "+c.path] {
			// The query is the original request's: its min_revision is the
			// application's parameter, even one that is no number.
			for _, q := range []string{"min_revision=99", "min_revision=latest"} {
				if w := do(c.method, c.url+sep+q, c.body, c.header); w.Code != plain.Code {
					t.Errorf("%s %s?%s (the original request's query): %d %s, want %d as without it", c.method, c.url, q, w.Code, w.Body, plain.Code)
				}
			}
			if w := do(c.method, c.url, c.body, withHeader); w.Code != c.status || !strings.Contains(w.Body.String(), c.inBody) {
				t.Errorf("%s %s, token 99 in the header: %d %s", c.method, c.url, w.Code, w.Body)
			}
			continue
		}
		for name, w := range map[string]*httptest.ResponseRecorder{
			"the header": do(c.method, c.url, c.body, withHeader),
			"the query":  do(c.method, c.url+sep+"min_revision=99", c.body, c.header),
		} {
			if w.Code != c.status || !strings.Contains(w.Body.String(), c.inBody) || !strings.Contains(w.Body.String(), "99") {
				t.Errorf("%s %s, token 99 in %s: %d %s", c.method, c.url, name, w.Code, w.Body)
			}
		}
		if both := do(c.method, c.url+sep+"min_revision=99", c.body, withHeader); both.Code != http.StatusBadRequest && c.method+c.path != "POST/v1/check/batch" {
			t.Errorf("%s %s, a token in the header and the query: %d %s", c.method, c.url, both.Code, both.Body)
		}
	}
}
