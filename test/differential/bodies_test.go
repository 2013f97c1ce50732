package differential_test

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/permatrix/permatrix/test/harness"
)

// TestBodiesAsStockOPA: request bodies at the edges of what OPA reads, sent
// to permatrix and to stock `opa run --server` over an empty store (what
// differs on purpose is in docs/opa-api.md; the rest is compared here).
func TestBodiesAsStockOPA(t *testing.T) {
	pmx, stock := emptyServers(t)

	// A body of JSON's null is no input, as an empty body is: OPA decodes
	// it into its request as nothing (200, the warning), permatrix
	// answered 400 "the body must be a JSON object, got null".
	for _, body := range []string{`null`, " null\n"} {
		for _, path := range []string{"/v1/data/permatrix/allow", "/v1/data/permatrix/decision", "/v1/data/systems/blueprism/vendor"} {
			both(t, pmx, stock, post(path, body)).same(t, "POST "+path+" "+body, "decision_id")
		}
	}

	// What differs on purpose (docs/opa-api.md, "What differs"): data
	// after the JSON value is refused (OPA leaves it unread), and so are
	// invalid UTF-8 and a lone surrogate (OPA reads U+FFFD); a path that
	// is not clean is answered as given, empty segments skipped, where OPA
	// redirects to the cleaned path (followed here: the same document).
	for _, body := range []string{`{"input":1} x`, `{"input":1}{"input":2}`, "{\"input\":\"a\xffb\"}", `{"input":"\ud800"}`} {
		p := both(t, pmx, stock, post("/v1/data/systems/blueprism/vendor", body))
		if p.opa.status != http.StatusOK || p.pmx.status != http.StatusBadRequest || p.pmx.obj()["code"] != "invalid_parameter" {
			t.Errorf("body %q: permatrix %d %s, stock opa %d %s", body, p.pmx.status, p.pmx.raw, p.opa.status, p.opa.raw)
		}
	}
	// A query string net/url cannot read: OPA drops the pair (here the
	// input), permatrix refuses it.
	for _, q := range []string{"input=%ZZ", "input=%7B%7D;pretty"} {
		p := both(t, pmx, stock, get("/v1/data/systems/blueprism/vendor?"+q))
		if p.opa.status != http.StatusOK || p.pmx.status != http.StatusBadRequest || p.pmx.obj()["code"] != "invalid_parameter" {
			t.Errorf("query %q: permatrix %d %s, stock opa %d %s", q, p.pmx.status, p.pmx.raw, p.opa.status, p.opa.raw)
		}
	}
	// A path to a function: OPA's 500, permatrix's 400 with the compile
	// error as the Query API words it.
	if p := both(t, pmx, stock, get("/v1/data/permatrix/lib/valid_id")); p.opa.status != http.StatusInternalServerError ||
		p.pmx.status != http.StatusBadRequest || p.pmx.obj()["code"] != "invalid_parameter" || !strings.Contains(string(p.pmx.raw), "rego_type_error") {
		t.Errorf("a path to a function: permatrix %d %s, stock opa %d %s", p.pmx.status, clip(p.pmx.raw), p.opa.status, p.opa.raw)
	}
	for _, path := range []string{"/v1/data/systems/blueprism/vendor/", "/v1/data//systems/blueprism/vendor", "/v1/data/systems//blueprism/vendor"} {
		both(t, pmx, stock, get(path)).same(t, "GET "+path, "decision_id")
	}
}

// emptyServers starts permatrix and stock `opa run --server` over an empty
// store and returns their URLs.
func emptyServers(t *testing.T) (pmx, stock string) {
	t.Helper()
	opaBin := harness.StockOPA(t)
	s := harness.Start(t, harness.Options{})
	export := filepath.Join(t.TempDir(), "export.json")
	writeFile(t, export, s.Do(http.MethodGet, "/v1/export", nil, true).Raw)
	return s.URL, stockServer(t, opaBin, export)
}

// TestMetricsOfBaseDataAsStockOPA: ?metrics and ?instrument on a document
// no rule defines (the catalogs, data.store, an undefined one) carry OPA's
// evaluation timer and the evaluator's histograms, as on a rule. permatrix
// read such documents without evaluating: timer_server_handler_ns alone.
func TestMetricsOfBaseDataAsStockOPA(t *testing.T) {
	pmx, stock := emptyServers(t)
	for _, path := range []string{"/v1/data/systems/blueprism/vendor", "/v1/data/systems/blueprism/nothing", "/v1/data/nope"} {
		for _, q := range []string{"?metrics", "?instrument", "?metrics&input=1"} {
			p := both(t, pmx, stock, get(path+q))
			p.same(t, "GET "+path+q, "decision_id", "metrics")
			want := []string{"timer_rego_query_eval_ns", "timer_server_handler_ns"}
			if q == "?instrument" {
				want = append(want, "histogram_eval_op_plug")
			}
			for _, k := range want {
				for name, a := range map[string]answer{"permatrix": p.pmx, "stock opa": p.opa} {
					if m, _ := a.obj()["metrics"].(map[string]any); m[k] == nil {
						t.Errorf("GET %s%s: %s has no %s: %s", path, q, name, k, clip(a.raw))
					}
				}
			}
		}
	}
}
