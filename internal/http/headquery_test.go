package http_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/decisionlog"
	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
)

// TestHEADQueryNotEvaluated: HEAD /v1/query is 405 (Allow: GET, POST), as
// HEAD /debug/pprof is: its GET's status is known only once the query has
// run, and a HEAD would run it — logged as a decision — to send nothing.
func TestHEADQueryNotEvaluated(t *testing.T) {
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
	base := serveOn(t, permhttp.NewServer(svc, permhttp.Config{AdminToken: docTestToken, DecisionLog: w}))
	url := base + "/v1/query?q=x%3A%3D%22head%22"
	res, body := exchange(t, http.MethodHead, url, docTestToken)
	if res.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(res.Header.Get("Allow"), "GET") || len(body) != 0 {
		t.Errorf("HEAD /v1/query: %d, Allow %q, %d bytes; want 405", res.StatusCode, res.Header.Get("Allow"), len(body))
	}
	if res, _ := exchange(t, http.MethodGet, url, docTestToken); res.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/query: %d", res.StatusCode)
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(raw, []byte("\n")); n != 1 {
		t.Errorf("%d queries logged after a HEAD and a GET, want the GET's only:\n%s", n, raw)
	}
}
