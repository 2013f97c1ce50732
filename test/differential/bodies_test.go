package differential_test

import (
	"net/http"
	"path/filepath"
	"testing"

	"github.com/permatrix/permatrix/test/harness"
)

// TestBodiesAsStockOPA: request bodies at the edges of what OPA reads, sent
// to permatrix and to stock `opa run --server` over an empty store (what
// differs on purpose is in docs/opa-api.md; the rest is compared here).
func TestBodiesAsStockOPA(t *testing.T) {
	opaBin := harness.StockOPA(t)
	s := harness.Start(t, harness.Options{})
	export := filepath.Join(t.TempDir(), "export.json")
	writeFile(t, export, s.Do(http.MethodGet, "/v1/export", nil, true).Raw)
	pmx, stock := s.URL, stockServer(t, opaBin, export)

	// A body of JSON's null is no input, as an empty body is: OPA decodes
	// it into its request as nothing (200, the warning), permatrix
	// answered 400 "the body must be a JSON object, got null".
	for _, body := range []string{`null`, " null\n"} {
		for _, path := range []string{"/v1/data/permatrix/allow", "/v1/data/permatrix/decision", "/v1/data/systems/blueprism/vendor"} {
			both(t, pmx, stock, post(path, body)).same(t, "POST "+path+" "+body, "decision_id")
		}
	}
}
