package http_test

import (
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/permatrix/permatrix/internal/bolt"
	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
	"github.com/permatrix/permatrix/test/harness"
)

// TestForwardAuthQueryNotLogged: below /v1/forward-auth/ (Envoy's HTTP
// service) the path and query are an end user's original request, where
// a token may ride (RFC 6750's access_token, a presigned link). A failed
// request is logged at error level with its URI: the query is left out.
func TestForwardAuthQueryNotLogged(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "permatrix.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	var logs harness.LockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	// No bundle activated: every decision is a 503, logged.
	srv := permhttp.NewServer(pdp.New(db, opa.NewEngine(db), log, nil), permhttp.Config{Logger: log})
	base := serveOn(t, srv)
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/forward-auth/projects/p1/users?access_token=eyJhbGciOiJSUzI1NiJ9.s3cr3t.sig", nil)
	for k, v := range map[string]string{"X-Forwarded-User": "ann", "X-Permatrix-System": "celonis-task-mining", "X-Permatrix-Action": "edit_users"} {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("without a bundle: %d", res.StatusCode)
	}
	if l := logs.String(); strings.Contains(l, "s3cr3t") || !strings.Contains(l, "/v1/forward-auth/projects/p1/users") {
		t.Fatalf("logged:\n%s", l)
	}
}
