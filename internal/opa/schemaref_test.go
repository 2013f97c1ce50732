package opa

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/permatrix/permatrix/internal/store"
)

// json.match_schema and json.verify_schema load a schema's $ref: any
// file (file://) and any host, as an http.send would reach it. In the
// Query and Compile APIs they read a local JSON file into the answer (a
// "const" in it came back in the validation's errors) and sent GETs to
// any address the caller named: they are refused there, as http.send is.
func TestQueriesLoadNoSchemaReference(t *testing.T) {
	p := compileDefault(t, nil)
	ctx := context.Background()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		fmt.Fprint(w, `{"type": "string"}`)
	}))
	defer srv.Close()
	secret := filepath.Join(t.TempDir(), "secret.json")
	if err := os.WriteFile(secret, []byte(`{"properties": {"a": {"const": "TOPSECRET"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"file://" + secret, srv.URL + "/schema.json"} {
		for _, call := range []string{
			`x := json.match_schema({"a": 1}, {"$ref": %q})`,
			`x := json.verify_schema({"$ref": %q})`,
		} {
			q := fmt.Sprintf(call, ref)
			ev, err := p.EvalQuery(ctx, store.Empty(0), q, nil, EvalOptions{})
			var ae *APIError
			if !errors.As(err, &ae) || ae.Code != CodeInvalidParameter {
				raw, _ := json.Marshal(ev)
				t.Errorf("query %s: %v %s", q, err, raw)
			}
			ev, err = p.Compile(ctx, store.Empty(0), CompileRequest{Query: "input.x == 1; " + q}, EvalOptions{})
			if !errors.As(err, &ae) || ae.Code != CodeInvalidParameter {
				raw, _ := json.Marshal(ev)
				t.Errorf("compile %s: %v %s", q, err, raw)
			}
			if raw, _ := json.Marshal(ev); strings.Contains(string(raw), "TOPSECRET") {
				t.Errorf("%s: the file's content in the answer: %s", q, raw)
			}
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the server fetched a schema %d times", n)
	}
}
